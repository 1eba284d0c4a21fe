"""Start one node: everything that can be refused is checked before anything is touched."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from vigil import log as vlog
from vigil.daemon.engine import Daemon
from vigil.daemon.state import next_generation
from vigil.errors import VigilError
from vigil.model import Cluster
from vigil.wire.auth import load_key

log = logging.getLogger("vigil")


def run(cluster: Cluster, me: str, socket_path: Path, state_dir: Path,
        debug: bool = False, realtime: bool | None = None) -> int:
    vlog.setup(me, cluster.log_file, debug)
    if me not in {n.name for n in cluster.nodes}:
        raise VigilError(f"this node is {me!r}, which {cluster.source} does not list "
                         f"(nodes: {', '.join(n.name for n in cluster.nodes)}); use --node")
    key = load_key(cluster.key_file)
    generation = next_generation(state_dir)
    daemon = Daemon(cluster, me, key, generation, socket_path, realtime)
    try:
        asyncio.run(daemon.run())
    except KeyboardInterrupt:
        pass
    return 0
