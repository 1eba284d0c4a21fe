"""Writing vigil.toml text: a line-oriented writer and TOML values that parse back exactly
(strings escaped, durations in their most readable exact form). export.py and
export_virtual.py write with it."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable

from vigil import model
from vigil.config.duration import parse_duration

WIDTH = 96


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, text: str, indent: str = "") -> None:
        for line in textwrap.wrap(text, WIDTH - 2, subsequent_indent=indent,
                                  break_on_hyphens=False) or [""]:
            self.lines.append(f"# {line}".rstrip())

    def blank(self) -> None:
        if self.lines and self.lines[-1]:
            self.lines.append("")

    def table(self, header: str, pairs: Iterable[tuple[str, str]]) -> None:
        if self.lines and not self.lines[-1].startswith("#"):
            self.blank()
        self.lines.append(header)
        for key, value in pairs:
            self.key(key, value)

    def key(self, key: str, value: str) -> None:
        self.lines.append(f"{toml_key(key)} = {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def str_(s: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_key(k: str) -> str:
    bare = k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k)
    return k if bare else str_(k)


def bool_(b: bool) -> str:
    return "true" if b else "false"


def list_(items: Iterable[str]) -> str:
    return "[" + ", ".join(items) + "]"


def table(pairs: Iterable[tuple[str, str]]) -> str:
    return "{ " + ", ".join(f"{toml_key(k)} = {v}" for k, v in pairs) + " }"


def dur(seconds: float) -> str:
    """The most readable duration that parses back to exactly `seconds`: "200ms", "1.5s",
    else a bare number of seconds (toml.parse reads floats exactly)."""
    assert math.isfinite(seconds) and seconds >= 0, seconds
    for text in (model.fmt_duration(seconds), f"{seconds!r}s"):
        try:
            if parse_duration(text) == seconds:
                return str_(text)
        except ValueError:  # "1e-05s": no exponents in durations
            pass
    return repr(float(seconds))
