"""keepalived's checkers (HTTP_GET, SSL_GET, TCP_CHECK, MISC_CHECK) inside a real_server
-> vigil's checks, for keepalived_virtual.py. `delay_loop` (the virtual server's, or the
checker's own) is the interval, `connect_timeout` the timeout (at most the interval, noted),
`retry` (or `nb_get_retry`) + 1 the fall, rise 1 as keepalived re-adds a server at its first
good check; one url per check, its path, digest, status_code and regex.
"""

from __future__ import annotations

import shlex

from vigil.balancer import model as lb
from vigil.config.keepalived_importer import Importer
from vigil.config.keepalived_syntax import Statement

CHECKERS = {"HTTP_GET": "http", "SSL_GET": "https", "TCP_CHECK": "tcp", "MISC_CHECK": "exec"}
OTHERCHECKERS = ("SMTP_CHECK", "DNS_CHECK", "BFD_CHECK", "FILE_CHECK", "PING_CHECK",
                   "UDP_CHECK")
IGNORED = {  # keyword -> why it is not carried over
    "ha_suspend": "vigil checks on both directors all the time (a warm takeover)",
    "alpha": "vigil's first check result decides at once",
    "omega": "no quorum scripts in vigil", "quorum_up": "no quorum scripts in vigil",
    "quorum_down": "no quorum scripts in vigil", "hysteresis": "no quorum hysteresis",
    "sorry_server_inhibit": "the sorry server answers only below quorum already",
    "notify_up": "use [notify] hooks on real_server_up events",
    "notify_down": "use [notify] hooks on real_server_down events",
    "uthreshold": "no connection thresholds", "lthreshold": "no connection thresholds",
    "warmup": "checks start spread over their first interval",
    "delay_before_retry": "vigil retries at the check interval",
    "ops": "no one-packet scheduling", "one_packet_scheduling": "no one-packet scheduling",
    "smtp_alert": "vigil logs and emits events", "bindto": "checks go from the director's "
    "routed address", "bind_port": "checks use any source port", "connect_ip": "checks go "
    "to the real server's own address", "fwmark": "checks are not marked",
    "misc_dynamic": "an exec check's exit status is up (0) or down, not a weight",
    "user": "exec checks run as the daemon's user", "virtualhost": "set host = in the check",
}


def read_checker(imp: Importer, s: Statement, where: str, interval: float,
                 notes: list[str]) -> lb.Check:
    """A HTTP_GET, SSL_GET, TCP_CHECK or MISC_CHECK block -> its check; `notes` gets what
    changed meaning."""
    here = f"{where}: {s.keyword}"
    kind = CHECKERS[s.keyword]
    timeout, retry, port = 5.0, 1, None
    path, digest, body = "/", None, None
    statuses: tuple[int, ...] = (200,)
    command: tuple[str, ...] = ()
    urls = 0
    for d in imp.block(s, here):
        if d.keyword in ("connect_timeout", "misc_timeout"):
            timeout = seconds(imp, d, here, 5.0)
        elif d.keyword in ("retry", "nb_get_retry"):
            retry = imp.integer(d, here, 0, 99) or 0
        elif d.keyword == "delay_loop":
            interval = seconds(imp, d, here, interval)
        elif d.keyword == "connect_port":
            port = imp.integer(d, here, 1, 65535)
        elif d.keyword == "misc_path" and kind == "exec":
            text = imp.value(d, here) or ""
            try:
                command = tuple(shlex.split(text))
            except ValueError as e:
                imp.report(d, f"{here}.misc_path", f"cannot split {text[:60]!r}: {e}")
        elif d.keyword == "url" and kind in ("http", "https"):
            urls += 1
            if urls > 1:
                imp.drop(d, f"{here}: url", "one url per check: the first is kept")
                continue
            for u in imp.block(d, f"{here}.url"):
                if u.keyword == "path":
                    path = imp.value(u, here) or "/"
                elif u.keyword == "digest":
                    digest = (imp.value(u, here) or "").lower() or None
                elif u.keyword == "status_code":
                    statuses = statuses_of(imp, u, here)
                elif u.keyword == "regex":
                    body = imp.value(u, here)
                else:
                    imp.drop(u, f"{here}: url {u.keyword}", "not a vigil check key")
        elif d.keyword in IGNORED:
            imp.drop(d, f"{here}: {d.keyword}", IGNORED[d.keyword])
        else:
            imp.report(d, f"{here}.{d.keyword[:40]}", f"unknown {s.keyword} keyword")
    if timeout > interval:  # vigil requires timeout <= interval; keepalived does not
        notes.append(f"{here}: connect_timeout {timeout:g} s is longer than the "
                            f"interval {interval:g} s: {interval:g} s")
        timeout = interval
    path = path if path.startswith("/") else "/" + path
    return lb.Check(type=kind, path=path,  # type: ignore[arg-type]
                    expect_status=statuses, expect_body=body, digest=digest, port=port,
                    command=command, interval=interval, timeout=timeout, rise=1,
                    fall=retry + 1)


def seconds(imp: Importer, d: Statement | None, where: str, default: float) -> float:
    """A number of seconds (0.001 to 86400), `default` when absent or wrong (reported)."""
    if d is None:
        return default
    v = imp.number(d, where, 0.001, 86400)
    return default if v is None else v


def statuses_of(imp: Importer, d: Statement, where: str) -> tuple[int, ...]:
    out: list[int] = []
    for a in d.args:
        lo, _, hi = a.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()) and 100 <= int(lo) <= int(hi or lo) <= 599:
            out += range(int(lo), int(hi or lo) + 1)
        else:
            imp.report(d, f"{where}.status_code", f"{a[:20]!r} is not an HTTP status "
                            "or range (200, 200-299)")
    return tuple(out) or (200,)
