"""The syntax of keepalived.conf, as keepalived's parser reads it: words (comments, quotes,
braces, `\\` continuations), the `include` files they pull in (`Reader`), and the tree of
`Statement`s with their `{ }` blocks (`tree_of`). A problem is a ConfigError naming the file,
the line and the keyword.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from vigil.config.files import MAX_CONFIG_FILE, FileRefused, decode_text, read_file
from vigil.errors import ConfigError, ConfigProblem

_INCLUDES = ("include", "includer", "includem", "includew", "includeb", "includea")
_MAX_INCLUDE_DEPTH = 8
_MAX_BLOCK_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Statement:
    """One keyword of keepalived.conf with its arguments, and its `{ }` block if it opens one.
    List blocks (virtual_ipaddress, group, track_script...) hold one Statement per line."""

    keyword: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Statement, ...] | None = None


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "word", "{", "}", "eol"
    text: str
    file: str
    line: int


def _fail(file: str, line: int | None, key: str, message: str) -> ConfigError:
    return ConfigError(ConfigProblem(file, line, key, message))


# --- text -> tokens -----------------------------------------------------------------------


def _words(line: str, file: str, n: int) -> tuple[list[Token], bool]:
    """Split one line into words and braces; True when it ends with a `\\` continuation.
    Quotes (" or ') group, adjacent parts join (`a"b c"` is one word), `\\X` is X, and `!` or
    `#` outside quotes starts a comment, as in keepalived's parser."""
    out: list[Token] = []
    word: list[str] | None = None
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if (c < " " and c != "\t") or c == "\x7f" or "\ud800" <= c <= "\udfff":
            raise _fail(file, n, "<syntax>", f"control character U+{ord(c):04X} in the text")
        if c == "\\":
            if i + 1 == len(line):
                if quote:
                    break  # reported below as an unterminated quote
                if word is not None:
                    out.append(Token("word", "".join(word), file, n))
                return out, True
            i += 1
            word = word if word is not None else []
            word.append(line[i])
        elif quote:
            if c == quote:
                quote = ""
            else:
                assert word is not None
                word.append(c)
        elif c in "\"'":
            quote, word = c, word if word is not None else []
        elif c in "#!" or c.isspace() or c in "{}":
            if word is not None:
                out.append(Token("word", "".join(word), file, n))
                word = None
            if c in "#!":
                break
            if c in "{}":
                out.append(Token(c, c, file, n))
        else:
            word = word if word is not None else []
            word.append(c)
        i += 1
    if quote:
        raise _fail(file, n, "<syntax>", f"unterminated {quote} quote")
    if word is not None:
        out.append(Token("word", "".join(word), file, n))
    return out, False


class Reader:
    """Reads files and follows `include` (keepalived's rule: a relative pattern is relative to
    the including file's directory; globs allowed). Notes what it could not read."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, int, str, str]] = []  # (file, line, what, why)

    def file(self, path: Path, stack: tuple[Path, ...] = (),
             at: tuple[str, int] | None = None) -> list[Token]:
        try:
            data = read_file(path, MAX_CONFIG_FILE, "a configuration file").data
        except FileRefused as e:
            raise (_fail(at[0], at[1], "include", e.after(str(path))) if at else
                   _fail(str(path), None, "<file>", e.reason)) from None
        return self.text(decode_text(data, str(path)), str(path), path.parent,
                         (*stack, _real(path)))

    def text(self, text: str, source: str, base: Path | None,
             stack: tuple[Path, ...] = ()) -> list[Token]:
        out: list[Token] = []
        cont = False
        for n, raw in enumerate(text.split("\n"), 1):
            toks, more = _words(raw.removesuffix("\r"), source, n)
            first = toks[0].text if toks and toks[0].kind == "word" and not cont else ""
            if first in _INCLUDES:
                out += self.include(toks, source, n, base, stack)
            elif first.startswith(("$", "@", "~SEQ", "~LST")):
                raise _fail(source, n, first[:20], "keepalived's parameter substitution ($), "
                            "conditional lines (@) and ~SEQ/~LST are not read by the importer: "
                            "write the lines out as keepalived would expand them")
            else:
                out += toks
            if not more:
                out.append(Token("eol", "", source, n))
            cont = more
        return out

    def include(self, toks: list[Token], source: str, n: int, base: Path | None,
                stack: tuple[Path, ...]) -> list[Token]:
        if len(toks) != 2 or toks[1].kind != "word" or not toks[1].text:
            raise _fail(source, n, "include", "expects one file name or pattern")
        if base is None:
            raise _fail(source, n, "include", "the text was not read from a file, so its "
                        "includes cannot be found; import the file itself")
        if len(stack) >= _MAX_INCLUDE_DEPTH:
            raise _fail(source, n, "include", f"includes nested deeper than "
                                              f"{_MAX_INCLUDE_DEPTH} files")
        pattern = os.path.join(base, toks[1].text)
        matches = sorted(glob.glob(pattern))
        if not matches and glob.has_magic(pattern):
            why = "matches no file here, nothing read (includes are read on this machine)"
            self.notes.append((source, n, f"include {toks[1].text}", why))
        elif not matches:
            raise _fail(source, n, "include", f"{pattern}: no such file (includes are read on "
                                              "this machine: import where the files are)")
        out: list[Token] = []
        for m in matches:
            if _real(Path(m)) in stack:
                raise _fail(source, n, "include", f"{m} includes itself")
            if not os.path.isdir(m):
                out += self.file(Path(m), stack, (source, n))
        return out


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()


# --- tokens -> statements -----------------------------------------------------------------


def _statement(words: list[Token]) -> Statement:
    return Statement(words[0].text, tuple(w.text for w in words[1:]), words[0].file,
                     words[0].line)


def tree_of(toks: list[Token]) -> tuple[Statement, ...]:
    """Statements end at a line end, `{` or `}`; a `{` may also start the line after its
    keyword (keepalived accepts both)."""
    level: list[Statement] = []
    stack: list[tuple[Statement, list[Statement]]] = []  # (opener, the opener's siblings)
    words: list[Token] = []
    pending = False  # level[-1] ended at a line end: a `{` on a later line opens its block
    for t in toks:
        if t.kind == "word":
            words.append(t)
            continue
        ended = bool(words)
        if words:
            level.append(_statement(words))
            words = []
        if t.kind == "eol":
            pending = pending or ended
            continue
        if t.kind == "{":
            if not (ended or pending):
                raise _fail(t.file, t.line, "<syntax>", "'{' with no keyword before it")
            if len(stack) >= _MAX_BLOCK_DEPTH:
                raise _fail(t.file, t.line, title(level[-1]),
                            f"blocks nested deeper than {_MAX_BLOCK_DEPTH}")
            stack.append((level.pop(), level))
            level = []
        else:
            if not stack:
                raise _fail(t.file, t.line, "<syntax>", "'}' closes no block (one '}' too many)")
            opener, parent = stack.pop()
            parent.append(dataclasses.replace(opener, block=tuple(level)))
            level = parent
        pending = False
    if words:
        level.append(_statement(words))
    if stack:
        opener = stack[-1][0]
        raise _fail(opener.file, opener.line, title(opener),
                    "this block is never closed: a '}' is missing")
    return tuple(level)


def title(s: Statement) -> str:
    return " ".join((s.keyword, *s.args[:1]))[:60]
