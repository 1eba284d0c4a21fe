"""Where each key of a TOML document is defined: tomllib gives values, this gives lines.

Used by config/toml.py so that every problem names the line of the offending key.
"""

from __future__ import annotations

import re
import tomllib

KeyPath = tuple[str | int, ...]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Map each key path defined in TOML `text` to the 1-based line that defines it.

    tomllib gives no positions, so this scans lines, tracking the current table header: each
    `[[a.b]]` counts one more element of the array of tables at that path, and a header part
    naming an array of tables resolves to its latest element (`[[group.resource]]` and
    `[group.policy]` belong to the last `[[group]]`). Headers and `key = value` lines (dotted
    and quoted keys too) are recorded; values are skipped with strings, comments and brackets
    tracked, so multi-line strings and arrays do not confuse it. The first definition wins.

    Limits: keys inside inline tables and the elements of arrays are not recorded (look-ups
    fall back to the enclosing key, see `_line`); quoted keys with escapes are decoded by
    tomllib, anything it cannot decode is kept verbatim. Meant for text tomllib accepted;
    for other text it returns something without raising.
    """
    lines: dict[KeyPath, int] = {}
    aot: dict[KeyPath, int] = {}  # array-of-tables path (resolved) -> elements seen
    table: KeyPath = ()
    depth, ml = 0, ""  # inside a value: open brackets, open multi-line string delimiter
    for lineno, line in enumerate(text.split("\n"), start=1):
        if depth or ml:
            depth, ml = _skip_value(line, 0, depth, ml)
            continue
        i = len(line) - len(line.lstrip(" \t"))
        if i == len(line) or line[i] == "#":
            continue
        if line[i] == "[":
            array = line.startswith("[[", i)
            parsed = _parse_key(line, i + (2 if array else 1))
            if parsed is None:
                continue
            table = _resolve(parsed[0], aot)
            for n in range(1, len(table)):
                lines.setdefault(table[:n], lineno)
            if array:
                lines.setdefault(table, lineno)
                count = aot.get(table, 0)
                aot[table] = count + 1
                table = (*table, count)
            lines.setdefault(table, lineno)
            continue
        parsed = _parse_key(line, i)
        if parsed is None:
            continue
        parts, j = parsed
        for n in range(1, len(parts) + 1):
            lines.setdefault(table + parts[:n], lineno)
        if j < len(line) and line[j] == "=":
            depth, ml = _skip_value(line, j + 1, 0, "")
    return lines


def _resolve(parts: KeyPath, aot: dict[KeyPath, int]) -> KeyPath:
    resolved: KeyPath = ()
    for n, part in enumerate(parts):
        resolved = (*resolved, part)
        if n < len(parts) - 1 and resolved in aot:
            resolved = (*resolved, aot[resolved] - 1)
    return resolved


def _parse_key(line: str, i: int) -> tuple[KeyPath, int] | None:
    """Parse a (dotted) key at line[i:]; return its parts and the index after it and spaces."""
    parts: list[str] = []
    n = len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return None
        if line[i] in "\"'":
            quote = line[i]
            j = i + 1
            while j < n and line[j] != quote:
                j += 2 if quote == '"' and line[j] == "\\" else 1
            if j >= n:
                return None
            parts.append(_decode_quoted(line[i: j + 1]))
            i = j + 1
        else:
            m = _BARE_KEY.match(line, i)
            if m is None:
                return None
            parts.append(m.group())
            i = m.end()
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == ".":
            i += 1
            continue
        return tuple(parts), i


def _decode_quoted(raw: str) -> str:
    if raw.startswith("'") or "\\" not in raw:
        return raw[1:-1]
    try:
        value = tomllib.loads(f"k = {raw}").get("k")
    except (ValueError, RecursionError):
        value = None
    return value if isinstance(value, str) else raw[1:-1]


def _skip_value(line: str, i: int, depth: int, ml: str) -> tuple[int, str]:
    """Scan a value from line[i:]; return the bracket depth and open multi-line string after."""
    n = len(line)
    while i < n:
        c = line[i]
        if ml:
            if ml == '"""' and c == "\\":
                i += 2
            elif line.startswith(ml, i):
                while i < n and line[i] == ml[0]:  # a closing run may hold 1-2 more quotes
                    i += 1
                ml = ""
            else:
                i += 1
        elif c == "#":
            break
        elif line.startswith('"""', i) or line.startswith("'''", i):
            ml, i = line[i: i + 3], i + 3
        elif c in "\"'":
            i += 1
            while i < n and line[i] != c:
                i += 2 if c == '"' and line[i] == "\\" else 1
            i += 1
        else:
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth = max(0, depth - 1)
            i += 1
    return depth, ml


def fmt_key(path: KeyPath) -> str:
    """("group", 0, "resource", 1, "start") -> "group[0].resource[1].start"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = part if _BARE_KEY.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{shown}" if out else shown
    return out
