"""events.diff: every transition reported once, none invented, across any walk of states."""

from __future__ import annotations

from hypothesis import given, strategies as st

from vigil.events import KINDS, Change, Snapshot, diff

GROUP_STATES = ("unknown", "stopped", "starting", "running", "stopping", "failed")
LIVENESS = ("unknown", "up", "dead")
FENCE = (None, "needed", "running", "done", "failed")


def snap(peer: str = "unknown", links: tuple[str, ...] = ("unknown", "unknown"),
         groups: tuple[str, ...] = ("unknown", "unknown"), fence: str | None = None) -> Snapshot:
    return Snapshot("n1", "n2", peer, tuple(zip(("eth0", "eth1"), links)),
                    tuple(zip(("web", "db"), groups)), fence, "fence_dummy: off ok")


snapshots = st.builds(
    snap, st.sampled_from(LIVENESS),
    st.tuples(st.sampled_from(LIVENESS), st.sampled_from(LIVENESS)),
    st.tuples(st.sampled_from(GROUP_STATES), st.sampled_from(GROUP_STATES)),
    st.sampled_from(FENCE))


@given(snapshots)
def test_no_change_no_event(s: Snapshot) -> None:
    assert diff(s, s) == []


def settle(walk: list[Snapshot]) -> list[Snapshot]:
    """Nothing goes back to unknown once known (a peer heard once is up or dead from then on;
    a group probed once has a state): replace such a step by the state before it."""
    out: list[Snapshot] = []
    prev = snap()
    for s in walk:
        def keep(new: tuple[tuple[str, str], ...],
                 old: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
            return tuple((n, o if v == "unknown" else v) for (n, v), (_, o) in zip(new, old))
        prev = Snapshot(s.me, s.peer, prev.peer_state if s.peer_state == "unknown"
                        else s.peer_state, keep(s.links, prev.links),
                        keep(s.groups, prev.groups), s.fence, s.fence_detail)
        out.append(prev)
    return out


@given(st.lists(snapshots, min_size=1, max_size=30).map(settle))
def test_a_walk_reports_each_transition_once(walk: list[Snapshot]) -> None:
    start = snap()
    events: list[Change] = []
    for a, b in zip([start] + walk, walk):
        events += diff(a, b)
    assert all(e.kind in KINDS for e in events)
    for i, g in enumerate(("web", "db")):
        path = ["unknown"] + [s.groups[i][1] for s in walk]
        expected = [f"{b}" for a, b in zip(path, path[1:])
                    if a != b and b != "unknown" and not (a == "unknown" and b == "stopped")]
        seen = [e.detail.split(" -> ")[1] for e in events if e.subject == g]
        assert seen == expected
    # The peer: up and dead alternate, and the last one says where it is now (if known).
    peer = [e.kind for e in events if e.kind in ("node_up", "node_dead")]
    assert all(a != b for a, b in zip(peer, peer[1:]))
    if peer and walk[-1].peer_state != "unknown":
        assert peer[-1] == f"node_{walk[-1].peer_state}"
    # The role: owner and standby alternate, starting with owner; it ends where the walk does.
    role = [e.kind for e in events if e.kind.startswith("became_")]
    assert all(a != b for a, b in zip(role, role[1:]))
    assert role[:1] in ([], ["became_owner"])
    serving = any(st_ == "running" for _, st_ in walk[-1].groups)
    assert (role[-1] == "became_owner") == serving if role else not serving
    # Fencing: one event per entry into done or failed.
    fence_path = [None] + [s.fence for s in walk]
    entries = [b for a, b in zip(fence_path, fence_path[1:]) if a != b and b in ("done", "failed")]
    assert [e.kind for e in events if e.kind.startswith("fence")] == [
        "fenced" if f == "done" else "fence_failed" for f in entries]


def test_a_failover_reads_as_an_operator_expects() -> None:
    before = snap("up", ("up", "up"), ("stopped", "stopped"))
    dead = snap("dead", ("dead", "dead"), ("stopped", "stopped"))
    starting = snap("dead", ("dead", "dead"), ("starting", "stopped"))
    serving = snap("dead", ("dead", "dead"), ("running", "stopped"))
    assert [(e.kind, e.subject) for e in diff(before, dead)] == [
        ("node_dead", "n2"), ("link_dead", "eth0"), ("link_dead", "eth1")]
    assert [(e.kind, e.subject) for e in diff(dead, starting)] == [("group_starting", "web")]
    assert [(e.kind, e.subject, e.detail) for e in diff(starting, serving)] == [
        ("group_started", "web", "starting -> running"), ("became_owner", "n1", "web")]


def test_the_probe_at_start_is_not_a_stop() -> None:
    assert diff(snap(), snap(groups=("stopped", "stopped"))) == []
    assert [e.kind for e in diff(snap(), snap(groups=("running", "stopped")))] == [
        "group_started", "became_owner"]


def test_the_dashboard_listens_to_every_kind() -> None:
    """The dashboard subscribes to each server-sent event kind by name: a kind it does not
    list never reaches it (address_answered was missing once)."""
    import re
    from importlib import resources

    html = resources.files("vigil.daemon.api").joinpath("dashboard.html").read_text()
    listed = re.search(r"const KINDS = \[([^\]]*)\]", html)
    assert listed is not None
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == set(KINDS)
