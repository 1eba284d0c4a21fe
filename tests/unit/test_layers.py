"""The layer rules of DESIGN.md and STYLE.md, checked on the source: who may import what.

The sans-IO cores must stay free of sockets, clocks, processes and the event loop, or their
tests stop being deterministic; nothing may import the daemon; the CLI loads the daemon only
inside `vigil daemon`. (The same contracts import-linter would check, without the dependency.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "vigil"

IO_MODULES = {"asyncio", "socket", "subprocess", "time", "select", "threading", "logging"}

CONTRACTS = {
    # module (file or package) -> modules it must not import
    "wire": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.policy", "vigil.config",
                          "vigil.core", "os"},
    "core": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.config", "os"},
    "core/notes.py": {"vigil"},
    "core/latest.py": {"vigil"},
    "core/session.py": {"vigil.policy", "vigil.core.node"},
    "core/lookout.py": {"vigil.policy", "vigil.core.node"},
    "core/membership.py": {"vigil.policy", "vigil.core.node"},
    "core/goodbye.py": {"vigil.policy", "vigil.core.node", "vigil.core.membership"},
    # The parts of the node: none imports the coordinator; the policy only where its rules
    # or its actions are what the part applies (merge, conflict_resolved, Start/Stop/Recover).
    "core/agenda.py": {"vigil.policy", "vigil.core.node", "vigil.wire", "vigil.model"},
    "core/ownership.py": {"vigil.core.node", "vigil.core.membership"},
    "core/peer.py": {"vigil.core.node"},
    "core/underway.py": {"vigil.core.node"},
    "core/eligibility.py": {"vigil.policy", "vigil.core.node"},
    "core/failover.py": {"vigil.policy", "vigil.core.node"},
    "core/fencing.py": {"vigil.policy", "vigil.core.node", "vigil.wire"},
    "core/witness.py": {"vigil.policy", "vigil.core.node"},
    "core/stall.py": {"vigil.policy", "vigil.core.node"},
    "core/pill.py": {"vigil.policy", "vigil.core.node", "vigil.core.membership"},
    "core/frames.py": {"vigil.policy", "vigil.core.node", "vigil.core.membership"},
    "core/groups.py": {"vigil.policy", "vigil.core.node", "vigil.core.membership"},
    "core/sideband.py": {"vigil.policy", "vigil.core.node"},
    "policy": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core.node", "os"},
    # The promotion rules and the synchronous contract: sans-IO, as the policy.
    "replica/promotion.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core",
                                          "vigil.config", "os"},
    "replica/sync.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core",
                                     "vigil.config", "os"},
    # PostgreSQL's text, read and written: the half of postgres.py that does no IO.
    "replica/pgfacts.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core",
                                       "vigil.config", "os", "psycopg"},
    "replica/model.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core",
                                      "vigil.config", "os", "psycopg"},
    "replica/pghba.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core",
                                     "vigil.config", "os", "psycopg"},
    "arbiter.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.policy",
                                "vigil.core.node", "os"},
    "control": IO_MODULES | {"vigil.daemon", "vigil.resources"},
    "model.py": IO_MODULES | {"vigil.config", "vigil.daemon", "vigil.resources"},
    "errors.py": {"vigil"},
    "config": {"vigil.daemon", "vigil.resources", "vigil.wire", "vigil.core", "asyncio",
               "socket"},
    "resources": {"vigil.daemon", "vigil.policy", "vigil.core", "vigil.wire"},
    "cli": {"vigil.resources", "pyroute2"},
    # The hub owns the core and knows the services only through its Outlets protocol; the
    # services know the hub, never the app that wires them.
    # The balancer's model and its ruleset are pure; balancer/apply.py runs nft.
    "balancer/model.py": IO_MODULES | {"vigil", "os"},
    "balancer/slots.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core",
                                       "vigil.config", "os"},
    "balancer/health.py": IO_MODULES | {"vigil", "os"},
    "balancer/nft.py": IO_MODULES | {"vigil.daemon", "vigil.resources", "vigil.core",
                                     "vigil.config", "os"},
    "daemon/hub.py": {"vigil.daemon.services", "vigil.daemon.app", "vigil.daemon.api"},
    "daemon/services": {"vigil.daemon.app", "vigil.daemon.api"},
}


def _files(target: str) -> list[Path]:
    path = SRC / target
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _violates(name: str, banned: str) -> bool:
    return name == banned or name.startswith(banned + ".")


@pytest.mark.parametrize("target", sorted(CONTRACTS))
def test_layer_imports(target: str) -> None:
    bad = []
    for f in _files(target):
        # The CLI may import the daemon lazily inside `vigil daemon`: check its top level only.
        for name in _imports(f, top_level_only=(target == "cli")):
            for banned in CONTRACTS[target]:
                if _violates(name, banned):
                    bad.append(f"{f.relative_to(SRC)} imports {name}")
    assert not bad, bad


def test_nothing_imports_the_daemon() -> None:
    bad = [f"{f.relative_to(SRC)}" for f in SRC.rglob("*.py")
           if "daemon" not in f.parts and not f.match("cli/main.py")
           and any(_violates(n, "vigil.daemon") for n in _imports(f, top_level_only=False))]
    assert not bad, bad


def test_the_contract_checker_can_fail(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("import socket\nfrom vigil.daemon import engine\n")
    names = _imports(f, top_level_only=True)
    assert any(_violates(n, "socket") for n in names)
    assert any(_violates(n, "vigil.daemon") for n in names)
