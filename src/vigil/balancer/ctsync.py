"""Connection-tracking sync between the directors: what conntrackd (Debian `conntrack-tools`)
is told, in FTFW mode over UDP, so that a NAT connection keeps its translation when the other
director takes the service over. Sans-IO: the configuration file's text and the commands of
each role change; balancer/ctsync_run.py runs them.

conntrackd keeps two caches: the internal one mirrors this kernel's table (its events), the
external one holds what the peer sent. The role changes are those of conntrack-tools' own
primary-backup.sh (the script keepalived's documentation pairs with conntrackd):

  becoming the active director: commit the external cache into the kernel (-c), flush both
  caches (-f), resynchronise the internal cache with the kernel (-R), send the peer a bulk
  update (-B);
  becoming the backup: ask the peer for a full resync (-n), so that the external cache is
  whole again.

Only connections of the virtual servers' protocols are synced, and none to or from the
directors' own addresses (heartbeats, health checks, this sync itself). Window tracking is
off in the entries it commits: a connection taken over mid-stream has sequence numbers the
new director never saw (conntrackd.conf(5), TCPWindowTracking).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.balancer.model import IPAddress

# What an active director's conntrackd does after a restart (its kernel is the truth), and
# the end of becoming the active director.
RESUME_ACTIVE: tuple[tuple[str, str], ...] = (
    ("-R", "resynchronise with the kernel"),
    ("-B", "send the peer a bulk update"),
)
COMMIT: tuple[str, str] = ("-c", "commit the peer's connections into the kernel")
BECOME_ACTIVE: tuple[tuple[str, str], ...] = (
    COMMIT,
    ("-f", "flush the caches"),
    *RESUME_ACTIVE,
)
BECOME_BACKUP: tuple[tuple[str, str], ...] = (
    ("-n", "ask the peer for a full resync"),
)


@dataclass(frozen=True, slots=True)
class Paths:
    """Where one node's conntrackd keeps its files (a directory of its own per node)."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "conntrackd.conf"

    @property
    def socket(self) -> Path:
        return self.directory / "conntrackd.ctl"

    @property
    def lock(self) -> Path:
        return self.directory / "conntrackd.lock"


def render(local: IPAddress, peer: IPAddress, port: int, interface: str | None,
           protocols: Iterable[str], ignore: Sequence[IPAddress], paths: Paths) -> str:
    """conntrackd.conf for FTFW over UDP from `local` to `peer` (conntrackd 1.4.7 will not
    open a UDP channel without its Interface: "can't open channel socket: No such file or
    directory"). Every value comes from a checked configuration (addresses, a port, an
    interface name); nothing is quoted."""
    if local.version != peer.version:
        raise ValueError(f"sync addresses {local} and {peer} are of two families")
    v = "IPv4" if local.version == 4 else "IPv6"
    protos = " ".join(sorted({p.upper() for p in protocols})) or "TCP"
    loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    ignored = sorted({*loopback, *ignore}, key=lambda a: (a.version, int(a)))
    addresses = "\n".join(f"            IPv{a.version}_address {a}" for a in ignored)
    return f"""\
# Written by vigil for its balancer's connection sync; rewritten at each start.
Sync {{
    Mode FTFW {{
        DisableExternalCache Off
        CommitTimeout 1800
        PurgeTimeout 5
    }}
    UDP {{
        {v}_address {local}
        {v}_Destination_Address {peer}
        Port {port}
{f"        Interface {interface}" + chr(10) if interface else ""}\
        SndSocketBuffer 1249280
        RcvSocketBuffer 1249280
        Checksum on
    }}
    Options {{
        TCPWindowTracking Off
    }}
}}
General {{
    Systemd off
    HashSize 32768
    HashLimit 131072
    LogFile off
    Syslog off
    LockFile {paths.lock}
    UNIX {{
        Path {paths.socket}
    }}
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 8388608
    Filter From Userspace {{
        Protocol Accept {{
            {protos}
        }}
        Address Ignore {{
{addresses}
        }}
    }}
}}
"""
