"""Resource agents: what starts, stops and probes a resource on this node.

`build(resource, host)` returns the agent for a configured resource. Agents never decide
anything; the engine calls them (see `base.Agent` for the contract).
"""

from __future__ import annotations

from vigil.model import ExecResource, IpResource, Resource
from vigil.resources.base import Agent
from vigil.resources.exec import ExecAgent
from vigil.resources.host import Host
from vigil.resources.ip import IpAgent

__all__ = ["Agent", "Host", "build"]


def build(resource: Resource, host: Host) -> Agent:
    """The agent for `resource`, sharing `host`'s netlink socket and announcer."""
    match resource:
        case IpResource():
            return IpAgent(resource, host)
        case ExecResource():
            return ExecAgent(resource)
    raise AssertionError(f"no agent for {resource!r}")
