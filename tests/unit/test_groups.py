"""The groups' transition table (core/groups.py): only its moves, and what a finished action
means."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from vigil.core.groups import TABLE, GroupEvent, LocalGroups, finish
from vigil.wire.messages import ACTIVE_STATES, GroupState as S


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("event", list(GroupEvent))
def test_every_move_is_in_the_table_or_refused_unchanged(state: S, event: GroupEvent) -> None:
    g = LocalGroups(["g"])
    g._states["g"] = state  # the table is what is tested: put the group there directly
    want = TABLE[state].get(event)
    if want is None:
        with pytest.raises(AssertionError, match="no move"):
            g.move("g", event)
        assert g.states["g"] is state
    else:
        assert g.move("g", event) is want and g.states["g"] is want


def test_a_group_is_started_only_from_stopped_and_never_leaves_failed_but_by_a_probe() -> None:
    into_starting = {s for s, moves in TABLE.items() if S.STARTING in moves.values()}
    assert into_starting == {S.STOPPED, S.RUNNING}  # a start, or a restart in place
    assert TABLE[S.STOPPED] == {GroupEvent.START: S.STARTING}
    assert set(TABLE[S.FAILED]) == {GroupEvent.FOUND_STOPPED, GroupEvent.FOUND_RUNNING}


def test_a_finished_action_names_its_event() -> None:
    assert finish(S.STARTING, S.RUNNING) is GroupEvent.DONE
    assert finish(S.STARTING, S.STOPPED) is GroupEvent.UNDONE
    assert finish(S.STOPPING, S.STOPPED) is GroupEvent.DONE
    assert finish(S.STOPPING, S.FAILED) is GroupEvent.BROKEN
    with pytest.raises(AssertionError):
        finish(S.STOPPING, S.RUNNING)


@given(st.lists(st.sampled_from(list(GroupEvent)), max_size=40))
def test_the_guard_always_knows_what_may_hold_resources(events: list[GroupEvent]) -> None:
    g = LocalGroups(["a", "b"])
    for i, e in enumerate(events):
        name = "ab"[i % 2]
        if e in TABLE[g.states[name]]:
            g.move(name, e)
        held = {n for n, s in g.states.items() if s in ACTIVE_STATES or s is S.FAILED}
        assert set(g.active()) == held
        assert g.quiescent() == (not any(s in ACTIVE_STATES for s in g.states.values()))
