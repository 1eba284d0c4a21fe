"""The connections of a NAT real server that failed, in a service that is not quiescent, are
dropped from the director's conntrack table (IPVS's `expire_nodest_conn`, what keepalived's
removal of a server and ldirectord's `quiescent = no` mean): the client's next packet is
then a new connection to a healthy server, which resets it, so the client sees an error at
once and reconnects instead of waiting on a dead server. A quiescent service keeps them.

`conntrack -D --mark MARK` (conntrack-tools) deletes the entries carrying the server's mark
(nft.mark); it says how many on stderr and exits 1 when there were none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vigil.balancer import child

CONNTRACK = "conntrack"
TIMEOUT = 5.0
_DELETED = re.compile(rb"(\d+) flow entries have been deleted")


async def expire(mark: int, prefix: Sequence[str] = ()) -> int:
    """Delete the connections carrying `mark`: how many. OSError with what went wrong."""
    rc, _, err = await child.run(CONNTRACK, [*prefix, CONNTRACK, "-D", "--mark", f"{mark:#x}"],
                                 TIMEOUT, output=False)
    m = _DELETED.search(err)
    if m is None:
        raise OSError("conntrack: " + (err.decode(errors="replace").strip()[:200] or
                                       f"exit status {rc}"))
    return int(m.group(1))
