"""One short-lived child of the balancer's (nft, ip, conntrack): argv only, its input on
stdin, its output and errors read whole, killed and reaped at the timeout or when the
caller is cancelled. (resources/runner.py runs agents: it keeps only the tail of their
output and survives daemons they leave behind, which these programs never do.)"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence


async def communicate(argv: Sequence[str], data: bytes, timeout: float,
                      output: bool = True) -> tuple[int, bytes, bytes]:
    """Run `argv` with `data` on its stdin: (exit status, stdout, stderr); stdout is b""
    when `output` is False. OSError when it cannot start, TimeoutError when it gave no
    answer in `timeout` seconds."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(data)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out or b"", err


async def run(name: str, argv: Sequence[str], timeout: float,
              output: bool = True) -> tuple[int, bytes, bytes]:
    """`communicate` with nothing on stdin, its failures as OSError naming the program
    `name`: it could not run, or gave no answer in `timeout` seconds."""
    try:
        return await communicate(argv, b"", timeout, output)
    except TimeoutError:
        raise OSError(f"{name} gave no answer in {timeout:g} s") from None
    except OSError as e:
        raise OSError(f"{name} could not run: {e}") from None
