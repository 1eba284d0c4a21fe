"""What the next step owes (core/agenda.py): each mark taken once, answers at most twice a
keepalive."""

from __future__ import annotations

from hypothesis import given, strategies as st

from vigil.core.agenda import Agenda
from vigil.core.notes import Level, Note

KEEPALIVE = 0.2


def test_every_mark_is_taken_once() -> None:
    a = Agenda(KEEPALIVE)
    assert a.take_send(0.0) and not a.take_send(0.0), "a new node sends at once, then not"
    a.failback |= {"g2", "g1"}
    a.reannounce |= {"g2", "g1"}
    a.notes.append(Note(Level.INFO, "x"))
    assert a.take_failback() == {"g1", "g2"} and a.take_failback() == frozenset()
    assert a.take_reannounce() == ("g1", "g2") and a.take_reannounce() == ()
    assert a.take_notes() == [Note(Level.INFO, "x")] and a.take_notes() == []


def test_a_removed_group_is_owed_nothing() -> None:
    a = Agenda(KEEPALIVE)
    a.failback.add("g1")
    a.reannounce.add("g1")
    a.forget("g1")
    assert not a.failback and not a.reannounce


@given(st.lists(st.tuples(st.floats(0.0, 0.3), st.booleans(), st.booleans()), max_size=40))
def test_answers_go_out_at_most_twice_a_keepalive_and_changes_always(
        inputs: list[tuple[float, bool, bool]]) -> None:
    a = Agenda(KEEPALIVE)
    now, answered = 10.0, [-1.0]
    a.take_send(now)
    for gap, changed, answer in inputs:
        now += gap
        a.send |= changed
        a.answer |= answer
        due = answer and now >= answered[-1] + KEEPALIVE / 2
        if due:
            answered.append(now)  # (also when a change goes out anyway: the answer with it)
        assert a.take_send(now) is (changed or due)
        assert not a.send and not a.answer, "taken: nothing owed until the next mark"
