"""`make bench`'s last step: every benchmark's summary in one file, bench/results.json.

    python -m bench.collect

Reads the files the benchmarks wrote (results-failover.json, results-partition*.json,
results-agents.json, results-frames.json, results-pg-failover.json, and a torture run's
summary.json if given with --torture) and writes their summaries, each with the machine and seed it ran with, to
bench/results.json. Missing files are listed, not invented.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import common

DIR = Path(__file__).resolve().parent


def _load(name: str) -> dict[str, Any] | None:
    path = DIR / name
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.collect", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torture", type=Path, help="a torture run's summary.json")
    a = ap.parse_args(argv)
    out: dict[str, Any] = {"collected": common.machine(), "missing": []}
    for key, name, keep in [
        ("failover", "results-failover.json", ("machine", "seed", "runs", "summary", "idle")),
        ("partition", "results-partition.json", ("machine", "seed", "runs", "summary")),
        ("partition_guardfix", "results-partition-guardfix.json",
         ("machine", "seed", "runs", "summary")),
        ("guard", "results-guard.json", ("machine", "seed", "runs", "summary")),
        ("partition_goodbye", "results-partition-goodbye.json",
         ("machine", "seed", "runs", "summary")),
        ("agents", "results-agents.json", ("machine", "overhead", "addresses")),
        ("frames", "results-frames.json", ("machine", "frames_per_second")),
    ]:
        data = _load(name)
        if data is None:
            out["missing"].append(name)
            continue
        out[key] = {k: data[k] for k in keep if k in data}
    pg = _load("results-pg-failover.json")
    if pg is None:
        out["missing"].append("results-pg-failover.json")
    else:  # each system's summary per fault, without the runs
        out["pg_failover"] = {
            "machine": pg.get("machine"), "runs": pg.get("runs"),
            "systems": {name: {"label": s.get("label"), "timing": s.get("timing"),
                               "faults": {f: v.get("summary") for f, v in
                                          s.get("faults", {}).items()}}
                        for name, s in pg.get("systems", {}).items()}}
    torture = a.torture or DIR / "results-torture.json"
    if torture.exists():
        data = json.loads(torture.read_text())
        out["torture"] = {k: v for k, v in data.items() if k != "timeline"}
    else:
        out["missing"].append(str(torture))
    common.write_json(DIR / "results.json", out)
    if out["missing"]:
        print("missing: " + ", ".join(out["missing"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
