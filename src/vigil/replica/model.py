"""The configuration of a replicated resource (issue 15), as model.py holds the others'.

A `postgresql` resource lives in a group marked `promotable`: its instance runs on both
nodes, primary on the group's owner and a streaming standby on the other; the group's other
resources (its addresses first) follow the primary. Pure values, checked by the config
readers (config/toml_replica.py), turned into each node's `PgSpec` by `spec_for`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal

from vigil.replica.pgfacts import PgSpec
from vigil.replica.promotion import Mode, Policy

if TYPE_CHECKING:
    from vigil.model import Group, IPAddress, Monitor


def _monitor() -> "Monitor":
    from vigil.model import Monitor
    return Monitor(interval=2.0)


@dataclass(frozen=True, slots=True)
class PostgresqlResource:
    data_dir: Path
    # The address each node's server listens on and the other node streams from, by node
    # name; a node missing here uses its first heartbeat address.
    hosts: tuple[tuple[str, "IPAddress"], ...] = ()
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    port: int = 5432
    user: str = "postgres"
    replication_user: str = "replicator"
    password_file: Path | None = None  # the replication user's password (None: trust)
    socket_dir: Path = Path("/var/run/postgresql")
    log_file: Path | None = None  # None: <data_dir>.log, beside the data directory
    synchronous: Mode = "on"
    max_lag: int = 1 << 20  # bytes an asynchronous standby may miss and still be promoted
    wal_keep_size: str = "1GB"
    max_slot_wal_keep_size: str = "-1"  # PostgreSQL's: a slot keeps WAL without bound
    listen_addresses: str = "*"  # the clients come through the floating address
    timeout: float = 120.0  # start (promote), stop (demote), each
    # A program run before each promotion here, with the group and node in its environment;
    # its failure (or its hanging past `timeout`) vetoes the promotion. () : none.
    pre_promote: tuple[str, ...] = ()
    monitor: "Monitor | None" = field(default_factory=_monitor)
    kind: Literal["postgresql"] = "postgresql"

    @property
    def name(self) -> str:
        return f"postgresql {self.data_dir}"

    @property
    def policy(self) -> Policy:
        return Policy(self.synchronous, self.max_lag)


def order_warnings(groups: Iterable["Group"]) -> list[str]:
    """A promotable group whose postgresql resource starts after another of its resources:
    its address would answer clients before the promotion, and stay while it demotes."""
    out = []
    for g in groups:
        kinds = [r.kind for r in g.resources]
        if g.promotable and "postgresql" in kinds and kinds[0] != "postgresql":
            out.append(f"group {g.name}: its postgresql resource is not the first: "
                       f"{g.resources[0].name} starts before the promotion and stops after "
                       f"the demotion; put the postgresql resource first")
    return out


def slot_name(node: str) -> str:
    """A node's replication slot and application_name: vigil_ and its name, in the
    characters a slot name may hold."""
    return "vigil_" + re.sub(r"[^a-z0-9_]", "_", node.lower())[:57]


def spec_for(r: PostgresqlResource, me: str, host: str, peer_host: str,
             password: str | None) -> PgSpec:
    """Node `me`'s PgSpec (ValueError naming a bad value)."""
    return PgSpec(data_dir=r.data_dir, bin_dir=r.bin_dir, host=host, port=r.port, user=r.user,
                  replication_user=r.replication_user, replication_password=password,
                  slot=slot_name(me), peer_host=peer_host, socket_dir=r.socket_dir,
                  log_file=r.log_file, wal_keep_size=r.wal_keep_size,
                  max_slot_wal_keep_size=r.max_slot_wal_keep_size, listen=r.listen_addresses)
