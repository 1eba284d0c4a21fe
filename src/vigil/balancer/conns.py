"""The connections each NAT real server holds now, as `ipvsadm -L -n` shows them: ActiveConn
(TCP connections established) and InActConn (every other TCP state, and UDP flows), counted
in the director's conntrack table by the connection's mark (nft.mark: the service's number
in the high 16 bits, the server's in the low).

Read on demand (`vigil lb status`), one dump per directed NAT service, which the kernel
filters on the service's half of the mark: a busy director's table may hold hundreds of
thousands of entries, too many to list on a timer. Direct routing is not counted: the
director rewrites the clients' packets at netdev ingress, before conntrack sees them, and
never sees the answers (IPVS counts those in a table of its own).

`count` reads `conntrack -L`'s lines (pure); `read` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vigil.balancer import child

CONNTRACK = "conntrack"
TIMEOUT = 5.0
SERVICE_MASK = 0xFFFF0000


@dataclass(frozen=True, slots=True)
class Conns:
    active: int = 0  # TCP, established
    inactive: int = 0  # TCP in any other state (SYN_SENT, FIN_WAIT, TIME_WAIT...), UDP


def count(text: str) -> dict[int, Conns]:
    """Mark -> its connections, from `conntrack -L` output lines such as

        tcp      6 431999 ESTABLISHED src=... dst=... sport=... dport=... [ASSURED] mark=65537 use=1
        udp      17 29 src=... dst=... sport=... dport=... [UNREPLIED] ... mark=65537 use=1

    A line without a mark, or one that is not tcp or udp, counts nowhere."""
    active: dict[int, int] = {}
    inactive: dict[int, int] = {}
    for line in text.splitlines():
        words = line.split()
        mark = next((w[5:] for w in words if w.startswith("mark=")), None)
        if len(words) < 4 or words[0] not in ("tcp", "udp") or mark is None or \
                not mark.isdigit():
            continue
        m = int(mark)
        established = words[0] == "tcp" and words[3] == "ESTABLISHED"
        side = active if established else inactive
        side[m] = side.get(m, 0) + 1
    return {m: Conns(active.get(m, 0), inactive.get(m, 0))
            for m in sorted(set(active) | set(inactive))}


async def read(service: int, prefix: Sequence[str] = ()) -> dict[int, Conns]:
    """The connections of service number `service` (nft.mark's high half), by mark. OSError
    with what went wrong."""
    argv = [*prefix, CONNTRACK, "-L", "--mark", f"{service << 16:#x}/{SERVICE_MASK:#x}"]
    rc, out, err = await child.run(CONNTRACK, argv, TIMEOUT)
    if rc != 0:
        raise OSError("conntrack: " + (err.decode(errors="replace").strip()[:200] or
                                       f"exit status {rc}"))
    return count(out.decode(errors="replace"))
