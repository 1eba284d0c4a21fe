"""The (generation, sequence) replay window, against a reference model that keeps every
(generation, seq) it ever accepted in a set instead of a bitmap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vigil.wire.frame import RejectReason
from vigil.wire.replay import WINDOW, ReplayGuard

REPLAY = RejectReason.REPLAY
STALE = RejectReason.STALE_GENERATION


def offer(g: ReplayGuard, sender: str, generation: int, seq: int) -> RejectReason | None:
    """What the daemon does: check, and record only what passed."""
    verdict = g.check(sender, generation, seq)
    if verdict is None:
        g.accept(sender, generation, seq)
    return verdict


# ---- hand-written cases -------------------------------------------------------------------


def test_first_frame_from_a_sender_is_accepted_at_any_seq() -> None:
    g = ReplayGuard()
    assert g.generation("n1") is None
    assert offer(g, "n1", 5, 1000) is None
    assert g.generation("n1") == 5
    assert offer(g, "n1", 5, 1000) is REPLAY


def test_in_order_then_duplicates() -> None:
    g = ReplayGuard()
    assert [offer(g, "n1", 1, s) for s in (1, 2, 3, 2, 3, 4, 1)] == \
        [None, None, None, REPLAY, REPLAY, None, REPLAY]


def test_out_of_order_inside_the_window() -> None:
    g = ReplayGuard()
    assert [offer(g, "n1", 1, s) for s in (10, 7, 9, 8, 7, 11, 8)] == \
        [None, None, None, None, REPLAY, None, REPLAY]


def test_window_edge() -> None:
    g = ReplayGuard()
    top = 10_000
    offer(g, "n1", 1, top)
    assert g.check("n1", 1, top - WINDOW) is REPLAY  # WINDOW below the highest: too old
    assert g.check("n1", 1, top - WINDOW - 1) is REPLAY
    assert g.check("n1", 1, 0) is REPLAY
    assert offer(g, "n1", 1, top - WINDOW + 1) is None  # the oldest number still in the window
    assert offer(g, "n1", 1, top - WINDOW + 1) is REPLAY
    # Advancing by one pushes that number out; it stays refused (now as too old).
    assert offer(g, "n1", 1, top + 1) is None
    assert g.check("n1", 1, top - WINDOW + 1) is REPLAY
    assert offer(g, "n1", 1, top - WINDOW + 2) is None


@pytest.mark.parametrize("jump", [1, 2, WINDOW - 1, WINDOW, WINDOW + 1, 10 * WINDOW])
def test_jumps_forward_keep_what_is_still_in_the_window(jump: int) -> None:
    g = ReplayGuard()
    base = 1000
    for s in range(base - 5, base + 1):
        offer(g, "n1", 1, s)
    assert offer(g, "n1", 1, base + jump) is None
    for s in range(base - 5, base + 1):
        # Seen before the jump: a replay whether or not it is still inside the window.
        assert g.check("n1", 1, s) is REPLAY, s
    # Never seen and still in the window: accepted once.
    fresh = base + jump - WINDOW + 1
    if fresh > base:
        assert offer(g, "n1", 1, fresh) is None
        assert offer(g, "n1", 1, fresh) is REPLAY


def test_generations() -> None:
    g = ReplayGuard()
    for s in range(1, 11):
        offer(g, "n1", 5, s)
    # Older generation: stale, whatever the seq.
    for s in (0, 1, 11, 10**9):
        assert g.check("n1", 4, s) is STALE
    # Newer generation: the window starts afresh, low numbers are welcome again.
    assert offer(g, "n1", 6, 1) is None
    assert g.generation("n1") == 6
    assert offer(g, "n1", 6, 1) is REPLAY
    assert offer(g, "n1", 6, 2) is None
    assert g.check("n1", 5, 11) is STALE  # the old life is now stale, even unseen numbers
    # A generation can jump arbitrarily; the old one stays stale.
    assert offer(g, "n1", 2**64 - 1, 0) is None
    assert g.check("n1", 6, 3) is STALE


def test_senders_are_independent() -> None:
    g = ReplayGuard()
    offer(g, "n1", 9, 100)
    assert offer(g, "n2", 1, 1) is None
    assert offer(g, "n2", 1, 100) is None
    assert g.check("n1", 9, 100) is REPLAY
    assert g.check("n1", 8, 1) is STALE
    assert g.check("n2", 1, 1) is REPLAY
    assert g.generation("n2") == 1 and g.generation("n3") is None


def test_check_alone_records_nothing() -> None:
    g = ReplayGuard()
    for _ in range(3):
        assert g.check("n1", 1, 5) is None
    assert g.generation("n1") is None
    offer(g, "n1", 1, 5)
    for _ in range(3):
        assert g.check("n1", 1, 6) is None
        assert g.check("n1", 2, 1) is None
    assert offer(g, "n1", 1, 6) is None  # the checks above did not consume it
    assert g.generation("n1") == 1  # nor did the check of generation 2 advance anything


def test_accept_of_a_rejected_frame_is_a_bug() -> None:
    g = ReplayGuard()
    offer(g, "n1", 2, 5)
    with pytest.raises(AssertionError):
        g.accept("n1", 2, 5)
    with pytest.raises(AssertionError):
        g.accept("n1", 1, 9)


# ---- properties ---------------------------------------------------------------------------


@given(
    base=st.integers(0, 2**64 - WINDOW),
    offsets=st.sets(st.integers(0, WINDOW - 1), min_size=1, max_size=60),
    data=st.data(),
)
def test_each_seq_accepted_exactly_once_in_any_order(base: int, offsets: set[int],
                                                     data: st.DataObject) -> None:
    seqs = [base + o for o in offsets]
    # Every one of them again, some twice more, all shuffled together.
    extra = data.draw(st.lists(st.sampled_from(seqs), max_size=30))
    order = data.draw(st.permutations(seqs + seqs + extra))
    g = ReplayGuard()
    accepted = [s for s in order if offer(g, "n1", 3, s) is None]
    assert sorted(accepted) == sorted(seqs)
    for s in seqs:
        assert g.check("n1", 3, s) is REPLAY
        assert g.check("n1", 2, s) is STALE


@given(st.lists(st.integers(0, 3 * WINDOW), max_size=80))
def test_accepted_numbers_are_distinct_and_never_far_below_the_top(seqs: list[int]) -> None:
    g = ReplayGuard()
    accepted: list[int] = []
    for s in seqs:
        if offer(g, "n1", 1, s) is None:
            # Nothing accepted is WINDOW or more below the highest accepted so far.
            assert not accepted or s > max(accepted) - WINDOW
            accepted.append(s)
    assert len(accepted) == len(set(accepted))


class Model:
    """Everything ever accepted, as a set, plus the window rule."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int, int]] = set()
        self.newest: dict[str, int] = {}

    def verdict(self, sender: str, gen: int, seq: int) -> RejectReason | None:
        newest = self.newest.get(sender)
        if newest is None or gen > newest:
            return None
        if gen < newest:
            return STALE
        if (sender, gen, seq) in self.seen:
            return REPLAY
        highest = max(s for (n, g, s) in self.seen if n == sender and g == gen)
        return REPLAY if seq <= highest - WINDOW else None

    def accept(self, sender: str, gen: int, seq: int) -> None:
        self.seen.add((sender, gen, seq))
        self.newest[sender] = gen

    def highest(self, sender: str) -> int:
        gen = self.newest.get(sender)
        return max((s for (n, g, s) in self.seen if n == sender and g == gen), default=0)


