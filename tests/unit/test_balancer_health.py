"""balancer/health.py against a model written the long way: the state changes only after
rise passes or fall failures in a row, whatever the sequence of results."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.balancer.health import Health


def reference(results: list[bool], rise: int, fall: int) -> list[str | None]:
    out: list[str | None] = []
    state: bool | None = None
    for i, ok in enumerate(results):
        if state is None:
            state = ok
            out.append("up" if ok else "down")
            continue
        need = rise if not state else fall
        window = results[max(0, i - need + 1): i + 1]
        # the last `need` results all disagree with the state, and none of them was already
        # used for an earlier change
        since = max((j for j in range(i) if out[j] is not None), default=-1)
        if ok != state and len(window) == need and all(r == ok for r in window) and \
                i - since >= need:
            state = ok
            out.append("up" if ok else "down")
        else:
            out.append(None)
    return out


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_changes_only_after_rise_or_fall_in_a_row(results: list[bool], rise: int,
                                                  fall: int) -> None:
    h = Health(rise, fall)
    assert [h.observe(ok) for ok in results] == reference(results, rise, fall)
    assert h.up == (None if not results else h.up)


def test_a_flapping_server_stays_down() -> None:
    h = Health(rise=2, fall=2)
    h.observe(False)
    assert [h.observe(ok) for ok in [True, False] * 10] == [None] * 20 and h.up is False
    assert h.observe(True) is None and h.observe(True) == "up" and h.flaps == 1


def test_rise_and_fall_are_at_least_one() -> None:
    with pytest.raises(ValueError):
        Health(0, 1)
