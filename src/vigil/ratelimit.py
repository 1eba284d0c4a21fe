"""Rate limits per key, with a count of what was held back: for log lines an untrusted peer
can cause (DESIGN.md: "nothing untrusted can flood the log"). Sans-IO: time is an argument.

Each key has a token bucket: `burst` lines at once, then `per_second` on average. A line
refused is counted under its key, and the count comes back to be reported, either with the
next line allowed under that key (`Allowed.suppressed`) or, when no such line comes, from
`due(now)` once the key's bucket has a token again; the caller logs it (one line per key).
A count is reported exactly once.

Keys should be a small fixed set (the kind of line, not the peer's address); a limiter holds
at most `max_keys` of them, and beyond that, keys whose bucket is full with nothing pending
are forgotten first (they hold nothing), then any new key shares the bucket `OVERFLOW`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

OVERFLOW = "(other)"


@dataclass(frozen=True, slots=True)
class Allowed:
    """Go ahead; `suppressed` lines under this key were held back since the last one that
    was allowed (say so in, or next to, this one)."""

    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Held back; `pending` lines under this key (this one included) wait to be counted."""

    pending: int


Verdict = Union[Allowed, Suppressed]


@dataclass(frozen=True, slots=True)
class Summary:
    """`suppressed` lines under `key` were held back and have not been reported yet."""

    key: str
    suppressed: int


class _Bucket:
    __slots__ = ("tokens", "last", "pending")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.last = now
        self.pending = 0

    def refill(self, now: float, per_second: float, burst: int) -> None:
        # A clock that goes back (it should not: monotonic) refills nothing.
        self.tokens = min(float(burst), self.tokens + max(0.0, now - self.last) * per_second)
        self.last = max(self.last, now)


class RateLimiter:
    """A token bucket per key. `check` for each line, `due` now and then for the counts."""

    def __init__(self, per_second: float, burst: int, max_keys: int = 64) -> None:
        if not per_second > 0 or burst < 1 or max_keys < 1:
            raise ValueError(f"per_second must be > 0 and burst, max_keys >= 1 "
                             f"(got {per_second}, {burst}, {max_keys})")
        self.per_second = per_second
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def check(self, key: str, now: float) -> Verdict:
        """May a line under `key` go out at `now`? (A token is taken if so.)"""
        bucket = self._bucket(key, now)
        bucket.refill(now, self.per_second, self.burst)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            held, bucket.pending = bucket.pending, 0
            return Allowed(held)
        bucket.pending += 1
        return Suppressed(bucket.pending)

    def due(self, now: float) -> list[Summary]:
        """The counts to report now: each key with lines held back whose bucket has a token
        again (the report is a line too, so it takes one). Reported counts are reset."""
        out = []
        for key, bucket in self._buckets.items():
            if not bucket.pending:
                continue
            bucket.refill(now, self.per_second, self.burst)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                out.append(Summary(key, bucket.pending))
                bucket.pending = 0
        return out

    def flush(self) -> list[Summary]:
        """Every count not yet reported, token or not (for a last report, at shutdown)."""
        out = [Summary(k, b.pending) for k, b in self._buckets.items() if b.pending]
        for b in self._buckets.values():
            b.pending = 0
        return out

    def pending(self) -> int:
        """Lines held back and not yet reported, over all keys."""
        return sum(b.pending for b in self._buckets.values())

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is not None:
            return bucket
        if len(self._buckets) >= self.max_keys:
            for k, b in list(self._buckets.items()):
                b.refill(now, self.per_second, self.burst)
                if not b.pending and b.tokens >= self.burst:
                    del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            key = OVERFLOW
            bucket = self._buckets.get(key)
            if bucket is not None:
                return bucket
        bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        return bucket
