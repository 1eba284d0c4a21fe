"""Start one node: everything that can be refused is checked before anything is touched."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from vigil import log as vlog
from vigil.daemon import guard
from vigil.daemon.app import Daemon
from vigil.daemon.state import next_generation
from vigil.daemon.watchdog import Watchdog
from vigil.errors import ConfigError, ConfigProblem, VigilError
from vigil.wire.framesize import frame_problem, serial_problem
from vigil.model import Cluster, watchdog_seconds
from vigil.config.keys import load_cluster_key

log = logging.getLogger(__name__)

POISONED = 5  # exit status after obeying a disk poison pill (a service manager restarts us)


Loader = Callable[[], tuple[Cluster, list[str]]]


def check(cluster: Cluster, me: str) -> None:
    """What the parser cannot know: this host's place in it, and the frame sizes."""
    if me not in {n.name for n in cluster.nodes}:
        raise ConfigError(ConfigProblem(
            cluster.source, None, "node",
            f"this host is node {me!r}, which is not listed (nodes: "
            f"{', '.join(n.name for n in cluster.nodes)}); use --node NAME"))
    problem = frame_problem(cluster) or serial_problem(cluster)
    if problem is not None:
        raise ConfigError(problem)
    if cluster.virtual_servers and shutil.which("nft") is None:
        raise ConfigError(ConfigProblem(
            cluster.source, None, "virtual_server",
            "the load balancer's rules are nftables rules, and `nft` is not installed "
            "(Debian: apt-get install nftables)"))
    if cluster.conntrack_sync is not None and shutil.which("conntrackd") is None:
        raise ConfigError(ConfigProblem(
            cluster.source, None, "conntrack_sync",
            "the connection sync is conntrackd's, and it is not installed (Debian: apt-get "
            "install conntrackd)"))


def reloader(load: Loader, me: str) -> Callable[[], tuple[Cluster, bytes]]:
    """`vigil reload` and SIGHUP: the configuration read again the way it was at start,
    checked the same way, with its key. Raises VigilError (ConfigError) when bad."""
    def reload() -> tuple[Cluster, bytes]:
        cluster, warnings = load()
        for w in warnings:
            log.warning("%s", w)
        check(cluster, me)
        return cluster, load_cluster_key(cluster)[0]
    return reload


def run(cluster: Cluster, me: str, socket_path: Path, state_dir: Path,
        debug: bool = False, realtime: bool | None = None,
        warnings: list[str] | None = None, load: Loader | None = None) -> int:
    """`warnings`: what the configuration's loader says at every start (Heartbeat files);
    `load` reads the configuration again for a reload."""
    vlog.setup(me, cluster.log_file, debug)
    for w in warnings or []:
        log.warning("%s", w)
    check(cluster, me)
    key, key_warnings = load_cluster_key(cluster)
    for w in key_warnings:
        log.warning("%s", w)
    # The watchdog is opened before the guard starts, which gets the same open file: both
    # feed it, and the node resets only when both are gone (guard.py, _Watchdog).
    watchdog = None
    if cluster.watchdog is not None:
        watchdog = Watchdog(cluster.watchdog, cluster.watchdog_timeout or
                            watchdog_seconds(cluster.timings))
        watchdog.open()
    try:
        guard_link = guard.spawn(cluster, me, key, None if watchdog is None else watchdog.fd)
    except OSError as e:
        if watchdog is not None:
            watchdog.close()
        raise VigilError(f"cannot start the guard process: {e.strerror or e}") from None
    daemon = Daemon(cluster, me, key, lambda: next_generation(state_dir), socket_path, realtime,
                    guard_link, None if load is None else reloader(load, me), watchdog,
                    unsafe=os.environ.get("VIGIL_UNSAFE_SKIP_RELEASE_WAIT") == "1")
    try:
        asyncio.run(daemon.run())
    except KeyboardInterrupt:
        pass
    finally:
        daemon.disarm()  # refusing to start, or any exit through Python: the guard covers it
        (daemon.guard or guard_link).close(exiting=True)  # every child reaped (STYLE.md rule 8)
    if daemon.node is not None and daemon.node.poisoned:
        log.error("stopped by the poison pill of %s; a new start joins the cluster afresh",
                  daemon.node.poisoned)
        return POISONED
    return 0
