"""How many heartbeat frames per second one node core can authenticate and process.

    python -m bench.frames [--seconds 3] [--repeat 5] [--groups 1,16]

Valid frames from the peer (HMAC-SHA256 checked, replay window, parsed, merged into the
node's state, membership updated) fed to `Node.receive` as fast as one Python thread can,
and the same for forged frames (rejected at the HMAC). One core; the daemon's own socket
and event-loop costs are not included (see bench.idle for those).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import common
from tests.unit.sim import Sim, make_cluster


def rate(groups: int, seconds: float, forged: bool) -> float:
    sim = Sim(1, make_cluster(groups=groups))
    sim.run(5.0)
    n1, n2 = sim.nodes["n1"], sim.nodes["n2"]
    frames = []
    for _ in range(20000):
        f = n2.frame(0, sim.now)
        frames.append(f[:-1] + bytes([f[-1] ^ 1]) if forged else f)
    now = sim.now
    done = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end and done < len(frames):
        for f in frames[done:done + 500]:
            n1.receive(f, 0, now)
        done += 500
    return done / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.frames", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--groups", default="1,16")
    ap.add_argument("--out", default="bench/results-frames.json")
    a = ap.parse_args(argv)
    results: dict[str, Any] = {}
    rows = []
    for g in (int(x) for x in a.groups.split(",")):
        for forged in (False, True):
            rates = [rate(g, a.seconds, forged) for _ in range(a.repeat)]
            key = f"{g}_groups_{'forged' if forged else 'valid'}"
            results[key] = {k: (round(v) if isinstance(v, float) else v)
                            for k, v in common.summary(rates).items()}
            rows.append([g, "forged (bad HMAC)" if forged else "valid", round(min(rates)),
                         round(results[key]["median"]), round(max(rates))])
    print(common.table(["groups", "frames", "min /s", "median /s", "max /s"], rows))
    from pathlib import Path
    common.write_json(Path(a.out), {"machine": common.machine(), "frames_per_second": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
