"""keepalived.conf -> vigil.toml (`vigil import keepalived FILE`, issue 6).

Three layers: words (comments, quotes, braces, `include`), `parse` (the block tree of
`Statement`s), both in keepalived_syntax.py, and `import_text` / `import_file` (vrrp_instance
blocks, read by keepalived_blocks.py and keepalived_instances.py -> a model.Cluster, made in
keepalived_cluster.py, written out by export.to_toml with a note wherever the meaning changed,
and read back with config.toml.parse, so that vigil's own checks apply and the Cluster
returned is exactly what the text says). Nothing here raises anything but ConfigError, and
every problem names the file, the line and the block/keyword.

keepalived.conf describes one machine; vigil.toml describes both. So the file's machine is
"this node" and the other "the peer": a group is at home on this node when its instance is
state MASTER (or priority 255, the address owner), else on the peer. Priorities are only
comparable across the two machines' files, which is why state decides; the comments say so.
Nothing is dropped silently: every block or keyword that is not carried over is listed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vigil import model
from vigil.config import export, lvs_import, toml
from vigil.config.export_virtual import write_virtual_servers
from vigil.config.keepalived_blocks import BlockReader
from vigil.config.keepalived_cluster import build_cluster
from vigil.config.keepalived_syntax import Reader, Statement, Token, tree_of
from vigil.config.keepalived_virtual import VirtualReader
from vigil.config.toml_write import Writer
from vigil.errors import ConfigError

__all__ = ["Statement", "import_file", "import_text", "parse"]


def parse(text: str, source: str = "<memory>", base: Path | None = None) -> tuple[Statement, ...]:
    """keepalived.conf text -> its top-level statements. `base`: the directory relative includes
    are read from (None: an include is refused)."""
    return tree_of(Reader().text(text, source, base))


def import_text(text: str, source: str = "<memory>",
                base: Path | None = None) -> tuple[model.Cluster | None, str, list[str]]:
    """keepalived.conf text -> (the Cluster, its vigil.toml text, what was not carried over).

    `base` is the directory relative includes are read from (None: an include is refused).
    The Cluster is None when there is nothing to import (no vrrp_instance with an address,
    an LVS-only file say); the text then only lists what was not carried over."""
    reader = Reader()
    return _import(reader.text(text, source, base), source, reader.notes)


def import_file(path: Path) -> tuple[model.Cluster | None, str, list[str]]:
    """Read keepalived.conf at `path`, following its includes, and import it (import_text)."""
    reader = Reader()
    return _import(reader.file(Path(path)), str(path), reader.notes)


def _import(toks: list[Token], source: str,
            notes: list[tuple[str, int, str, str]]) -> tuple[model.Cluster | None, str, list[str]]:
    imp = BlockReader(source, notes)
    statements = tree_of(toks)
    instances = imp.top(statements)
    syncs = imp.sync_groups(statements, instances)
    lvs = VirtualReader(imp).read(statements)
    usable = [i for i in instances if i.vips]
    for i in usable:
        i.arp = {**imp.garp, **i.arp}
    header = (f"Imported from keepalived's {source}. keepalived.conf describes one machine, "
              "vigil.toml both: this file's machine is \"this node\" below, the other \"the "
              "peer\". Read every note: each says where the meaning changed.")
    dropped = [f"{f}:{n}: {what}: {why}" for f, n, what, why in imp.sorted_dropped()]
    if not usable:
        if imp.problems:
            raise ConfigError(imp.problems)
        lines = [header, "No vrrp_instance with a virtual_ipaddress: only the virtual servers "
                 "below, to add to a vigil.toml (each names the group whose address it is)."
                 if lvs.services else "Nothing to import: no vrrp_instance with a "
                 "virtual_ipaddress.", *lvs_import.assign_groups(lvs, None),
                 "Not carried over:", *(f"- {d}" for d in dropped)]
        w = Writer()
        for line in lines:
            w.comment(line, indent="  ")
        write_virtual_servers(w, lvs.services, _notes(lvs))
        return None, w.text(), dropped
    cluster, why = build_cluster(imp, usable, syncs)
    placed = lvs_import.assign_groups(lvs, cluster)
    cluster = dataclasses.replace(cluster, virtual_servers=tuple(lvs.services))
    why.update(_notes(lvs))
    why.update((f"virtual servers ({i + 1})", text) for i, text in enumerate(placed))
    text = export.to_toml(cluster, why, header)
    try:
        return toml.parse(text, f"{source} (imported)"), text, dropped
    except ConfigError as e:  # a rule of vigil's that the checks above missed: say it plainly
        raise ConfigError([dataclasses.replace(p, file=source, line=None,
                                               message=f"vigil refuses the import: {p.message}")
                           for p in e.problems]) from None


def _notes(lvs: lvs_import.Imported) -> dict[str, str]:
    """The importer's notes per service, as export_virtual reads them."""
    return {f"virtual_server:{name}": "\n".join(texts) for name, texts in lvs.notes.items()}