SENDERS = st.sampled_from(["n1", "n2"])
# Relative to the sender's highest seq: around zero and around both window edges.
DELTAS = st.one_of(
    st.integers(-3, 3),
    st.integers(-WINDOW - 2, -WINDOW + 2),
    st.integers(WINDOW - 2, WINDOW + 2),
    st.integers(-2 * WINDOW, 2 * WINDOW),
    st.just(10**6),
)


class ReplayMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.guard = ReplayGuard()
        self.model = Model()

    def _pick(self, data: st.DataObject, sender: str) -> tuple[int, int]:
        newest = self.model.newest.get(sender, 10)
        gen = newest + data.draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1, 7]), label="gen delta")
        seq = max(0, self.model.highest(sender) + data.draw(DELTAS, label="seq delta"))
        return gen, seq

    @rule(sender=SENDERS, data=st.data())
    def offer(self, sender: str, data: st.DataObject) -> None:
        gen, seq = self._pick(data, sender)
        expected = self.model.verdict(sender, gen, seq)
        assert self.guard.check(sender, gen, seq) is expected
        if expected is None:
            self.guard.accept(sender, gen, seq)
            self.model.accept(sender, gen, seq)

    @rule(sender=SENDERS, data=st.data())
    def check_only(self, sender: str, data: st.DataObject) -> None:
        # A frame that passed the guard but then failed another check: looked at, not recorded.
        gen, seq = self._pick(data, sender)
        assert self.guard.check(sender, gen, seq) is self.model.verdict(sender, gen, seq)

    @rule(sender=SENDERS, data=st.data())
    def replay_something_seen(self, sender: str, data: st.DataObject) -> None:
        mine = sorted(k for k in self.model.seen if k[0] == sender)
        if mine:
            _, gen, seq = data.draw(st.sampled_from(mine))
            assert self.guard.check(sender, gen, seq) in (REPLAY, STALE)

    @invariant()
    def same_generation(self) -> None:
        for sender in ("n1", "n2"):
            assert self.guard.generation(sender) == self.model.newest.get(sender)


ReplayMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=60,
                                           deadline=None)
TestReplayAgainstModel = ReplayMachine.TestCase
