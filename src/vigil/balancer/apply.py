"""Running nft.py's and nft_dr.py's transactions: `nft -f -` applies one whole or not at all
(both tables in one transaction), and `nft -j list table` reads back what the kernel holds,
as JSON. The daemon uses the coroutines (`apply`, `present`); tests and tools the blocking
`run` and `listing`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from vigil.balancer import child, nft, nft_dr
from vigil.balancer.nft import FAMILY, TABLE

TABLES = ((nft.FAMILY, nft.TABLE), (nft_dr.FAMILY, nft_dr.TABLE))  # NAT's, direct routing's

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
    _check(done.returncode, done.stderr)


async def apply(script: str, prefix: Sequence[str] = ()) -> None:
    """`run`, without blocking the event loop."""
    if script:
        rc, _, stderr = await _exec([*prefix, NFT, "-f", "-"], script.encode())
        _check(rc, stderr)


def remove_all() -> str:
    """The transaction that takes both of vigil's tables away."""
    return "".join(nft.remove(f, t) for f, t in TABLES)


async def present(prefix: Sequence[str] = ()) -> bool:
    """Whether the kernel holds one of vigil's tables; NftError when nft cannot tell."""
    for family, table in TABLES:
        rc, _, stderr = await _exec([*prefix, NFT, "list", "table", family, table], b"")
        if rc != 0 and b"No such file or directory" not in stderr:
            raise NftError("nft could not list the table: " +
                           stderr.decode(errors="replace").strip()[:300])
        if rc == 0:
            return True
    return False


async def counters(prefix: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The named counters of vigil's tables (`nft -j list counters table`), as nft gives
    them; NftError when nft cannot run. A table that is not there has none."""
    found: list[dict[str, Any]] = []
    for family, table in TABLES:
        rc, out, _ = await _exec(
            [*prefix, NFT, "-j", "list", "counters", "table", family, table], b"", True)
        if rc == 0 and out:
            try:
                items = json.loads(out)["nftables"]
            except (ValueError, LookupError, TypeError):
                raise NftError("nft listed the counters in a form not understood") from None
            found += [i for i in items if isinstance(i, dict)]
    return found


async def _exec(argv: list[str], data: bytes, output: bool = False) -> tuple[int, bytes, bytes]:
    """child.communicate, its failures as NftError."""
    try:
        return await child.communicate(argv, data, TIMEOUT, output)
    except TimeoutError:
        raise NftError(f"nft could not run: no answer in {TIMEOUT:g} s") from None
    except OSError as e:
        raise NftError(f"nft could not run: {e}") from None


def _check(rc: int, stderr: bytes) -> None:
    if rc != 0:
        err = stderr.decode(errors="replace").strip().splitlines()
        raise NftError("nft refused the transaction, the previous ruleset stays: " +
                       " / ".join(err[:6])[:600])


def listing(prefix: Sequence[str] = (), family: str = FAMILY,
            table: str = TABLE) -> list[dict[str, Any]]:
    """The objects of one of vigil's tables (`nft -j list table`), [] when there is none."""
    done = subprocess.run([*prefix, NFT, "-j", "list", "table", family, table],
                          capture_output=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        return []
    items: list[dict[str, Any]] = json.loads(done.stdout)["nftables"]
    return items
