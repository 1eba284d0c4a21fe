"""The walk over a parsed vigil.toml that collects every problem instead of stopping at the
first: `Checker` holds the problems found, the line of every key (config/locate.py) and what
one part of the document tells the next (the nodes' names, their heartbeat addresses), and
reads a key with its converter (`field`), refuses unknown keys (`unknown`) and finds tables
and arrays of tables. The readers of the document's parts (config/toml_*.py) extend it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from vigil import model
from vigil.config.locate import KeyPath, fmt_key
from vigil.config.toml_values import describe
from vigil.errors import ConfigProblem

Table = dict[str, Any]
_T = TypeVar("_T")


class Checker:
    """Walks the parsed document, collecting every problem instead of stopping at the first.

    Each part returns its model value or None; a None comes with at least one problem. An
    invalid optional value is reported and replaced by its default, so that checks of the
    later parts still run.
    """

    def __init__(self, source: str, lines: dict[KeyPath, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[ConfigProblem] = []
        self.node_names: list[str] | None = []  # None when a node's name is unknown
        self.heartbeat_addresses: dict[model.IPAddress, str] = {}

    def report(self, path: KeyPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, self._line(path), fmt_key(path), message))

    def _line(self, path: KeyPath) -> int | None:
        """The line of `path`, else of the nearest enclosing key or header that has one."""
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None

    def field(self, table: Table, path: KeyPath, key: str, conv: Callable[[object], _T],
              required: bool = False) -> _T | None:
        if key not in table:
            if required:
                self.report((*path, key), "required key is missing")
            return None
        try:
            return conv(table[key])
        except ValueError as e:
            self.report((*path, key), str(e))
            return None

    def unknown(self, table: Table, path: KeyPath, valid: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in valid:
                self.report((*path, key), f"unknown key {key!r} in {where}; valid keys: "
                                          f"{', '.join(valid)}")

    def optional_table(self, parent: Table, path: KeyPath, valid: tuple[str, ...],
                       header: str) -> Table | None:
        """The table at path[-1] of `parent` with its keys checked; None when absent or not a
        table (that reported)."""
        t = parent.get(str(path[-1]))
        if t is None:
            return None
        if not isinstance(t, dict):
            self.report(path, f"expected the {header} table, found {describe(t)}")
            return None
        self.unknown(t, path, valid, header)
        return t

    def tables(self, doc: Table, key: str, header: str) -> list[tuple[KeyPath, Table]]:
        value = doc.get(key, [])
        if not isinstance(value, list):
            self.report((key,), f"expected {header} entries (an array of tables), "
                                f"found {describe(value)}")
            return []
        out: list[tuple[KeyPath, Table]] = []
        for n, item in enumerate(value):
            if isinstance(item, dict):
                out.append(((key, n), item))
            else:
                self.report((key, n), f"expected a table, found {describe(item)}")
        return out
