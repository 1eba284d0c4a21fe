"""pg_hba.conf and pg_ident.conf, sans-IO: the entry a given connection meets first in a
file someone else may have edited (untrusted: every parser returns a value or raises
`ValueError` naming what it could not read), what vigil needs of it, and vigil's own lines
in both files. Split out of pgfacts.py, whose `PgSpec` says whose lines they are.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vigil.replica.pgfacts import PgSpec

Token = tuple[str, bool]  # (text, it was quoted)
Match = bool | None  # None: cannot tell (a group, a file, a host name, SSL...)


@dataclass(frozen=True, slots=True)
class HbaEntry:
    line: int
    fields: tuple[tuple[Token, ...], ...]  # each field a comma-separated list of tokens

    @property
    def _method_at(self) -> int:
        if self.fields[0][0][0] == "local":
            return 3
        try:  # an address without /len is followed by its mask
            ipaddress.ip_address(self.fields[3][0][0])
            return 5
        except ValueError:
            return 4

    @property
    def method(self) -> str:
        at = self._method_at
        return self.fields[at][0][0] if at < len(self.fields) else ""

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(t for f in self.fields[self._method_at + 1:] for t, _ in f)


_TOKEN = re.compile(r'[ \t]*((?:"[^"]*"|[^ \t,#"])+)([ \t]*,)?')  # a comma: the list goes on


def _tokens(line: str) -> list[tuple[Token, ...]]:
    """Fields of one line, each a list of (text, quoted); a comment or a stray quote ends it."""
    fields: list[tuple[Token, ...]] = []
    current: list[Token] = []
    pos = 0
    while (m := _TOKEN.match(line, pos)) is not None:
        current.append((m.group(1).replace('"', ""), '"' in m.group(1)))
        pos = m.end()
        if not m.group(2):
            fields.append(tuple(current))
            current = []
    return fields + [tuple(current)] if current else fields


def parse_hba(text: str) -> list[HbaEntry]:
    """The entries of pg_hba.conf; lines too short to be one are skipped (the server
    refuses such a file on reload, and says where)."""
    entries: list[HbaEntry] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        fields, pending = _tokens(pending + raw), ""
        if fields and len(fields) >= (4 if fields[0][0][0] == "local" else 5):
            entries.append(HbaEntry(start, tuple(fields)))
    return entries


def _any(results: list[Match]) -> Match:
    return True if True in results else (None if None in results else False)


def _database(field: tuple[Token, ...], database: str, user: str) -> Match:
    """`replication` matches only replication connections, `all` all the others."""
    keywords: dict[str, Match] = {"all": database != "replication",
                                  "replication": database == "replication",
                                  "sameuser": database == user != "replication",
                                  "samerole": None, "samegroup": None}
    return _any([t == database and database != "replication" if q else
                 keywords[t] if t in keywords else None if t.startswith("@") else
                 t == database and database != "replication" for t, q in field])


def _user(field: tuple[Token, ...], user: str) -> Match:
    return _any([True if t == "all" and not q else None if t[:1] in ("+", "@", "/") and not q
                 else t == user for t, q in field])


def _address(entry: HbaEntry, address: str) -> Match:
    text = entry.fields[3][0][0]
    if text == "all":
        return True
    try:
        ip = ipaddress.ip_address(address)
        if "/" in text:
            return ip in ipaddress.ip_network(text, strict=False)
        mask = entry.fields[4][0][0]
        return ip in ipaddress.ip_network(f"{text}/{mask}", strict=False)
    except (ValueError, IndexError):
        return None  # a host name, samehost, samenet: cannot tell without the network


def hba_first(entries: Sequence[HbaEntry], database: str, user: str,
              address: str | None) -> tuple[HbaEntry, bool] | None:
    """The first entry a connection (TCP from `address`, or local when None) would meet,
    and whether it surely applies (False: it may, depending on what this cannot know)."""
    for entry in entries:
        kind = entry.fields[0][0][0]
        if address is None:
            if kind != "local":
                continue
            found = [_database(entry.fields[1], database, user), _user(entry.fields[2], user)]
        else:
            if kind not in ("host", "hostnossl", "hostnogssenc", "hostssl", "hostgssenc"):
                continue
            by_kind: Match = None if kind in ("hostssl", "hostgssenc") else True
            found = [by_kind, _database(entry.fields[1], database, user),
                     _user(entry.fields[2], user), _address(entry, address)]
        if False in found:
            continue
        return entry, None not in found
    return None


def hba_problems(spec: PgSpec, text: str, path: str) -> list[str]:
    """What keeps vigil's connections from working, per pg_hba.conf at `path`."""
    entries, problems = parse_hba(text), []
    wanted = [("replication", spec.replication_user, spec.peer_host,
               f"replication connections of {spec.replication_user} from {spec.peer_host}"),
              ("postgres", spec.replication_user, spec.peer_host,
               f"connections of {spec.replication_user} to database postgres from "
               f"{spec.peer_host} (pg_rewind, slots)"),
              ("postgres", "postgres", None, "local connections of postgres (vigil's own)")]
    for database, user, address, what in wanted:
        first = hba_first(entries, database, user, address)
        if first is None:
            problems.append(f"{path} has no entry for {what}")
            continue
        entry, sure = first
        if sure and entry.method == "reject":
            problems.append(f"{path} line {entry.line} rejects {what}")
        elif sure and address is None and (entry.method not in ("trust", "peer") or (
                entry.method == "peer" and not any(o.startswith("map=") for o in entry.options))):
            problems.append(f"{path} line {entry.line} ({entry.method}) does not let root in "
                            f"as postgres: vigil needs 'peer map=...' (pg_ident.conf) or trust")
    return problems


def render_hba(spec: PgSpec, hosts: bool) -> str:
    """vigil's block, put first in pg_hba.conf at initdb (first match wins). `hosts`: also
    the entries for both nodes' addresses (written last, once the role exists)."""
    method = "scram-sha-256" if spec.replication_password else "trust"
    lines = ["# vigil: its own connections (root as postgres, pg_ident.conf map vigil), and",
             "# replication, pg_rewind and slots between the two nodes.",
             "local   all          postgres                        peer map=vigil"]
    if hosts:
        for addr in (spec.peer_host, spec.host):
            net = f"{addr}/{32 if ipaddress.ip_address(addr).version == 4 else 128}"
            for database in ("replication", "postgres"):
                lines.append(f"host    {database:<12} {spec.replication_user:<14} "
                             f"{net:<18} {method}")
    return "\n".join(lines) + "\n\n"


def render_ident(spec: PgSpec) -> str:
    users = ["root"] + ([spec.user] if spec.user != "root" else [])
    return "# vigil: root (the daemon) and the server's user connect as postgres\n" + "".join(
        f"vigil   {u:<22} postgres\n" for u in users)
