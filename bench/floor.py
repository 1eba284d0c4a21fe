"""The floor under any asyncio daemon's idle cost on this machine: two Python processes
that do nothing but what a heartbeat pair must, each sending one 200-byte datagram every
`interval` to the other and receiving the other's, on asyncio's loop as vigil does. What
vigil costs above this is its own work; this much is the interpreter and the kernel waking
a process twice per interval (measured here: about 0.2 ms of CPU per wake-up, where a C
program such as keepalived wakes once per advert for about 0.1 ms).

    python -m bench.floor [--interval 0.1] [--seconds 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench import common

PEER = """
import asyncio, socket, sys
me, other, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
class P(asyncio.DatagramProtocol):
    def datagram_received(self, data, addr):
        self.last = data
async def main():
    loop = asyncio.get_running_loop()
    t, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", me))
    payload = bytes(200)
    while True:
        t.sendto(payload, ("127.0.0.1", other))
        await asyncio.sleep(interval)
asyncio.run(main())
"""


def measure(interval: float, seconds: float, base_port: int = 47610) -> dict[str, float]:
    """CPU % of one core of one of the pair, over `seconds`."""
    a, b = base_port, base_port + 1
    procs = [subprocess.Popen([sys.executable, "-c", PEER, str(x), str(y), str(interval)])
             for x, y in ((a, b), (b, a))]
    try:
        time.sleep(1.0)
        t0, c0 = time.monotonic(), common.cpu_ns(procs[0].pid)
        time.sleep(seconds)
        cpu = (common.cpu_ns(procs[0].pid) - c0) / 1e9 / (time.monotonic() - t0) * 100
        return {"interval_s": interval, "cpu_percent": round(cpu, 3),
                "pss_mb": round(common.pss_kb(procs[0].pid) / 1024, 1)}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    print(measure(args.interval, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
