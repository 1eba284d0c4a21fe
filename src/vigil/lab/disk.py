"""Disks for the lab: an image file on a loop device, optionally with a filesystem on it.

Used where tests and benchmarks need a block device both nodes (namespaces of one host) can
open, as two hosts open one LUN of a disk array. Always detached on leaving.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def loop_device(image: Path, size: int = 1 << 20, mkfs: str | None = None) -> Iterator[str]:
    """A loop device (its path) on a new `size`-byte image, made with `mkfs` ("ext4")."""
    with open(image, "wb") as f:
        f.truncate(size)
    if mkfs is not None:
        subprocess.run([f"mkfs.{mkfs}", "-q", "-F", str(image)], check=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
