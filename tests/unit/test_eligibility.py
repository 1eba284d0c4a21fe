"""What keeps a node off a group (core/eligibility.py): each fact its own reason."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, strategies as st

from vigil.core.eligibility import FailCounts, Facts, Why, kept_off

GOOD = Facts(healthy=True, failed_start=False, banned=False, ping_worse=False,
             lease_lapsed=False, disk_lost=False)
BAD = {"healthy": (False, Why.UNHEALTHY), "failed_start": (True, Why.FAILED_START),
       "banned": (True, Why.BANNED), "ping_worse": (True, Why.PING),
       "lease_lapsed": (True, Why.LEASE), "disk_lost": (True, Why.DISK)}


@given(st.sets(st.sampled_from(sorted(BAD))))
def test_every_bad_fact_and_only_those_keep_the_node_off(bad: set[str]) -> None:
    facts = dataclasses.replace(GOOD, **{k: BAD[k][0] for k in bad})
    assert kept_off(facts) == {BAD[k][1] for k in bad}
    assert not kept_off(facts) == (not bad)


def test_failures_are_forgotten_after_the_timeout_and_bans_lift_on_time() -> None:
    f = FailCounts()
    assert f.failed("g", 10.0, 0.0) == 1 and f.failed("g", 10.0, 5.0) == 2
    assert f.count("g", 10.0, 10.5) == 1, "the first failure is 10.5 s old"
    assert f.count("g", 0.0, 1000.0) == 1, "no timeout: never forgotten"
    f.ban("g", 30.0, 5.0)
    f.ban("h", 0.0, 5.0)
    assert f.banned["h"] == math.inf and f.deadlines() == [35.0]
    assert f.expired(34.9) == [] and f.expired(35.0) == ["g"] and "g" not in f.banned
    f.failed_start["h"] = "rc=1"
    f.clear("h")
    assert "h" not in f.banned and "h" not in f.failed_start and f.count("h", 0.0, 99) == 0
