"""`vigil import ldirectord FILE` and `vigil import ipvsadm FILE`: LVS's configurations as
[[virtual_server]] tables (config/ldirectord.py, config/ipvsadm.py). With `--into
vigil.toml` the whole configuration is printed, each virtual server in the group whose
floating address it is, checked; without, the tables alone. What is not carried over goes
to stderr too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NoReturn

import click

from vigil.errors import VigilError


def register(group: click.Group, fail: Callable[[VigilError, bool], NoReturn]) -> None:
    into = click.option("--into", type=click.Path(path_type=Path, dir_okay=False),
                        help="A vigil.toml to add the virtual servers to (printed whole).")

    def run(file: Path, into_path: Path | None, debug: bool, what: str,
            read: Callable[[Path], Any]) -> None:
        from vigil.config.lvs_import import render
        try:
            imported = read(file)
            into_text = into_path.read_text() if into_path is not None else None
            text = render(imported, f"Imported from {what} {file}; read every note.",
                          into_text, str(into_path or "vigil.toml"))
        except OSError as e:
            fail(VigilError(f"{e.filename}: {e.strerror}"), debug)
        except VigilError as e:
            fail(e, debug)
        for d in imported.dropped:
            click.echo(f"not carried over: {d}", err=True)
        click.echo(text, nl=False)

    @group.command("ldirectord")
    @click.argument("file", type=click.Path(path_type=Path, readable=False))
    @into
    @click.option("--debug", is_flag=True, hidden=True)
    def ldirectord(file: Path, into: Path | None, debug: bool) -> None:
        """Read an ldirectord.cf (e.g. /etc/ha.d/ldirectord.cf); print its virtual services
        as vigil's virtual servers."""
        from vigil.config.ldirectord import import_file
        run(file, into, debug, "ldirectord's", import_file)

    @group.command("ipvsadm")
    @click.argument("file", type=click.Path(path_type=Path, readable=False))
    @into
    @click.option("--debug", is_flag=True, hidden=True)
    def ipvsadm(file: Path, into: Path | None, debug: bool) -> None:
        """Read saved IPVS rules (`ipvsadm-save -n`, /etc/sysconfig/ipvsadm, or ipvsadm -A/-a
        lines); print them as vigil's virtual servers."""
        from vigil.config.ipvsadm import import_file
        run(file, into, debug, "the IPVS rules in", import_file)
