"""How many of the other servers' slots move when one real server leaves a sh/mh service
(balancer/slots.py's weighted Maglev): ideally none, since only the leaver's clients should
be re-hashed.

    python -m bench.maglev [--tables 200] [--seed 1]

Random tables of 3, 8 and 30 servers (weights 1-3), each with a random server removed,
and 60 three-server tables in which two servers draw the same `skip`: the case where
Maglev's linear order (offset + j * skip) made the twins take each other's slots (up to
48%, measured on that order before commit 6a2043a replaced it). Pure computation, seconds.
"""

from __future__ import annotations

import argparse
import random

from vigil.balancer import slots


def moved(weights: dict[str, int], gone: str) -> float:
    """The fraction of the slots the others kept that changed owner when `gone` left."""
    size = slots.size_for(len(weights))
    before = slots.maglev(weights, size)
    after = slots.maglev({k: v for k, v in weights.items() if k != gone}, size)
    kept = [i for i, k in enumerate(before) if k != gone]
    return sum(1 for i in kept if after[i] != before[i]) / len(kept)


def _server(rng: random.Random) -> str:
    return f"10.0.{rng.randrange(256)}.{rng.randrange(256)}:80"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    for n in (3, 8, 30):
        found = []
        for _ in range(args.tables):
            w = {_server(rng): rng.choice((1, 1, 2, 3)) for _ in range(n)}
            found.append(moved(w, rng.choice(sorted(w))))
        print(f"{n:>2} servers, one leaves: others' slots moved: mean "
              f"{sum(found) / len(found):.1%}, worst {max(found):.1%} ({len(found)} tables)")
    twins: list[float] = []
    while len(twins) < 60 * 3:
        w = {_server(rng): 1 for _ in range(3)}
        skips = [slots._order(k, 1021)[1] for k in w]
        if len(w) == 3 and len(set(skips)) < 3:
            twins += [moved(w, g) for g in w]
    print(f" 3 servers, two with one skip, each one leaving: mean {sum(twins) / len(twins):.1%}"
          f", worst {max(twins):.1%} ({len(twins)} removals)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
