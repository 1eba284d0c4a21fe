"""`vigil agent`: the OCF resource agents installed on this host. Reads files and runs agents'
`meta-data`; needs no daemon and no configuration.

    vigil agent list [--json]          provider:type, one per line
    vigil agent info NAME [--json]     parameters and actions of NAME
                                       ("heartbeat:IPaddr2" or "ocf:heartbeat:IPaddr2")

Exit status: 0 ok, 1 the agent's meta-data failed or is not meta-data, 2 unknown agent or bad
name. `vigil.resources.ocf_meta` is imported inside the commands (the CLI's layer rule: no
resources at import time).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from vigil.errors import VigilError

DEFAULT_OCF_ROOT = Path("/usr/lib/ocf")  # = ocf_meta.DEFAULT_OCF_ROOT

_ocf_root = click.option(
    "--ocf-root", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_OCF_ROOT,
    show_default=True, help="Root of the OCF tree (agents under resource.d/PROVIDER/).")
_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def agent() -> None:
    """OCF resource agents installed on this host."""


@agent.command("list")
@_ocf_root
@_json
def list_cmd(ocf_root: Path, as_json: bool) -> None:
    """Installed OCF agents, as PROVIDER:TYPE, one per line."""
    from vigil.resources.ocf_meta import list_agents
    names = list_agents(ocf_root)
    if as_json:
        click.echo(json.dumps(names, indent=2))
    elif names:
        click.echo("\n".join(names))


@agent.command("info")
@click.argument("name")
@_ocf_root
@_json
def info_cmd(name: str, ocf_root: Path, as_json: bool) -> None:
    """Parameters and actions of agent NAME (heartbeat:IPaddr2 or ocf:heartbeat:IPaddr2)."""
    from vigil.resources.ocf_meta import agent_info, render_info
    try:
        info = agent_info(ocf_root, name)
    except VigilError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(info), indent=2))
    else:
        click.echo(render_info(info))


def _fail(e: VigilError) -> NoReturn:
    ctx = click.get_current_context(silent=True)
    if ctx is not None and getattr(ctx.find_root().obj, "debug", False):
        import traceback
        traceback.print_exc()
    click.echo(f"vigil: {e}", err=True)
    sys.exit(e.exit_code)
