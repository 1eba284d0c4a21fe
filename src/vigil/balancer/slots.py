"""Which real server each slot of a virtual service sends new connections to.

The data plane (nft.py) picks a slot per new connection: the next one in turn for rr and
wrr (`numgen inc`), a hash of the client's address for sh and mh (`jhash ip saddr`), and
the slot's entry names the real server. A table of `size` slots, `size` a prime well above
the number of servers, gives each server a share of slots within one slot of its weight's
share, so that weights hold without a rule per weight and a change of weight or of health
only rewrites the slots that change owner.

- `interleaved`: smooth weighted round robin (nginx's): consecutive slots go to different
  servers in proportion to their weights, so consecutive connections do too.
- `maglev`: Maglev's consistent hash (Eisenbud et al., NSDI 2016) with weights: each server
  fills its own pseudo-random order of slots (`_order`: not Maglev's linear one), in turns
  proportional to its weight, until it holds its quota (`_quotas`: the largest-remainder
  share, so every server is within one slot of its weight's share); a server
  that leaves gives up its slots and the others keep nearly all of theirs, so clients hashed
  to a healthy server stay with it. Both directors compute the same table from the same
  servers: the orders come from a hash of each server's key, never from Python's `hash`.

Pure functions; keys are any strings (a real server's "address:port").
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping

SIZES = (1021, 4093, 16381, 65521)  # primes; at least ~100 slots per server


def size_for(servers: int) -> int:
    """The smallest table in SIZES with at least 100 slots per server."""
    for s in SIZES:
        if s >= 100 * servers:
            return s
    return SIZES[-1]


def _active(weights: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted((k, w) for k, w in weights.items() if w > 0)


def interleaved(weights: Mapping[str, int], size: int) -> list[str]:
    """`size` slots, each server's count within one of size*weight/total, interleaved.
    Empty when no server has a positive weight."""
    servers = _active(weights)
    if not servers:
        return []
    total = sum(w for _, w in servers)
    current = [0] * len(servers)
    out: list[str] = []
    for _ in range(size):
        best = 0
        for i, (_, w) in enumerate(servers):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= total
        out.append(servers[best][0])
    return out


@functools.cache
def _generator(size: int) -> int:
    """The smallest primitive root of the prime `size`: its powers are every nonzero slot."""
    n, factors, d = size - 1, set(), 2
    while d * d <= n:
        while n % d == 0:
            factors.add(d)
            n //= d
        d += 1
    if n > 1:
        factors.add(n)
    return next(g for g in range(2, size)
                if all(pow(g, (size - 1) // q, size) != 1 for q in factors))


def _order(key: str, size: int) -> tuple[int, int, int]:
    """A server's own order of the slots, from its key alone: `offset`, then offset +
    skip * h**j for j = 0, 1, ... with h a primitive root, which visits every other slot once.
    Maglev's offset + j * skip makes two servers that draw one skip walk the same cycle
    shifted, so they take each other's slots when a third server leaves (a quarter to a
    half of the slots the others kept moved, for 1 pair in ~1000 at 1021 slots); with h
    drawn too, two orders coincide only if skip and h both do."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    offset = int.from_bytes(digest[:8], "big") % size
    skip = int.from_bytes(digest[8:12], "big") % (size - 1) + 1
    k = int.from_bytes(digest[12:], "big") % (size - 1)
    while math.gcd(k, size - 1) != 1:  # g**k is a primitive root exactly then
        k = (k + 1) % (size - 1)
    return offset, skip, pow(_generator(size), k, size)


def _quotas(weights: list[int], size: int) -> list[int]:
    """Each weight's whole share of `size` slots, the leftover slots to the largest
    remainders (ties to the earlier server): every quota is within one of size*w/total and
    they sum to `size`. Integer arithmetic, so both directors agree to the slot."""
    total = sum(weights)
    quotas = [size * w // total for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(size * weights[i] % total), i))
    for i in by_remainder[:size - sum(quotas)]:
        quotas[i] += 1
    return quotas


def maglev(weights: Mapping[str, int], size: int) -> list[str]:
    """Maglev's lookup table of `size` (a prime) slots, weighted. Empty when no server has a
    positive weight."""
    servers = _active(weights)
    if not servers:
        return []
    top = max(w for _, w in servers)
    orders = [_order(k, size) for k, _ in servers]
    left = _quotas([w for _, w in servers], size)
    step: list[int | None] = [None] * len(servers)  # None: the offset is next, else skip*h**j
    credit = [0] * len(servers)  # in units of 1/top of a turn: exact, so directors agree
    table: list[str | None] = [None] * size
    filled = 0
    while filled < size:
        for i, (key, w) in enumerate(servers):
            credit[i] += w
            if credit[i] < top or not left[i]:
                continue
            credit[i] -= top
            left[i] -= 1
            offset, skip, h = orders[i]
            while True:  # the server's next preferred slot that is still free
                at = step[i]
                slot = offset if at is None else (offset + at) % size
                step[i] = skip if at is None else at * h % size
                if table[slot] is None:
                    break
            table[slot] = key
            filled += 1
            if filled == size:
                break
    return [k for k in table if k is not None]
