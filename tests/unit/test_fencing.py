"""The fencing machine (core/fencing.py): every (state, event) pair, and walks of events."""

from __future__ import annotations

from hypothesis import given, strategies as st

from vigil.core.fencing import FenceEvent, FenceState, PeerFencing
from vigil.model import Fencing

AGENT = Fencing(agent="external", command=("/bin/true",))
MANUAL = Fencing(agent="manual")


def test_the_manual_agent_waits_for_an_operator_the_others_run() -> None:
    for config, want in ((AGENT, FenceState.NEEDED), (MANUAL, FenceState.MANUAL)):
        f = PeerFencing(config)
        assert f.move(FenceEvent.DIED, "") and f.state is want
        assert f.move(FenceEvent.RUN) is (want is FenceState.NEEDED)


def test_a_failure_is_retried_after_the_interval_and_blocks_meanwhile() -> None:
    f = PeerFencing(AGENT)
    f.move(FenceEvent.DIED, "")
    f.move(FenceEvent.RUN)
    f.failed("rc=1", 10.0)
    assert f.state is FenceState.FAILED and f.detail == "rc=1"
    assert f.blocks("n2") == "n2 is dead but not fenced yet"
    assert f.next_deadline() == 10.0 + AGENT.retry_interval
    f.tick(10.0 + AGENT.retry_interval - 0.001)
    assert f.state is FenceState.FAILED
    f.tick(10.0 + AGENT.retry_interval)
    assert f.state is FenceState.NEEDED and f.next_deadline() is None


def test_nothing_happens_without_fencing_configured() -> None:
    f = PeerFencing(None)
    for e in FenceEvent:
        assert not f.move(e, "x") and f.state is None and f.blocks("n2") is None


@given(st.lists(st.sampled_from(list(FenceEvent)), max_size=30))
def test_only_success_or_an_operator_fences_and_only_the_peers_return_unfences(
        events: list[FenceEvent]) -> None:
    f = PeerFencing(AGENT)
    for e in events:
        before = f.state
        moved = f.move(e, e.value)
        if f.state is FenceState.DONE and before is not FenceState.DONE:
            assert e in (FenceEvent.SUCCEEDED, FenceEvent.CONFIRMED)
            assert before in (FenceState.RUNNING, FenceState.NEEDED, FenceState.MANUAL,
                              FenceState.FAILED)
        if before is FenceState.DONE:
            assert f.state is (None if e is FenceEvent.CAME_BACK else FenceState.DONE)
        if not moved:
            assert f.state is before, "a move the table lacks changes nothing"
        # The groups wait exactly while fencing is wanted and not done.
        assert (f.blocks("n2") is None) == (f.state in (None, FenceState.DONE))
