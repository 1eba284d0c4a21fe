"""The top level of keepalived.conf: `BlockReader` reads global_defs (its gratuitous ARP
settings) and the vrrp_scripts (a check's argv, interval, timeout, weight and fall), then the
vrrp_instances (keepalived_instances.py), and lists the top-level blocks vigil has no use for
(static addresses and routes...) and the scripts no instance tracks.
"""

from __future__ import annotations

import shlex

from vigil.config.keepalived_importer import GARP, Instance, Script
from vigil.config.keepalived_instances import InstanceReader
from vigil.config.keepalived_syntax import Statement, title

_SHELL = "|&;<>()$`*?[]~"  # unquoted, these mean the script was written for /bin/sh -c
_TOP_DROPPED = {
    "static_ipaddress": "set by keepalived on every node at start: configure it in the OS "
                        "network configuration",
    "static_routes": "routes keepalived sets on every node: configure them in the OS",
    "static_rules": "rules keepalived sets on every node: configure them in the OS",
}
_TOP_KNOWN = ("vrrp_track_process", "track_file", "vrrp_track_file", "linkbeat_interfaces",
              "bfd_instance", "garp_group", "net_namespace", "net_namespace_ipvs",
              "namespace_with_ipsets", "instance", "use_pid_dir", "child_wait_time")


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


class BlockReader(InstanceReader):
    """The statements of a whole file: `top`, then `sync_groups`."""

    def top(self, statements: tuple[Statement, ...]) -> list[Instance]:
        instances: list[Instance] = []
        for s in statements:
            if s.keyword in ("vrrp_script", "vrrp_instance") and len(s.args) != 1:
                self.report(s, s.keyword, "expects one name before its { } block")
                continue
            if s.keyword == "vrrp_script":
                if s.args[0] in self.script_names:
                    self.report(s, title(s), "defined twice")
                self.script_names.add(s.args[0])
                script = self.script(s)
                if script is not None:
                    self.scripts[script.name] = (script, s)
            elif s.keyword == "global_defs":
                self.global_defs(s)
        for s in statements:
            if s.keyword == "vrrp_instance" and len(s.args) == 1:
                if any(i.name == s.args[0] for i in instances):
                    self.report(s, title(s), "defined twice")
                instances.append(self.instance(s))
            elif s.keyword in _TOP_DROPPED:
                inner = [b.keyword for b in s.block or () if b.keyword == "real_server"]
                extra = f" with {len(inner)} real_server" if inner else ""
                self.drop(s, f"{title(s)}{extra}", _TOP_DROPPED[s.keyword])
            elif s.keyword in _TOP_KNOWN:
                self.drop(s, title(s), "a keepalived feature vigil has no equivalent for")
            elif s.keyword not in ("vrrp_script", "vrrp_instance", "global_defs",
                                   "vrrp_sync_group", "virtual_server", "virtual_server_group"):
                self.report(s, s.keyword[:40], "unknown top-level block; keepalived.conf has "
                            "global_defs, vrrp_script, vrrp_sync_group, vrrp_instance, "
                            "virtual_server, virtual_server_group, static_* and a few more")
        for name, (_, s) in self.scripts.items():
            if name not in self.used_scripts:
                self.drop(s, title(s), "no vrrp_instance tracks it (keepalived does not run "
                                       "it either)")
        return instances

    def global_defs(self, s: Statement) -> None:
        others = []
        for d in self.block(s, "global_defs"):
            if d.keyword.startswith("vrrp_") and d.keyword[5:] in GARP:
                self.arp_setting(d, "global_defs", GARP[d.keyword[5:]], self.garp)
            else:
                others.append(d.keyword)
        if others:
            shown = ", ".join(others[:6]) + (", ..." if len(others) > 6 else "")
            self.drop(s, f"global_defs ({shown})", "mail alerts, router_id, script security and "
                      "daemon tuning have no vigil equivalent (vigil logs every state change; "
                      "it names nodes by host name)")

    def script(self, s: Statement) -> Script | None:
        where = title(s)
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
        return Script(s.args[0], argv, interval, timeout or interval, weight, reverse, fall,
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
