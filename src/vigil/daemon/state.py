"""What survives a restart in the state directory: the boot generation.

Every start must use a generation larger than any before it, or the peer's replay window
rejects the new life's frames as stale. The stored counter gives that; taking the maximum
with the wall clock (milliseconds) keeps it true even when the state directory was lost, and
makes two hosts started under one node name by mistake differ (node.py reports them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vigil.errors import VigilError


def next_generation(state_dir: Path) -> int:
    path = state_dir / "generation"
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            old = int(path.read_text().strip() or 0)
        except FileNotFoundError:
            old = 0
        except ValueError:
            raise VigilError(f"{path} is corrupt; remove it to start a new generation count")
        gen = max(old + 1, int(time.time() * 1000))
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{gen}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return gen
    except OSError as e:
        raise VigilError(f"state directory {state_dir}: {e.strerror}") from None
