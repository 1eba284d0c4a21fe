"""vigil.ratelimit: a token bucket per key, and every line held back counted exactly once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ratelimit import OVERFLOW, Allowed, RateLimiter, Summary, Suppressed


def test_a_burst_then_one_per_period_and_the_count_comes_with_the_next_line() -> None:
    r = RateLimiter(per_second=0.1, burst=3)
    assert [r.check("k", 0.0) for _ in range(5)] == [
        Allowed(0), Allowed(0), Allowed(0), Suppressed(1), Suppressed(2)]
    assert r.check("k", 9.9) == Suppressed(3)
    assert r.check("k", 10.0) == Allowed(3)  # one token back after 10 s
    assert r.check("k", 10.0) == Suppressed(1)
    assert r.pending() == 1


def test_keys_have_their_own_buckets() -> None:
    r = RateLimiter(per_second=1.0, burst=1)
    assert r.check("a", 0.0) == Allowed(0)
    assert r.check("a", 0.0) == Suppressed(1)
    assert r.check("b", 0.0) == Allowed(0)


def test_due_reports_held_back_lines_once_a_token_is_back_and_only_once() -> None:
    r = RateLimiter(per_second=0.5, burst=1)
    r.check("k", 0.0)
    for _ in range(4):
        r.check("k", 0.1)
    assert r.due(1.0) == []  # no token yet: the report is a line too
    assert r.due(2.0) == [Summary("k", 4)]
    assert r.due(100.0) == []
    assert r.check("k", 100.0) == Allowed(0)  # not counted a second time


def test_flush_reports_everything_pending() -> None:
    r = RateLimiter(per_second=0.01, burst=1)
    for key in ("a", "b", "a"):
        r.check(key, 0.0)
        r.check(key, 0.0)
    assert sorted(r.flush(), key=lambda s: s.key) == [Summary("a", 3), Summary("b", 1)]
    assert r.flush() == [] and r.pending() == 0


def test_a_clock_that_goes_back_mints_no_tokens() -> None:
    r = RateLimiter(per_second=1.0, burst=1)
    assert r.check("k", 100.0) == Allowed(0)
    assert r.check("k", 50.0) == Suppressed(1)
    assert r.check("k", 100.5) == Suppressed(2)
    assert r.check("k", 101.0) == Allowed(2)


def test_keys_are_bounded_idle_ones_forgotten_first_then_an_overflow_bucket() -> None:
    r = RateLimiter(per_second=1.0, burst=1, max_keys=3)
    for i in range(3):
        r.check(f"k{i}", 0.0)  # each bucket now empty
    assert r.check("new", 0.0) == Allowed(0)  # the overflow bucket, fresh
    assert r.check("newer", 0.0) == Suppressed(1)  # shares it
    assert r.check("k0", 0.0) == Suppressed(1)
    assert set(r._buckets) == {"k0", "k1", "k2", OVERFLOW}
    # later, the idle ones (full again, nothing pending) make room for a new key
    assert r.check("late", 10.0) == Allowed(0)
    assert "late" in r._buckets and len(r._buckets) <= 4


@pytest.mark.parametrize("args", [(0.0, 1), (-1.0, 1), (1.0, 0), (float("nan"), 1)])
def test_nonsense_limits_are_refused(args: tuple[float, int]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(*args)


events = st.lists(st.tuples(st.sampled_from("abc"), st.floats(0.0, 5.0),
                            st.booleans()), max_size=300)


@settings(max_examples=300)
@given(events, st.integers(1, 5), st.sampled_from([0.1, 1.0, 3.0]), st.sampled_from([2, 3]))
def test_every_line_is_either_logged_or_counted_exactly_once(
        script: list[tuple[str, float, bool]], burst: int, rate: float, max_keys: int) -> None:
    r = RateLimiter(per_second=rate, burst=burst, max_keys=max_keys)
    now = 0.0
    checks = logged = counted = 0
    out_at: dict[str, list[float]] = {}  # lines that went out (lines and reports) per key
    for key, dt, report in script:
        now += dt
        checks += 1
        v = r.check(key, now)
        if isinstance(v, Allowed):
            logged += 1
            counted += v.suppressed
            out_at.setdefault(key, []).append(now)
        if report:
            for s in r.due(now):
                counted += s.suppressed
                out_at.setdefault(s.key, []).append(now)
    counted += sum(s.suppressed for s in r.flush())
    assert checks == logged + counted
    assert len(r._buckets) <= max_keys + 1
    if max_keys < 3:
        return  # keys share the overflow bucket: the bound is the bucket's, not a key's
    for times in out_at.values():  # never more than the bucket allows, in any window
        for i, t0 in enumerate(times):
            in_window = [t for t in times[i:] if t - t0 <= 10.0]
            assert len(in_window) <= burst + rate * 10.0 + 1e-9


@pytest.mark.parametrize("module", ["ratelimit.py", "daemon/api/limits.py"])
def test_the_sans_io_cores_import_no_io(module: str) -> None:
    """As tests/unit/test_layers.py checks of the other cores (kept here: that file's
    table belongs to the layers the lead owns)."""
    from tests.unit.test_layers import IO_MODULES, SRC, _imports, _violates
    names = _imports(SRC / module, top_level_only=False)
    bad = [n for n in names for banned in IO_MODULES | {"vigil.daemon.api.server", "ssl", "os"}
           if _violates(n, banned)]
    assert not bad, bad


def test_limited_log_counts_what_it_held_back_on_the_next_line(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from vigil.log import LimitedLog
    now = [0.0]
    out = LimitedLog(logging.getLogger("vigil.test.limited"), 1.0, 2, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "vigil.test.limited")
    sent = [out.log("k", logging.WARNING, "line %d", i) for i in range(5)]
    assert sent == [True, True, False, False, False]
    assert out.log("other", logging.INFO, "own bucket")
    now[0] = 1.0
    assert out.log("k", logging.WARNING, "line %d", 5)
    assert [r.getMessage() for r in caplog.records] == [
        "line 0", "line 1", "own bucket", "line 5 (held back before this: suppressed=3)"]
    assert caplog.records[-1].levelno == logging.WARNING
