"""Resource agents: what starts, stops and probes a resource on this node.

`build(resource, host)` returns the agent for a configured resource. Agents never decide
anything; the engine calls them (see `base.Agent` for the contract).
"""

from __future__ import annotations

from vigil.model import (ExecResource, FilesystemResource, HeartbeatResource, IpResource,
                         LsbResource, OcfResource, Resource, SystemdResource)
from vigil.replica.model import PostgresqlResource
from vigil.resources.base import Agent
from vigil.resources.exec import ExecAgent
from vigil.resources.filesystem import FilesystemAgent
from vigil.resources.heartbeat import HeartbeatAgent
from vigil.resources.host import Host
from vigil.resources.ip import IpAgent
from vigil.resources.lsb import LsbAgent
from vigil.resources.ocf import OcfAgent
from vigil.resources.systemd import SystemdAgent

__all__ = ["Agent", "Host", "build"]


def _postgresql(resource: PostgresqlResource) -> Agent:
    """Without the daemon's keeper (the guard): it only stops the server, for which no
    node's address or slot matters."""
    from vigil.replica.agent import PostgresAgent
    from vigil.replica.model import spec_for
    from vigil.replica.postgres import Postgres
    spec = spec_for(resource, "guard", "127.0.0.1", "127.0.0.1", None)
    return PostgresAgent(resource, pg=Postgres(spec))


def build(resource: Resource, host: Host) -> Agent:
    """The agent for `resource`, sharing `host`'s netlink socket and announcer."""
    match resource:
        case IpResource():
            return IpAgent(resource, host)
        case ExecResource():
            return ExecAgent(resource)
        case OcfResource():
            return OcfAgent(resource)
        case LsbResource():
            return LsbAgent(resource)
        case SystemdResource():
            return SystemdAgent(resource)
        case HeartbeatResource():
            return HeartbeatAgent(resource)
        case FilesystemResource():
            return FilesystemAgent(resource)
        case PostgresqlResource():
            return _postgresql(resource)
    raise AssertionError(f"no agent for {resource!r}")
