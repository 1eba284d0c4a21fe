"""Running nft.py's transactions: `nft -f -` applies one whole or not at all, and
`nft -j list table` reads back what the kernel holds, as JSON."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from vigil.balancer.nft import FAMILY, TABLE

NFT = "nft"
TIMEOUT = 10.0


class NftError(Exception):
    """nft refused a transaction; the kernel still holds the previous ruleset."""


def run(script: str, prefix: Sequence[str] = ()) -> None:
    """Apply `script` as one transaction; `prefix` runs nft elsewhere (`ip netns exec NS`)."""
    if not script:
        return
    try:
        done = subprocess.run([*prefix, NFT, "-f", "-"], input=script.encode(),
                              capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NftError(f"nft could not run: {e}") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise NftError("nft refused the transaction, the previous ruleset stays: " +
                       " / ".join(err[:6])[:600])


def listing(prefix: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The objects of vigil's table (`nft -j list table`), [] when there is none."""
    done = subprocess.run([*prefix, NFT, "-j", "list", "table", FAMILY, TABLE],
                          capture_output=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        return []
    items: list[dict[str, Any]] = json.loads(done.stdout)["nftables"]
    return items
