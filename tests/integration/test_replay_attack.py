"""Issue 12, part 3, on real daemons: captured heartbeats replayed from the client network.

Seen on the old code: with n2 dead, n1 restarted and n2's frames of 20 s earlier sent to it at
5 a second; n1 counted n2 up and waited for it, and the floating address was on no node for
as long as the replay lasted. And n1's own frames of an earlier life, replayed at 20,000 a
second, made it log an error for each (170,573 lines in 10 s). The frames here are real ones,
captured off the nodes' interfaces with an AF_PACKET socket."""

from __future__ import annotations

import json
import sys
import time

import pytest

from vigil.lab.cluster import LabCluster
from vigil.config.toml import load

pytestmark = pytest.mark.integration

# Prints, one hex line each, the UDP payloads from argv[1] to port argv[2] seen on eth0 for
# argv[3] seconds (at most 500).
CAPTURE = r"""
import socket, struct, sys, time
src, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind(("eth0", 0))
end, n = time.monotonic() + limit, 0
while (left := end - time.monotonic()) > 0 and n < 500:
    s.settimeout(left)
    try:
        pkt, addr = s.recvfrom(65535)
    except TimeoutError:
        break
    if addr[2] == socket.PACKET_OUTGOING or pkt[9] != 17 or socket.inet_ntoa(pkt[12:16]) != src:
        continue
    ihl = (pkt[0] & 0x0F) * 4
    _, dport, ulen = struct.unpack("!HHH", pkt[ihl:ihl + 6])
    if dport == port:
        print(pkt[ihl + 8:ihl + ulen].hex(), flush=True)
        n += 1
"""

# Sends the hex datagrams of file argv[3] to argv[1]:argv[2], `count` in all (cycling
# through them), `rate` a second (0: as fast as it can).
SEND = r"""
import json, socket, sys, time
dest, port, path, count, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
frames = [bytes.fromhex(h) for h in json.load(open(path))]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic()
for i in range(count):
    if rate:
        time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
    s.sendto(frames[i % len(frames)], (dest, port))
"""


def capture(c: LabCluster, on: str, sender: str, port: int, seconds: float) -> list[str]:
    r = c.lab.run(on, [sys.executable, "-c", CAPTURE, c.lab.address(sender), str(port),
                       str(seconds)], timeout=seconds + 10)
    frames = r.stdout.split()
    assert frames, f"nothing captured from {sender} on {on}"
    return frames


def replay(c: LabCluster, to: str, port: int, frames: list[str], count: int, rate: float,
           wait: bool = True) -> object:
    path = c.dir / f"replay-{len(frames)}-{count}.json"
    path.write_text(json.dumps(frames))
    argv = [sys.executable, "-c", SEND, c.lab.address(to), str(port), str(path), str(count),
            str(rate)]
    if wait:
        return c.lab.run("client", argv, timeout=120)
    return c.lab.popen("client", argv)


def test_a_restarted_node_is_not_fooled_by_a_dead_peers_captured_frames() -> None:
    with LabCluster() as c:
        port = load(c.config_path).port
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        frames = capture(c, "n1", "n2", port, 1.0)  # n2's first life
        c.stop("n2")
        c.start("n2")
        time.sleep(1.0)
        frames += capture(c, "n1", "n2", port, 1.0)  # and its second
        c.stop("n2")  # n2 is dead for good
        c.stop("n1")
        c.wait_holder(None)
        mark = len(c.log("n1"))
        proc = replay(c, "n1", port, frames, count=int(5 * 8), rate=5, wait=False)
        try:
            t0 = time.monotonic()
            c.start("n1")  # restarted, while old frames of n2 arrive at 5 a second
            seen = set()
            while time.monotonic() - t0 < 6.0:
                seen.add(c.status("n1")["nodes"][1]["state"])
                time.sleep(0.1)
        finally:
            proc.wait(30)  # type: ignore[attr-defined]
        assert "up" not in seen, seen
        assert c.holders() == ["n1"], "taken at initdead, as if nothing had been heard"
        s = c.status("n1")
        assert s["nodes"][1]["state"] == "dead"
        r = s["frames"]["rejected"]
        # Each new one proved nothing; once both lives were seen, the older life's are
        # stale and repeats are replays (the frames cycle; those sent before n1 listened
        # are lost).
        assert r["unverified"] >= 5 and r["unverified"] + r["stale_generation"] + \
            r["replay"] >= 20, r
        assert s["frames"]["received"] == 0
        assert "node n2: is up" not in c.log("n1")[mark:]


def test_a_flood_of_our_own_old_frames_is_counted_stale_and_logs_a_few_lines() -> None:
    with LabCluster() as c:
        port = load(c.config_path).port
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        own = capture(c, "n2", "n1", port, 1.0)  # n1's frames of its first life
        c.stop("n1")
        c.start("n1")
        c.wait_holder("n1")
        lines = len(c.log("n1").splitlines())
        replay(c, "n1", port, own, count=20_000, rate=0)
        time.sleep(0.5)
        s = c.status("n1")
        # (Many of the 20,000 overflow the socket buffer: those never reach the daemon.)
        assert s["frames"]["rejected"]["stale_generation"] >= 2_000, s["frames"]
        assert s["frames"]["rejected"]["duplicate_node"] == 0
        new = c.log("n1").splitlines()[lines:]
        assert len(new) < 20, new
        assert not any("another host sends heartbeats" in l for l in new)
        assert s["nodes"][1]["state"] == "up" and c.holders() == ["n1"]
