"""The commands Heartbeat users type, as thin entry points over vigil's control socket:
`hb_standby [all|foreign|local]`, `hb_takeover [all|foreign|local]` and `cl_status` with its
common subcommands, printing Heartbeat's words and exiting with its codes (cl_status: 0 ok,
1 "normal failure" such as a dead node or link, 11 bad parameters, 13 other errors).

They talk to the daemon on /run/vigil/vigil.sock, or on $VIGIL_SOCKET.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from vigil.cli.client import call
from vigil.errors import DaemonUnreachable, VigilError

OK, NORMAL_FAIL, PARAMETER_ERROR, UNKNOWN_ERROR = 0, 1, 11, 13
WHICH = ("all", "foreign", "local")


def _socket() -> Path:
    return Path(os.environ.get("VIGIL_SOCKET", "/run/vigil/vigil.sock"))


def _request(cmd: str, argv: list[str]) -> int:
    which = argv[0] if argv else "all"
    if len(argv) > 1 or which not in WHICH:
        print(f"usage: hb_{cmd} [all|foreign|local]", file=sys.stderr)
        return PARAMETER_ERROR
    try:
        call(_socket(), cmd, args={"which": which})
    except VigilError as e:
        print(f"hb_{cmd}: {e}", file=sys.stderr)
        return NORMAL_FAIL
    if cmd == "standby":
        print(f"Going standby [{which}].")
    return OK


def hb_standby(argv: list[str] | None = None) -> int:
    return _request("standby", sys.argv[1:] if argv is None else argv)


def hb_takeover(argv: list[str] | None = None) -> int:
    return _request("takeover", sys.argv[1:] if argv is None else argv)


def _status() -> dict[str, Any]:
    return call(_socket(), "status")


USAGE = """usage: cl_status SUBCOMMAND [ARGS]
  hbstatus                  is the cluster daemon running on this machine?
  listnodes                 the cluster's nodes
  nodestatus NODE           active, dead (or init while unknown)
  listhblinks NODE          the heartbeat links to NODE
  hblinkstatus NODE LINK    up or dead
  rscstatus                 which groups this node holds: all, local, foreign, none"""


def cl_status(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    need = {"hbstatus": 0, "listnodes": 0, "nodestatus": 1, "listhblinks": 1,
            "hblinkstatus": 2, "rscstatus": 0}
    if not args or args[0] not in need or len(args) - 1 != need[args[0]]:
        print(USAGE, file=sys.stderr)
        return PARAMETER_ERROR
    cmd, rest = args[0], args[1:]
    try:
        s = _status()
    except DaemonUnreachable:
        if cmd == "hbstatus":
            print("Heartbeat is stopped on this machine.")
            return NORMAL_FAIL
        print("Heartbeat is not running on this machine.", file=sys.stderr)
        return UNKNOWN_ERROR
    except VigilError as e:
        print(f"cl_status: {e}", file=sys.stderr)
        return UNKNOWN_ERROR
    if cmd == "hbstatus":
        print("Heartbeat is running on this machine.")
        return OK
    nodes = {n["name"]: n for n in s["nodes"]}
    if cmd == "listnodes":
        print("\n".join(nodes))
        return OK
    if cmd == "rscstatus":
        print(_rscstatus(s))
        return OK
    node = nodes.get(rest[0])
    if node is None:
        print(f"cl_status: no node named {rest[0]!r}", file=sys.stderr)
        return PARAMETER_ERROR
    if cmd == "nodestatus":
        state = "active" if node.get("self") or node["state"] == "up" else \
            "dead" if node["state"] == "dead" else "init"
        print(state)
        return NORMAL_FAIL if state == "dead" else OK
    links = {l["name"]: l for l in node.get("links", [])}
    if cmd == "listhblinks":
        print("\n".join(links))
        return OK
    link = links.get(rest[1])
    if link is None:
        print(f"cl_status: no heartbeat link {rest[1]!r} to {rest[0]}", file=sys.stderr)
        return PARAMETER_ERROR
    up = link["state"] == "up"
    print("up" if up else "dead")
    return OK if up else NORMAL_FAIL


def _rscstatus(s: dict[str, Any]) -> str:
    """Heartbeat's words for what this node holds: all, local, foreign, none, or transition
    while a group is starting or stopping here."""
    me = s["node"]
    if any(g["state"] in ("starting", "stopping") for g in s["groups"]):
        return "transition"
    held = [g for g in s["groups"] if g["state"] == "running"]
    if not held:
        return "none"
    if len(held) == len(s["groups"]):
        return "all"
    homes = {g["home"] == me for g in held}
    return "local" if homes == {True} else "foreign" if homes == {False} else "all"


def _main(fn: Any) -> None:
    sys.exit(fn())


def main_hb_standby() -> None:
    _main(hb_standby)


def main_hb_takeover() -> None:
    _main(hb_takeover)


def main_cl_status() -> None:
    _main(cl_status)
