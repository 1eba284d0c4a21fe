"""vigil's own configuration format (TOML) -> `model.Cluster`.

`parse` validates the whole document and raises one `ConfigError` carrying every problem found,
each with the file, the line of the offending key (or of its table header when the key is
missing) and the dotted key path (`cluster.deadtime`, `node[1].address`,
`group[0].resource[1].start`). Nothing is silently ignored: unknown keys are errors that list the
valid ones. examples/vigil.toml documents the format.
"""

from __future__ import annotations

import os
import re
import tomllib

from vigil import model
from vigil.config.files import MAX_CONFIG_FILE, FileRefused, decode_text, read_file
from vigil.config.locate import KeyPath, fmt_key, locate_keys
from vigil.config.toml_cluster import ClusterReader
from vigil.errors import ConfigError, ConfigProblem

__all__ = ["KeyPath", "fmt_key", "load", "locate_keys", "parse"]

_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load(path: str | os.PathLike[str]) -> model.Cluster:
    """Read and parse the file at `path`; an unreadable file is a ConfigError (key `<file>`),
    and so is one that is not a regular file or is larger than MAX_CONFIG_FILE (files.py). A
    UTF-8 byte-order mark at the start is dropped."""
    source = os.fspath(path)
    try:
        data = read_file(source, MAX_CONFIG_FILE, "a configuration file").data
    except FileRefused as e:
        raise ConfigError(ConfigProblem(source, None, "<file>", e.reason)) from None
    return parse(decode_text(data, source), source)


def parse(text: str, source: str = "<memory>") -> model.Cluster:
    """Parse and validate TOML `text`; `source` names it in problems and in `Cluster.source`."""
    try:
        doc = tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or int() refusing a 5000-digit number
        raise ConfigError(_syntax_problem(source, text, e)) from None
    except RecursionError:
        raise ConfigError(ConfigProblem(source, None, "<syntax>", "nested too deeply")) from None
    checker = ClusterReader(source, locate_keys(text))
    cluster = checker.cluster(doc)
    if checker.problems or cluster is None:
        assert checker.problems, "a part was refused without saying why"
        problems = sorted(checker.problems, key=lambda p: p.line or 0)
        raise ConfigError(problems)
    return cluster


def _syntax_problem(source: str, text: str, e: ValueError) -> ConfigProblem:
    message = str(e)
    at = _SYNTAX_AT.search(message)
    if at is not None:
        return ConfigProblem(source, int(at.group(1)), "<syntax>",
                             f"{message[: at.start()]} (column {at.group(2)})")
    if isinstance(e, tomllib.TOMLDecodeError) and "end of document" in message:
        return ConfigProblem(source, text.rstrip().count("\n") + 1, "<syntax>", message)
    return ConfigProblem(source, None, "<syntax>", message)
