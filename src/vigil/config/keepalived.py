"""keepalived.conf -> vigil.toml (`vigil import keepalived FILE`, issue 6).

Three layers: words (comments, quotes, braces, `include`), `parse` (the block tree of
`Statement`s) and `import_text` / `import_file` (vrrp_instance blocks -> a model.Cluster,
written out by export.to_toml with a note wherever the meaning changed, and read back with
config.toml.parse, so that vigil's own checks apply and the Cluster returned is exactly what
the text says). Nothing here raises anything but ConfigError, and
every problem names the file, the line and the block/keyword.

keepalived.conf describes one machine; vigil.toml describes both. So the file's machine is
"this node" and the other "the peer": a group is at home on this node when its instance is
state MASTER (or priority 255, the address owner), else on the peer. Priorities are only
comparable across the two machines' files, which is why state decides; the comments say so.
Nothing is dropped silently: every block or keyword that is not carried over is listed.
"""

from __future__ import annotations

import dataclasses
import glob
import ipaddress
import os
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from vigil import model
from vigil.config import export, toml
from vigil.config.files import MAX_CONFIG_FILE, FileRefused, read_file
from vigil.errors import ConfigError, ConfigProblem

__all__ = ["Statement", "import_file", "import_text", "parse"]

_INCLUDES = ("include", "includer", "includem", "includew", "includeb", "includea")
_MAX_INCLUDE_DEPTH = 8
_MAX_BLOCK_DEPTH = 32
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
_INTEGER = re.compile(r"-?[0-9]{1,9}")
_SHELL = "|&;<>()$`*?[]~"  # unquoted, these mean the script was written for /bin/sh -c
_LVS = ("vigil does not manage IPVS; keep ldirectord/keepalived for LVS "
        "(`keepalived --check` runs only keepalived's LVS part beside vigil)")
_HOOKS = ("not run as it is (keepalived passes its own arguments): a [notify] hook reads "
          "VIGIL_EVENT: became_owner for MASTER, became_standby for BACKUP, group_failed "
          "for FAULT")
_NOTIFY = ("notify_master", "notify_backup", "notify_fault")  # kept as comments in the group
# keepalived's gratuitous ARP settings (in global_defs with a vrrp_ prefix) -> vigil's ip keys
_GARP = {"garp_master_delay": "arp_repeat_delay", "garp_master_repeat": "arp_count",
         "garp_master_refresh": "arp_refresh", "garp_interval": "arp_interval"}
_VRRP = "VRRP protocol setting: vigil does not speak VRRP"
_TOP_DROPPED = {
    "virtual_server": _LVS, "virtual_server_group": _LVS,
    "static_ipaddress": "set by keepalived on every node at start: configure it in the OS "
                        "network configuration",
    "static_routes": "routes keepalived sets on every node: configure them in the OS",
    "static_rules": "rules keepalived sets on every node: configure them in the OS",
}
_TOP_KNOWN = ("vrrp_track_process", "track_file", "vrrp_track_file", "linkbeat_interfaces",
              "bfd_instance", "garp_group", "net_namespace", "net_namespace_ipvs",
              "namespace_with_ipsets", "instance", "use_pid_dir", "child_wait_time")
_INSTANCE_DROPPED: dict[str, str] = {
    **dict.fromkeys(("mcast_src_ip", "mcast_dst_ip", "version", "native_ipv6", "unicast_ttl",
                     "check_unicast_src", "unicast_fault_no_peer", "old_unicast_checksum",
                     "v3_checksum_as_v2", "skip_check_adv_addr", "strict_mode", "accept",
                     "no_accept", "lower_prio_no_advert", "higher_prio_send_advert",
                     "down_timer_adverts", "timer_expired_backup", "kernel_rx_buf_size",
                     "linkbeat_use_polling", "debug", "vrf", "track_src_ip"), _VRRP),
    **dict.fromkeys(("use_vmac", "vmac_xmit_base", "use_vmac_addr", "use_ipvlan"),
                    "vigil moves addresses with the node's own MAC and gratuitous ARP"),
    **dict.fromkeys(("notify_stop", "notify", "notify_master_rx_lower_pri", "notify_deleted",
                     "notify_priority_changes"), _HOOKS),
    **dict.fromkeys(("track_file", "track_process", "track_bfd"),
                    "no such tracker in vigil: an exec resource's status command can check it"),
    **dict.fromkeys(("garp_lower_prio_delay", "garp_lower_prio_repeat", "garp_extra_if",
                     "garp_master_refresh_repeat", "gna_interval"),
                    "vigil announces on takeover, after a conflict and every arp_refresh"),
    "virtual_routes": "vigil manages addresses, not routes",
    "virtual_rules": "vigil manages addresses, not policy rules",
    "smtp_alert": "vigil sends no mail: every state change is a log line",
    "dont_track_primary": "vigil's ip resources always check their interface",
    "promote_secondaries": "set net.ipv4.conf.IFACE.promote_secondaries=1 with sysctl",
    "no_virtual_ipaddress": "a vigil group needs at least one resource",
    "lvs_sync_daemon_interface": _LVS,
    "auth_hmac": f"replaced by vigil's HMAC key file (`vigil keygen {export.KEY_FILE}`)",
}


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
class _Token:
    kind: str  # "word", "{", "}", "eol"
    text: str
    file: str
    line: int


