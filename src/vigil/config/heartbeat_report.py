"""What the readers of a Heartbeat directory (ha.cf, haresources, authkeys) share: the
`Report` of reading it (the problems, the warnings to log at every start, the notes for an
exported vigil.toml) and the lines of its text files, which may hold bytes that are not UTF-8
in comments only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vigil.config.files import MAX_CONFIG_FILE, FileRefused, read_file
from vigil.errors import ConfigProblem


@dataclasses.dataclass
class Report:
    problems: list[ConfigProblem] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    notes: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def error(self, file: str, line: int | None, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(file, line, key, message))

    def warn(self, file: str, line: int | None, key: str, message: str) -> None:
        self.warnings.append(str(ConfigProblem(file, line, key, message)))
        self.note(key, message)

    def note(self, key: str, text: str) -> None:
        if text not in self.notes.setdefault(key, []):
            self.notes[key].append(text)


def read_lines(path: Path, r: Report) -> list[str] | None:
    """The lines of `path` (files.read_file: a regular file of at most MAX_CONFIG_FILE bytes,
    a byte-order mark dropped). Bytes that are not UTF-8 survive as surrogates, so that comments
    in any encoding (the seeds' guides are Chinese) pass; `bad_text` refuses them elsewhere."""
    try:
        data = read_file(path, MAX_CONFIG_FILE, "a configuration file").data
    except FileRefused as e:
        r.error(str(path), None, "<file>", e.reason)
        return None
    return [line.decode("utf-8", "surrogateescape").rstrip("\r") for line in data.split(b"\n")]


def bad_text(text: str) -> str | None:
    if "\0" in text:
        return "the line contains a NUL character"
    if any("\udc80" <= c <= "\udcff" for c in text):
        return "the line is not UTF-8 text"
    return None
