"""`vigil lb`: the load balancer as this director sees it, and the operator's drains.

    vigil lb status [--json]        every virtual server, its real servers, their health and
                                    (NAT) the connections each holds now
    vigil lb drain SERVICE SERVER   no new connection to SERVER (those open go on)
    vigil lb enable SERVICE SERVER  it takes connections again

A drain is this director's and lasts until its daemon restarts, as `ipvsadm -e -w 0` does;
for a lasting one set `weight = 0` in vigil.toml and reload on both nodes.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import click


def lb_text(s: dict[str, Any]) -> str:
    """`vigil lb status`'s text, from the status dict's "balancer"."""
    b = s.get("balancer")
    if b is None:
        return "no virtual server is configured"
    out = []
    for vs in b["virtual_servers"]:
        role = "directing" if vs["directing"] else f"standby (group {vs['group']} runs elsewhere)"
        taking = sum(1 for r in vs["servers"] if r["taking"])
        out.append(f"{vs['name']} {vs['address']} {vs['scheduler']} {vs['forward']}: {role}; "
                   f"{taking} of {len(vs['servers'])} servers take connections")
        if vs["below_quorum"]:
            out.append(f"  BELOW QUORUM ({vs['quorum']}): "
                       + (f"the sorry server {vs['sorry_server']} answers"
                          if vs["sorry_server"] else "new connections are refused"))
        for r in vs["servers"]:
            flags = [f for f, on in (("drained", r["drained"]),) if on]
            last = r["last_check"] or "not checked yet"
            ms = "" if r["latency_ms"] is None else f", {r['latency_ms']:.0f} ms"
            refused = f", {r['refusals']} refused" if r.get("refusals") else ""
            out.append(f"  {r['address']:<24} weight {r['weight']:<5} {r['health']:<7}"
                       f"{' ' + ','.join(flags) if flags else ''} (last check: {last}{ms}; "
                       f"{r['checks_ok']} ok, {r['checks_failed']} failed{refused}, "
                       f"{r['flaps']} flaps)")
            n = r.get("connections")
            if n is not None:  # as ipvsadm -L -n: ActiveConn, InActConn
                out.append(f"  {'':<24} open now: {n['active']} active, {n['inactive']} "
                           f"inactive")
            t = r.get("traffic")
            if t is not None:  # as ipvsadm -L --stats: since this director took over
                out.append(f"  {'':<24} {t['connections']} connections, in "
                           f"{t['packets_in']} packets {_size(t['bytes_in'])}, out "
                           + (f"{t['packets_out']} packets {_size(t['bytes_out'])}"
                              if vs["forward"] == "nat" else "direct (dr)"))
    if b.get("tcp_checks"):
        out.append(f"tcp checks: {b['tcp_checks']}")
    passive = b.get("passive_detection")
    if passive is not None:
        out.append("passive detection: " + (f"on, {passive['refusals_seen']} refusal(s) seen"
                                            if passive["on"] else
                                            f"OFF ({passive['error'] or 'not started'})"))
    sync = b.get("conntrack_sync")
    if sync is not None:
        state = f"running (pid {sync['pid']})" if sync["running"] else "NOT RUNNING"
        out.append(f"connection sync: conntrackd {state}, {sync['role']}, "
                   f"{sync['restarts']} restart(s)"
                   + (f"; last error: {sync['last_error']}" if sync["last_error"] else ""))
    if b.get("connections_error"):
        out.append(f"open connections not counted: {b['connections_error']}")
    if b["last_error"]:
        out.append(f"last error: {b['last_error']}")
    return "\n".join(out)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def register(cli: click.Group, common: Callable[[Any], Any],
             call: Callable[..., dict[str, Any]]) -> None:
    @cli.group()
    def lb() -> None:
        """The load balancer: virtual servers, real servers, drains."""

    @lb.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @common
    def status(c: Any, as_json: bool) -> None:
        """Every virtual server and its real servers' health, as this director sees them."""
        s = call(c, "lb_status")
        b = s.get("balancer")
        click.echo(json.dumps(b, indent=2) if as_json else lb_text(s))

    @lb.command()
    @click.argument("service")
    @click.argument("server")
    @common
    def drain(c: Any, service: str, server: str) -> None:
        """No new connection to SERVER (ADDRESS:PORT, as `lb status` shows it) of SERVICE;
        the open ones go on."""
        click.echo(call(c, "lb_drain", service=service, server=server)["message"])

    @lb.command()
    @click.argument("service")
    @click.argument("server")
    @common
    def enable(c: Any, service: str, server: str) -> None:
        """SERVER of SERVICE takes new connections again."""
        click.echo(call(c, "lb_enable", service=service, server=server)["message"])