def _needs_shell(text: str) -> bool:
    quote = ""
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in _SHELL:
            return True
    return False


def _fail(file: str, line: int | None, key: str, message: str) -> ConfigError:
    return ConfigError(ConfigProblem(file, line, key, message))


# --- text -> tokens -----------------------------------------------------------------------


def _words(line: str, file: str, n: int) -> tuple[list[_Token], bool]:
    """Split one line into words and braces; True when it ends with a `\\` continuation.
    Quotes (" or ') group, adjacent parts join (`a"b c"` is one word), `\\X` is X, and `!` or
    `#` outside quotes starts a comment, as in keepalived's parser."""
    out: list[_Token] = []
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
                    out.append(_Token("word", "".join(word), file, n))
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
                out.append(_Token("word", "".join(word), file, n))
                word = None
            if c in "#!":
                break
            if c in "{}":
                out.append(_Token(c, c, file, n))
        else:
            word = word if word is not None else []
            word.append(c)
        i += 1
    if quote:
        raise _fail(file, n, "<syntax>", f"unterminated {quote} quote")
    if word is not None:
        out.append(_Token("word", "".join(word), file, n))
    return out, False


class _Reader:
    """Reads files and follows `include` (keepalived's rule: a relative pattern is relative to
    the including file's directory; globs allowed). Notes what it could not read."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, int, str, str]] = []  # (file, line, what, why)

    def file(self, path: Path, stack: tuple[Path, ...] = (),
             at: tuple[str, int] | None = None) -> list[_Token]:
        try:
            data = read_file(path, MAX_CONFIG_FILE, "a configuration file").data
        except FileRefused as e:
            raise (_fail(at[0], at[1], "include", e.after(str(path))) if at else
                   _fail(str(path), None, "<file>", e.reason)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise _fail(str(path), line, "<syntax>",
                        f"not UTF-8 (byte {e.start} of the file)") from None
        return self.text(text, str(path), path.parent, (*stack, _real(path)))

    def text(self, text: str, source: str, base: Path | None,
             stack: tuple[Path, ...] = ()) -> list[_Token]:
        out: list[_Token] = []
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
                out.append(_Token("eol", "", source, n))
            cont = more
        return out

    def include(self, toks: list[_Token], source: str, n: int, base: Path | None,
                stack: tuple[Path, ...]) -> list[_Token]:
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
        out: list[_Token] = []
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


def _statement(words: list[_Token]) -> Statement:
    return Statement(words[0].text, tuple(w.text for w in words[1:]), words[0].file,
                     words[0].line)


def _tree(toks: list[_Token]) -> tuple[Statement, ...]:
    """Statements end at a line end, `{` or `}`; a `{` may also start the line after its
    keyword (keepalived accepts both)."""
    level: list[Statement] = []
    stack: list[tuple[Statement, list[Statement]]] = []  # (opener, the opener's siblings)
    words: list[_Token] = []
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
                raise _fail(t.file, t.line, _title(level[-1]),
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
        raise _fail(opener.file, opener.line, _title(opener),
                    "this block is never closed: a '}' is missing")
    return tuple(level)


def parse(text: str, source: str = "<memory>", base: Path | None = None) -> tuple[Statement, ...]:
    """keepalived.conf text -> its top-level statements. `base`: the directory relative includes
    are read from (None: an include is refused)."""
    return _tree(_Reader().text(text, source, base))


def _title(s: Statement) -> str:
    return " ".join((s.keyword, *s.args[:1]))[:60]


# --- statements -> vigil ------------------------------------------------------------------


@dataclass(slots=True)
class _Vip:
    address: model.IPInterface
    interface: str
    label: str | None
    comments: list[str]
    where: Statement


@dataclass(slots=True)
class _Script:
    name: str
    argv: tuple[str, ...]
    interval: float
    timeout: float
    weight: int
    reverse: bool
    fall: int
    comments: list[str]


@dataclass(slots=True)
class _Instance:
    name: str
    where: Statement
    master: bool = False
    priority: int = 100
    advert: float = 1.0
    interface: str | None = None
    nopreempt: bool = False
    preempt_delay: float | None = None
    src: model.IPAddress | None = None
    peer: model.IPAddress | None = None
    vrid: int | None = None
    vips: list[_Vip] = field(default_factory=list)
    checks: list[tuple[_Script, str]] = field(default_factory=list)  # (script, how it maps)
    comments: list[str] = field(default_factory=list)
    arp: dict[str, float] = field(default_factory=dict)  # TOML arp_* key -> value


@dataclass(slots=True)
class _Group:
    name: str
    members: list[_Instance]
    where: Statement
    extra: _Instance | None = None  # a sync group's own track_script and notify_*


class _Importer:
    """Walks the statements, collecting every problem (ConfigError at the end) and every
    block or keyword it does not carry over."""

    def __init__(self, source: str, notes: list[tuple[str, int, str, str]]) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []
        self.dropped = list(notes)  # (file, line, what, why)
        self.scripts: dict[str, tuple[_Script, Statement]] = {}
        self.script_names: set[str] = set()  # also those refused
        self.used_scripts: set[str] = set()
        self.garp: dict[str, float] = {}

    def report(self, s: Statement, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(s.file, s.line, key, message))

    def drop(self, s: Statement, what: str, why: str) -> None:
        self.dropped.append((s.file, s.line, what, why))

    def sorted_dropped(self) -> list[tuple[str, int, str, str]]:
        """What was not carried over, in file order (the main file first)."""
        return sorted(self.dropped, key=lambda d: (d[0] != self.source, d[0], d[1]))

    def value(self, s: Statement, where: str) -> str | None:
        if s.block is not None or len(s.args) != 1:
            self.report(s, f"{where}.{s.keyword}", "expects one value" + (
                ", not a { } block" if s.block is not None else f", found {len(s.args)}"))
            return None
        return s.args[0]

    def block(self, s: Statement, where: str) -> tuple[Statement, ...]:
        if s.block is None:
            self.report(s, f"{where}.{s.keyword}", "expects a { } block")
            return ()
        return s.block

    def number(self, s: Statement, where: str, lo: float, hi: float) -> float | None:
        v = self.value(s, where)
        if v is None:
            return None
        if not _NUMBER.fullmatch(v) or not lo <= float(v) <= hi:
            self.report(s, f"{where}.{s.keyword}", f"{v[:40]!r} is not a number of seconds "
                                                   f"from {lo:g} to {hi:g}")
            return None
        return float(v)

    def integer(self, s: Statement, where: str, lo: int, hi: int, v: str | None = None) -> int | None:
        v = self.value(s, where) if v is None else v
        if v is None:
            return None
        if not _INTEGER.fullmatch(v) or not lo <= int(v) <= hi:
            self.report(s, f"{where}.{s.keyword}", f"{v[:40]!r} is not an integer from "
                                                   f"{lo} to {hi}")
            return None
        return int(v)

    def address(self, s: Statement, key: str, v: str) -> model.IPAddress | None:
        try:
            a = ipaddress.ip_address(v)
        except ValueError:
            self.report(s, key, f"{v[:60]!r} is not an IPv4 or IPv6 address")
            return None
        if a.is_multicast or a.is_unspecified or a.is_loopback:
            self.report(s, key, f"{a} is not a unicast address")
            return None
        return a

    def ifname(self, s: Statement, key: str, v: str) -> str | None:
        if not v or len(v) > 15 or v in (".", "..") or any(c in "/:" or c.isspace() for c in v):
            self.report(s, key, f"{v[:60]!r} is not a Linux interface name (at most 15 "
                                "characters, no '/', ':' or spaces)")
            return None
        return v

    # --- the blocks ---

    def top(self, statements: tuple[Statement, ...]) -> list[_Instance]:
        instances: list[_Instance] = []
        for s in statements:
            if s.keyword in ("vrrp_script", "vrrp_instance") and len(s.args) != 1:
                self.report(s, s.keyword, "expects one name before its { } block")
                continue
            if s.keyword == "vrrp_script":
                if s.args[0] in self.script_names:
                    self.report(s, _title(s), "defined twice")
                self.script_names.add(s.args[0])
                script = self.script(s)
                if script is not None:
                    self.scripts[script.name] = (script, s)
            elif s.keyword == "global_defs":
                self.global_defs(s)
        for s in statements:
            if s.keyword == "vrrp_instance" and len(s.args) == 1:
                if any(i.name == s.args[0] for i in instances):
                    self.report(s, _title(s), "defined twice")
                instances.append(self.instance(s))
            elif s.keyword in _TOP_DROPPED:
                inner = [b.keyword for b in s.block or () if b.keyword == "real_server"]
                extra = f" with {len(inner)} real_server" if inner else ""
                self.drop(s, f"{_title(s)}{extra}", _TOP_DROPPED[s.keyword])
            elif s.keyword in _TOP_KNOWN:
                self.drop(s, _title(s), "a keepalived feature vigil has no equivalent for")
            elif s.keyword not in ("vrrp_script", "vrrp_instance", "global_defs",
                                   "vrrp_sync_group"):
                self.report(s, s.keyword[:40], "unknown top-level block; keepalived.conf has "
                            "global_defs, vrrp_script, vrrp_sync_group, vrrp_instance, "
                            "virtual_server, virtual_server_group, static_* and a few more")
        for name, (_, s) in self.scripts.items():
            if name not in self.used_scripts:
                self.drop(s, _title(s), "no vrrp_instance tracks it (keepalived does not run "
                                        "it either)")
        return instances

    def global_defs(self, s: Statement) -> None:
        others = []
        for d in self.block(s, "global_defs"):
            if d.keyword.startswith("vrrp_") and d.keyword[5:] in _GARP:
                self.arp_setting(d, "global_defs", _GARP[d.keyword[5:]], self.garp)
            else:
                others.append(d.keyword)
        if others:
            shown = ", ".join(others[:6]) + (", ..." if len(others) > 6 else "")
            self.drop(s, f"global_defs ({shown})", "mail alerts, router_id, script security and "
                      "daemon tuning have no vigil equivalent (vigil logs every state change; "
                      "it names nodes by host name)")

    def arp_setting(self, d: Statement, where: str, key: str, into: dict[str, float]) -> None:
        if key == "arp_count":
            n = self.integer(d, where, 0, 100)
            if n is not None:
                into[key] = n  # both bursts: keepalived repeats each burst the same
        else:
            v = self.number(d, where, 0, 86400)
            if v is not None:
                into[key] = v

    def script(self, s: Statement) -> _Script | None:
        where = _title(s)
        argv: tuple[str, ...] | None = None
        interval, timeout, weight, reverse, fall = 1.0, None, 0, False, 1
        comments: list[str] = []
        for d in self.block(s, where):
            if d.keyword == "script":
                argv = self.argv(d, where, comments)
            elif d.keyword in ("interval", "timeout"):
                v = self.number(d, where, 0.001, 86400)
                if d.keyword == "interval":
                    interval = interval if v is None else v
                else:
                    timeout = v
            elif d.keyword == "weight":
                if d.block is None and d.args[1:] in ((), ("reverse",), ("noreverse",)):
                    weight = self.integer(d, where, -253, 253, d.args[0] if d.args else "") or 0
                    reverse = d.args[1:] == ("reverse",)
                else:
                    self.report(d, f"{where}.weight", "expects <-253..253> [reverse]")
            elif d.keyword in ("fall", "rise"):
                n = self.integer(d, where, 1, 1000)
                if d.keyword == "fall" and n is not None:
                    fall = n
                elif n is not None and n > 1:
                    comments.append(f"rise {n}: vigil does not keep checking a node the group "
                                    "left; failures are forgotten after the group's "
                                    "failure_timeout or on `vigil resource cleanup`")
            elif d.keyword == "user":
                self.drop(d, f"{where} user", "vigil runs exec resources as its own user (root)")
            elif d.keyword == "init_fail":
                self.drop(d, f"{where} init_fail", "vigil runs the check when it starts the "
                          "group, so a failing check never starts it")
            else:
                self.drop(d, f"{where} {d.keyword[:40]}", "unknown keyword in vrrp_script")
        if argv is None:
            if not any(d.keyword == "script" for d in s.block or ()):
                self.report(s, f"{where}.script", "required keyword is missing")
            return None
        return _Script(s.args[0], argv, interval, timeout or interval, weight, reverse, fall,
                       comments)

    def argv(self, d: Statement, where: str, comments: list[str]) -> tuple[str, ...] | None:
        """keepalived splits the script string into words (2.x, no shell; 1.x used /bin/sh)."""
        if d.block is not None or not d.args:
            self.report(d, f"{where}.script", "expects the script, quoted when it has arguments")
            return None
        text = " ".join(d.args)
        try:
            words = shlex.split(text)
        except ValueError as e:
            self.report(d, f"{where}.script", f"cannot split {text[:60]!r} into words: {e}")
            return None
        if not words:
            self.report(d, f"{where}.script", "empty script")
            return None
        if _needs_shell(text) or not all(words):
            comments.append(f"script {text!r} needs a shell (old keepalived ran scripts "
                            "through /bin/sh): carried as /bin/sh -c")
            return ("/bin/sh", "-c", text)
        if not words[0].startswith("/"):
            comments.append(f"{words[0]} is not an absolute path: carried as /usr/bin/env "
                            f"{words[0]} (found on the daemon's PATH); write its full path")
            return ("/usr/bin/env", *words)
        return tuple(words)

    def instance(self, s: Statement) -> _Instance:
        where = _title(s)
        inst = _Instance(s.args[0], s)
        state = "BACKUP"
        tracks: list[Statement] = []
        for d in self.block(s, where):
            k = d.keyword
            if k == "state":
                v = self.value(d, where)
                if v is not None and v.upper() not in ("MASTER", "BACKUP"):
                    self.report(d, f"{where}.state", f"{v[:40]!r} is not MASTER or BACKUP")
                elif v is not None:
                    state = v.upper()
            elif k == "priority":
                inst.priority = self.integer(d, where, 1, 255) or inst.priority
            elif k == "virtual_router_id":
                inst.vrid = self.integer(d, where, 1, 255)
                if inst.vrid is not None:
                    inst.comments.append(f"virtual_router_id {inst.vrid}: VRRP's number for "
                                         "the instance; vigil names groups instead")
            elif k == "advert_int":
                inst.advert = self.number(d, where, 0.01, 255) or inst.advert
            elif k == "interface":
                v = self.value(d, where)
                inst.interface = None if v is None else self.ifname(d, f"{where}.{k}", v)
            elif k == "nopreempt":
                inst.nopreempt = True
            elif k == "preempt":
                inst.nopreempt = False
            elif k == "preempt_delay":
                inst.preempt_delay = self.number(d, where, 0, 1000)
            elif k == "unicast_src_ip":
                v = self.value(d, where)
                inst.src = None if v is None else self.address(d, f"{where}.{k}", v)
            elif k == "unicast_peer":
                self.unicast_peer(d, inst)
            elif k == "authentication":
                self.authentication(d, where)
            elif k in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
                tracks.append(d)
            elif k == "track_interface":
                names = [t.keyword for t in self.block(d, where)]
                self.drop(d, f"{where} track_interface {' '.join(names)[:60]}",
                          "vigil's ip resources check their own interface (up, with carrier) "
                          "and move the group when it fails; other interfaces and weights are "
                          "not watched")
            elif k == "track_script":
                tracks.append(d)
            elif k in _NOTIFY:
                self.notify(d, inst, where)
            elif k in _GARP:
                self.arp_setting(d, where, _GARP[k], inst.arp)
            elif k in _INSTANCE_DROPPED:
                self.drop(d, f"{where} {k}", _INSTANCE_DROPPED[k])
            else:
                self.drop(d, f"{where} {k[:40]}", "unknown keyword in vrrp_instance")
        inst.master = state == "MASTER" or inst.priority == 255
        for d in tracks:  # after interface, which addresses default to
            if d.keyword == "track_script":
                self.track_script(d, inst, where)
            else:
                for e in self.block(d, where):
                    vip = self.vip(e, f"{where}.{d.keyword}", inst.interface)
                    if vip is not None:
                        inst.vips.append(vip)
        if not any(d.keyword == "interface" for d in s.block or ()) and (
                inst.src is None or inst.peer is None):
            self.report(s, f"{where}.interface", "required keyword is missing (vigil needs it "
                        "for the heartbeat unless unicast_src_ip and unicast_peer are set)")
        if not inst.vips:
            self.drop(s, where, "no virtual_ipaddress: a vigil group needs at least one "
                                "resource")
        return inst

    def notify(self, d: Statement, inst: _Instance, where: str) -> None:
        inst.comments.append(f"{d.keyword} {' '.join(d.args)} ({d.file}:{d.line}): {_HOOKS}")
        self.drop(d, f"{where} {d.keyword}", f"{_HOOKS} (kept as a comment in the group)")

    def unicast_peer(self, d: Statement, inst: _Instance) -> None:
        where = f"{_title(inst.where)}.unicast_peer"
        peers = [p for p in self.block(d, _title(inst.where))]
        if len(peers) != 1:
            self.report(d, where, f"vigil supports exactly two nodes for now: give one peer, "
                                  f"found {len(peers)}")
            return
        if peers[0].args:
            self.drop(peers[0], f"{where} {' '.join(peers[0].args)[:40]}", _VRRP)
        inst.peer = self.address(peers[0], where, peers[0].keyword)

    def authentication(self, d: Statement, where: str) -> None:
        kind = "?"
        for a in self.block(d, where):
            if a.keyword == "auth_type":
                kind = self.value(a, f"{where}.authentication") or kind
            elif a.keyword != "auth_pass":
                self.drop(a, f"{where} authentication {a.keyword[:40]}",
                          "unknown keyword in authentication")
        self.drop(d, f"{where} authentication (auth_type {kind})",
                  f"replaced by vigil's HMAC key file: run `vigil keygen {export.KEY_FILE}` "
                  "on one node and copy the file to the other (mode 0600); auth_pass is not "
                  "used")

    def track_script(self, d: Statement, inst: _Instance, where: str) -> None:
        for t in self.block(d, where):
            found = self.scripts.get(t.keyword)
            if found is None:
                if t.keyword not in self.script_names:
                    self.report(t, f"{where}.track_script", f"no vrrp_script named "
                                                           f"{t.keyword[:40]!r}")
                continue
            self.used_scripts.add(t.keyword)
            script = found[0]
            weight, reverse = script.weight, script.reverse
            if t.args[:1] == ("weight",) and t.args[2:] in ((), ("reverse",), ("noreverse",)):
                w = self.integer(t, f"{where}.track_script", -253, 253,
                                 t.args[1] if len(t.args) > 1 else "")
                weight, reverse = w or 0, t.args[2:] == ("reverse",)
            elif t.args:
                self.report(t, f"{where}.track_script", "expects SCRIPT [weight N [reverse]]")
                continue
            if reverse:
                self.drop(t, f"{where} track_script {t.keyword} (reverse)", "vigil moves a "
                          "group when a check fails, never when it succeeds")
                continue
            how = "a failing check moves the group (keepalived: FAULT state)"
            if weight:
                how = (f"weight {weight:+d} changed keepalived's priority, which moved the "
                       "address only if it crossed the peer's priority; vigil moves the group "
                       "whenever the check fails: check that is what you meant")
            inst.checks.append((script, how))

    def vip(self, e: Statement, key: str, default: str | None) -> _Vip | None:
        """`<IPADDR>[/<MASK>] [brd X] [dev X] [label X] [scope X] ...` (ip address add)."""
        if e.block is not None:
            self.report(e, key, "expects an address per line, not a { } block")
            return None
        text = e.keyword
        try:
            address = ipaddress.ip_interface(text)
        except ValueError:
            self.report(e, key, f"{text[:60]!r} is not an address such as 192.168.1.100/24")
            return None
        ip = address.ip
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
            self.report(e, key, f"{ip} is not a unicast address")
            return None
        comments = [] if "/" in text else [
            f"keepalived's default prefix /{address.network.prefixlen} (no subnet route)"]
        interface, label = default, None
        args = list(e.args)
        while args:
            opt = args.pop(0)
            if opt in ("home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin",
                       "no_track", "use_vmac"):
                self.drop(e, f"{text} {opt}", "an option vigil's ip resources do not take")
                continue
            if opt not in ("brd", "broadcast", "dev", "label", "scope", "peer",
                           "preferred_lft"):
                self.report(e, key, f"unexpected {opt[:40]!r} after the address (one address "
                                    "per line; options: brd, dev, label, scope, ...)")
                return None
            if not args:
                self.report(e, key, f"{opt} needs a value")
                return None
            v = args.pop(0)
            if opt == "dev":
                interface = self.ifname(e, key, v)
                if interface is None:
                    return None
            elif opt == "label":
                label = v
            elif opt in ("brd", "broadcast") and isinstance(address, ipaddress.IPv4Interface) \
                    and v not in ("+", str(address.network.broadcast_address)):
                self.drop(e, f"{text} brd {v[:40]}", f"vigil sets the subnet's broadcast "
                          f"address ({address.network.broadcast_address})")
            elif opt not in ("brd", "broadcast"):
                self.drop(e, f"{text} {opt} {v[:40]}", "an option vigil's ip resources do "
                          "not take")
        if interface is None:
            self.report(e, key, f"{text}: no interface (add dev IFACE, or interface to the "
                                "vrrp_instance)")
            return None
        if label is not None and (len(label) > 15 or not label.startswith(interface)):
            self.drop(e, f"{text} label {label[:40]}", f"vigil's labels start with the "
                      f"interface name ({interface}) and have at most 15 characters")
            label = None
        return _Vip(address, interface, label, comments, e)

    def sync_groups(self, statements: tuple[Statement, ...],
                    instances: list[_Instance]) -> dict[str, _Group]:
        """Sync group name -> its group: the member instances, and its own checks and
        comments in `extra`."""
        by_name = {i.name: i for i in instances}
        member_of: dict[str, str] = {}
        groups: dict[str, _Group] = {}
        for s in statements:
            if s.keyword != "vrrp_sync_group":
                continue
            where = _title(s)
            if len(s.args) != 1 or s.args[0] in groups:
                self.report(s, where, "expects one name, not used by another sync group")
                continue
            members: list[_Instance] = []
            extra = _Instance(s.args[0], s)
            for d in self.block(s, where):
                if d.keyword == "group":
                    for m in self.block(d, where):
                        for name in (m.keyword, *m.args):
                            if name not in by_name:
                                self.report(m, f"{where}.group", f"no vrrp_instance named "
                                                                 f"{name[:40]!r}")
                            elif name in member_of:
                                self.report(m, f"{where}.group", f"{name} is already in "
                                                                 f"vrrp_sync_group "
                                                                 f"{member_of[name]}")
                            else:
                                member_of[name] = s.args[0]
                                members.append(by_name[name])
                elif d.keyword == "track_script":
                    self.track_script(d, extra, where)
                elif d.keyword in _NOTIFY:
                    self.notify(d, extra, where)
                elif d.keyword in _INSTANCE_DROPPED or d.keyword == "track_interface":
                    self.drop(d, f"{where} {d.keyword}", _INSTANCE_DROPPED.get(
                        d.keyword, "vigil's ip resources check their own interface"))
                else:
                    self.drop(d, f"{where} {d.keyword[:40]}", "unknown keyword in "
                                                               "vrrp_sync_group")
            if not members:
                self.report(s, f"{where}.group", "a sync group needs a group { } of "
                                                 "vrrp_instance names")
                continue
            groups[s.args[0]] = _Group(s.args[0], members, s, extra)
        return groups


# --- the cluster and its notes -----------------------------------------------------------


def _group_name(raw: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", raw).lstrip("_.-")[:60] or "group"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _pairs(imp: _Importer, usable: list[_Instance]) -> list[tuple[model.IPAddress,
                                                                   model.IPAddress, str]]:
    """The unicast heartbeat links: (this node's address, the peer's, the instance's name).
    Reports what two nodes with one address each per link cannot be."""
    pairs: list[tuple[model.IPAddress, model.IPAddress, str]] = []
    for i in usable:
        key = f"{_title(i.where)}.unicast_peer"
        if i.src is None or i.peer is None or any((i.src, i.peer) == p[:2] for p in pairs):
            continue
        if i.src == i.peer:
            imp.report(i.where, key, "is unicast_src_ip itself")
        elif i.src.version != i.peer.version:
            imp.report(i.where, key, "unicast_src_ip and unicast_peer differ in family")
        elif clash := [p for p in pairs if {i.src, i.peer} & set(p[:2])]:
            s, p, other = clash[0]
            imp.report(i.where, key, f"{i.src} -> {i.peer} differs from {other}'s {s} -> {p}: "
                                     "vigil supports exactly two nodes, one address each per "
                                     "link")
        else:
            pairs.append((i.src, i.peer, i.name))
    seen = {a: "a node's heartbeat address" for s, p, _ in pairs for a in (s, p)}
    for i in usable:
        for v in i.vips:
            if v.address.ip in seen:
                imp.report(v.where, f"{_title(i.where)}.virtual_ipaddress",
                           f"{v.address.ip} is already {seen[v.address.ip]}")
            seen.setdefault(v.address.ip, f"a virtual address of {i.name}")
    return pairs


def _cluster(imp: _Importer, usable: list[_Instance],
             syncs: dict[str, _Group]) -> tuple[model.Cluster, dict[str, str]]:
    """The cluster, and export.to_toml's notes: by [cluster] key, "mcast" (above the links),
    "group:NAME", and the rest (listed on top)."""
    pairs = _pairs(imp, usable)
    if imp.problems:
        raise ConfigError(sorted(imp.problems, key=lambda p: (p.file != imp.source, p.file,
                                                              p.line or 0)))
    notes: dict[str, str] = {}
    first = usable[0]
    if pairs:
        this, peer = (f"node-{str(a).replace('.', '-').replace(':', '-')}" for a in pairs[0][:2])
        notes["nodes"] = (f"keepalived names no nodes: {this} (this node) and {peer} come from "
                          f"{pairs[0][2]}'s unicast_src_ip and unicast_peer.")
    else:
        this, peer = ("master", "backup") if first.master else ("backup", "master")
        notes["nodes"] = (f"keepalived names no nodes: this node is called {this!r} because "
                          f"{first.name}, the first vrrp_instance, is state "
                          f"{'MASTER' if first.master else 'BACKUP'} here; the peer {peer!r}.")
    notes["nodes"] += " vigil finds its node by `uname -n` (or --node): rename both."
    notes["key_file"] = (f"vigil signs every heartbeat with the key in {export.KEY_FILE} "
                         "(keepalived's authentication { auth_type PASS|AH } is not used): run "
                         f"`vigil keygen {export.KEY_FILE}` on one node and copy the file to "
                         "the other (mode 0600).")
    notes.update((f"{f}:{n}: {what}", why) for f, n, what, why in imp.sorted_dropped())

    advert = min(i.advert for i in usable)
    fastest = min((i for i in usable if i.advert == advert), key=lambda i: i.priority)
    skew = (256 - fastest.priority) / 256 * advert
    deadtime = round((3 * advert + skew) * 1000) / 1000
    notes["keepalive"] = (f"advert_int {advert:g} ({fastest.name}): the master's VRRP advert "
                          "interval; vigil's heartbeats go both ways every keepalive." + (
                              " The instances' advert_int differ: vigil has one keepalive for "
                              "all groups, the shortest is kept."
                              if len({i.advert for i in usable}) > 1 else ""))
    notes["warntime"] = "new: a heartbeat later than this (2 x keepalive) is logged as late."
    notes["deadtime"] = (f"VRRP's Master_Down_Interval, 3 x advert_int + skew, where skew = "
                         f"(256 - priority) / 256 x advert_int = {skew:.3f}s with priority "
                         f"{fastest.priority}. The skew lets the best of several backups act "
                         "first; vigil has one backup and waits the same on both nodes.")
    notes["initdead"] = ("keepalived also waits one Master_Down_Interval after start; vigil's "
                         "default is 3s: raise it if the network comes up slowly at boot.")
    nopreempt = [i.name for i in usable if i.nopreempt]
    notes["auto_failback"] = (
        f"nopreempt ({', '.join(nopreempt)}): keepalived leaves the address where it is when "
        "a higher priority returns; vigil leaves the groups until `vigil takeover` on the "
        "home node." + (" Only some instances set nopreempt: vigil has one auto_failback for "
                        "all groups, and false moves nothing by itself."
                        if len(nopreempt) != len(usable) else "")
        if nopreempt else "keepalived preempts by default: the higher priority takes the "
        "address back when it returns; vigil moves the groups back to their home node.")
    notes["auto_failback"] += "".join(
        f" preempt_delay {i.preempt_delay:g} ({i.name}): vigil has no delay before failback: "
        "with auto_failback = false, run `vigil takeover` on the home node when it is ready."
        for i in usable if i.preempt_delay)

    links: list[model.ExtraLink] = []
    for i in usable:
        if (i.src is None or i.peer is None) and i.interface and all(
                link.interface != i.interface for link in links):
            vrid = i.vrid or len(links) + 1
            maddr = f"239.0.0.{vrid}" if i.vips[0].address.version == 4 else \
                f"ff02::5646:{vrid:x}"
            links.append(model.ExtraLink("mcast", i.interface, ipaddress.ip_address(maddr)))
            notes["mcast"] = notes.get("mcast", "keepalived sends VRRP adverts by multicast "
                                       "(224.0.0.18, ff02::12); vigil's heartbeats use groups of "
                                       "its own (239.0.0.VRID) and UDP port 694.")
            if i.peer is not None:
                notes["mcast"] += (f" {i.name} has unicast_peer but no unicast_src_ip: the "
                                   "file does not say this node's address; add both nodes' "
                                   "to [[node]] address for a unicast link.")
    nodes = sorted((model.Node(this, tuple(s for s, _, _ in pairs)),
                    model.Node(peer, tuple(p for _, p, _ in pairs))), key=lambda n: n.name)

    groups: list[model.Group] = []
    taken: set[str] = set()
    grouped = {id(m): g for g in syncs.values() for m in g.members}
    written: list[_Group] = []
    for i in usable:  # in file order: a sync group where its first usable member is
        sync = grouped.get(id(i))
        if sync is not None and any(sync is w for w in written):
            continue
        g = _Group(i.name, [i], i.where) if sync is None else sync
        written.append(g)
        name = _group_name(g.name, taken)
        group, note = _group(dataclasses.replace(g, name=name, members=[
            m for m in g.members if m.vips]), this, peer)
        groups.append(group)
        notes[f"group:{name}"] = note
    timings = model.Timings(advert, 2 * advert, deadtime, deadtime)
    return model.Cluster(_group_name(first.name, set()), export.KEY_FILE, tuple(nodes),
                         tuple(groups), timings, auto_failback=not nopreempt,
                         links=tuple(links)), notes


def _group(g: _Group, this: str, peer: str) -> tuple[model.Group, str]:
    lead = g.members[0]
    sources = [g.extra, *g.members] if g.extra else g.members
    said = [f"{_title(g.where)} ({g.where.file}:{g.where.line})"
            + (f", instances {', '.join(m.name for m in g.members)}" if g.extra else "") + "."]
    if g.where.args and g.name != g.where.args[0]:
        said.append(f"Renamed from {g.where.args[0]!r}: vigil's group names are unique, of "
                    "letters, digits, '_', '.' and '-'.")
    said.append(f"state {'MASTER' if lead.master else 'BACKUP'}, priority {lead.priority} "
                "here: home is " + (f"this node ({this})." if lead.master else
                                    f"the peer ({peer}); its priority is not in this file: "
                                    f"if this machine's is the higher, set home = \"{this}\"."))
    mixed = [m.name for m in g.members if m.master != lead.master]
    if mixed:
        said.append(f"{', '.join(mixed)} have another state: keepalived wants one state for a "
                    "whole sync group.")
    said += [f"{m.name}: {c}." for m in sources for c in m.comments]
    checks: list[tuple[_Script, str]] = []
    for m in sources:
        checks += [c for c in m.checks if all(c[0].name != o[0].name for o in checks)]
    resources: list[model.Resource] = []
    for script, how in checks:
        said.append(f"vrrp_script {script.name} is an exec resource whose start and status "
                    f"run the check (a node where it fails does not take the group): {how}.")
        said += [f"{script.name}: {c}." for c in script.comments]
        resources.append(model.ExecResource(
            start=script.argv, stop=("/bin/true",), status=script.argv, timeout=script.timeout,
            monitor=model.Monitor(script.interval, script.timeout)))
    policy = model.GroupPolicy()
    if checks:
        fall = min(100, min(c[0].fall for c in checks))
        policy = model.GroupPolicy(migration_threshold=fall)
        said.append(f"migration_threshold = fall ({fall}): failed checks before the group "
                    "leaves the node.")
    d = model.ArpSettings()
    by_comment: dict[str, list[str]] = {}
    for m in g.members:
        a = m.arp
        arp = model.ArpSettings(int(a.get("arp_count", d.count)),
                                a.get("arp_interval", d.interval),
                                a.get("arp_repeat_delay", d.repeat_delay),
                                int(a.get("arp_count", d.repeat_count)),
                                a.get("arp_refresh", d.refresh))
        if a:
            said.append(f"{m.name}: the arp_* keys come from keepalived's garp_* settings.")
        for v in m.vips:
            for c in v.comments:
                by_comment.setdefault(c, []).append(v.address.with_prefixlen)
            resources.append(model.IpResource(v.address, v.interface, v.label, arp))
    said += [f"{', '.join(addresses)}: {c}." for c, addresses in by_comment.items()]
    return model.Group(g.name, this if lead.master else peer, tuple(resources), policy), \
        " ".join(said)


# --- the entry points ---------------------------------------------------------------------


def import_text(text: str, source: str = "<memory>",
                base: Path | None = None) -> tuple[model.Cluster | None, str, list[str]]:
    """keepalived.conf text -> (the Cluster, its vigil.toml text, what was not carried over).

    `base` is the directory relative includes are read from (None: an include is refused).
    The Cluster is None when there is nothing to import (no vrrp_instance with an address,
    an LVS-only file say); the text then only lists what was not carried over."""
    reader = _Reader()
    return _import(reader.text(text, source, base), source, reader.notes)


def import_file(path: Path) -> tuple[model.Cluster | None, str, list[str]]:
    """Read keepalived.conf at `path`, following its includes, and import it (import_text)."""
    reader = _Reader()
    return _import(reader.file(Path(path)), str(path), reader.notes)


def _import(toks: list[_Token], source: str,
            notes: list[tuple[str, int, str, str]]) -> tuple[model.Cluster | None, str, list[str]]:
    imp = _Importer(source, notes)
    statements = _tree(toks)
    instances = imp.top(statements)
    syncs = imp.sync_groups(statements, instances)
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
        lines = [header, "Nothing to import: no vrrp_instance with a virtual_ipaddress.",
                 "Not carried over:", *(f"- {d}" for d in dropped)]
        return None, "".join(f"# {part}\n" for line in lines
                             for part in textwrap.wrap(line, 96, subsequent_indent="  ")), dropped
    cluster, why = _cluster(imp, usable, syncs)
    text = export.to_toml(cluster, why, header)
    try:
        return toml.parse(text, f"{source} (imported)"), text, dropped
    except ConfigError as e:  # a rule of vigil's that the checks above missed: say it plainly
        raise ConfigError([dataclasses.replace(p, file=source, line=None,
                                               message=f"vigil refuses the import: {p.message}")
                           for p in e.problems]) from None
