"""The record of a torture run (vigil.lab.torture): the fault kinds it draws from, by weight,
each Fault as it was injected, undone and recovered from, the Run with its violations, and what
is made of them at the end: the summary (summary.json), its table and the PNG timeline.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vigil.lab.cluster import HolderMonitor
from vigil.lab.probe import Sample, outages

FAULTS: dict[str, int] = {  # kind -> weight
    "kill9": 3, "total_kill": 2, "freeze_long": 3, "freeze_short": 2, "link": 3, "oneway": 2, "loss": 2,
    "cut": 2, "standby": 3, "takeover": 3, "restart": 2, "resource_kill": 2,
    "both_restart": 1,
}


@dataclass
class Fault:
    kind: str
    node: str
    t0: float  # monotonic, when injected
    t1: float = 0.0  # when undone
    t2: float = 0.0  # when the cluster had recovered
    detail: str = ""
    outage_ms: float = 0.0
    allowed_ms: float = 0.0


@dataclass
class Run:
    seed: int
    duration: float
    out: Path
    unsafe: bool = False
    kinds: list[str] = field(default_factory=lambda: list(FAULTS))
    faults: list[Fault] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0


def summary(run: Run, mon: HolderMonitor | None) -> dict[str, Any]:
    """What summary.json holds: the run's faults by kind with their outages, the owner
    changes, the violations and the timeline."""
    by_kind: dict[str, list[float]] = {}
    for f in run.faults:
        by_kind.setdefault(f.kind, []).append(f.outage_ms)
    table = {}
    for kind, values in sorted(by_kind.items()):
        v = sorted(values)
        table[kind] = {"faults": len(v), "median_ms": statistics.median(v),
                       "p99_ms": v[min(len(v) - 1, int(0.99 * len(v)))], "max_ms": v[-1]}
    # failovers and hand-overs: times a node gained the address (the first start aside)
    gained = [n for _, n, held in sorted(mon.changes if mon else []) if held]
    moves = sum(1 for a, b in zip(gained, gained[1:]) if a != b)
    return {"seed": run.seed, "duration_s": run.duration, "unsafe": run.unsafe,
            "faults": dict(Counter(f.kind for f in run.faults)),
            "outage_by_kind": table, "owner_changes": moves,
            "address_events": mon.events if mon else 0,
            "violations": run.violations,
            "timeline": [asdict(f) | {"t0": round(f.t0 - run.started, 3),
                                      "t1": round(f.t1 - run.started, 3),
                                      "t2": round(f.t2 - run.started, 3)}
                         for f in run.faults]}


def render(data: dict[str, Any]) -> str:
    lines = [f"seed {data['seed']}: {sum(data['faults'].values())} faults in "
             f"{data['duration_s']:.0f} s, {data['owner_changes']} owner changes, "
             f"{len(data['violations'])} violation(s)",
             f"{'fault':14} {'count':>5} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}"]
    for kind, row in data["outage_by_kind"].items():
        lines.append(f"{kind:14} {row['faults']:5} {row['median_ms']:10.0f} "
                     f"{row['p99_ms']:8.0f} {row['max_ms']:8.0f}")
    for v in data["violations"]:
        lines.append(f"VIOLATION {v['kind']} at {v['at_s']} s: {v['detail']}")
    return "\n".join(lines)


def timeline_png(run: Run, mon: HolderMonitor | None, samples: list[Sample],
                 path: Path) -> None:
    """Who held the address (green n1, blue n2), the faults (grey, labelled) and the
    client's outages (red), on one time axis."""
    from PIL import Image, ImageDraw

    if mon is None or not run.faults:
        return
    span = max(time.monotonic() - run.started, 1.0)
    width, height, left = 1600, 262, 60
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)

    def x(at: float) -> float:
        return left + (at - run.started) / span * (width - left - 10)

    rows = {"n1": 30, "n2": 70, "faults": 120, "outage": 200}
    for name, y in rows.items():
        d.text((5, y), name, fill="black")
    step = max(1, round(span / 20))  # about 20 ticks, whole seconds
    for sec in range(0, int(span) + 1, step):
        d.line([x(run.started + sec), 240, x(run.started + sec), 246], fill="black")
        d.text((x(run.started + sec) + 2, 244), f"{sec}s", fill="black")
    since: dict[str, float] = {}
    for at, node, held in sorted(mon.changes):
        if held:
            since[node] = at
        elif node in since:
            d.rectangle([x(since.pop(node)), rows[node], x(at), rows[node] + 25],
                        fill="green" if node == "n1" else "blue")
    for node, at in since.items():
        d.rectangle([x(at), rows[node], x(time.monotonic()), rows[node] + 25],
                    fill="green" if node == "n1" else "blue")
    for i, f in enumerate(run.faults):
        d.rectangle([x(f.t0), rows["faults"], max(x(f.t1), x(f.t0) + 2), rows["faults"] + 20],
                    fill="grey")
        d.text((x(f.t0), rows["faults"] + 25 + 12 * (i % 4)), f.kind[:8], fill="black")
    for o in outages(samples or [], after=run.started):
        d.rectangle([x(o.start), rows["outage"], max(x(o.start + o.duration), x(o.start) + 1),
                     rows["outage"] + 25], fill="red")
    img.save(path)
