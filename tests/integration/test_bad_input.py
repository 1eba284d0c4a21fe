"""Bad input against real daemons: issue proof items (e) and (f).

(e) Forged, garbled, misdirected and replayed frames are sent from the client namespace at
n2's heartbeat port while a two-node cluster runs. Each kind must be counted under its own
reject reason, exactly once per datagram, and must change nothing: same holder, n1 still up
in n2's view, no new membership or group lines in n2's log. The frames are built here from
the layout documented in wire/frame.py (not with vigil's encoder), and the replays are real
frames captured off n2's interface with an AF_PACKET socket.

(f) Broken configurations and key files: `check-config` and `daemon` both refuse them with
`error: FILE:LINE: KEY: message` lines (exit 2), and the daemon touches nothing (no control
socket, no address) before refusing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vigil.config.toml import load
from vigil.lab.cluster import VIGIL, LabCluster, config_text, find_lines
from vigil.wire import frame as wire

pytestmark = pytest.mark.integration

# --- frames, built from the documented layout ------------------------------------------------

MAX_FRAME = 1400  # "at most MAX_FRAME bytes so that one frame is one Ethernet packet"
# magic 4, kind 1, two length prefixes (empty names), generation 8, seq 8, link 1, length 2, mac
MIN_FRAME = 4 + 1 + 1 + 1 + 8 + 8 + 1 + 2 + 32
GENERATION_AT = 4 + 1 + 1 + len("lab") + 1 + len("n1")  # in n1's frames of cluster "lab"
REASONS = ("oversized", "truncated", "bad_magic", "bad_version", "bad_auth", "garbled",
           "wrong_cluster", "unknown_sender", "replay", "stale_generation", "duplicate_node")
# Counted too, but none of the datagrams below may land there: each is refused earlier.
UNCHANGED = ("unverified",)
# A heartbeat that, if n2 believed it, would end n1's membership (it says it is leaving
# with nothing running): accepting any forged frame would show as a failover.
LEAVING = b'{"s":"leaving","g":[["web","stopped","n1",1,"n1",1]],"t":0}'


def build(key: bytes, *, cluster: str = "lab", sender: str = "n1", generation: int,
          seq: int, payload: bytes = LEAVING, kind: int = 1, version: int = 2,
          length: int | None = None, link: int = 0) -> bytes:
    c, s = cluster.encode(), sender.encode()
    body = (b"VGL" + bytes((version, kind, len(c))) + c + bytes((len(s),)) + s
            + struct.pack("!QQBH", generation, seq, link,
                          len(payload) if length is None else length)
            + payload)
    return body + hmac.new(key, body, hashlib.sha256).digest()


def classify_random(data: bytes) -> str:
    """What the decoder must call random bytes, from the layout alone."""
    if len(data) > MAX_FRAME:
        return "oversized"
    if len(data) < MIN_FRAME:
        return "truncated"
    assert data[:3] != b"VGL"  # random_datagram() never makes one
    return "bad_magic"


def random_datagram(size: int) -> bytes:
    while True:
        data = os.urandom(size)
        if data[:3] != b"VGL":
            return data


# Prints, as hex, the UDP payload of the first IPv4 packet from argv[1] to port argv[2] that
# arrives on eth0 within argv[3] seconds; exits 1 if none does.
CAPTURE = r"""
import socket, struct, sys, time
src, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind(("eth0", 0))
end = time.monotonic() + limit
while (left := end - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        pkt, addr = s.recvfrom(65535)
    except TimeoutError:
        break
    if addr[2] == socket.PACKET_OUTGOING or pkt[9] != 17:
        continue
    if socket.inet_ntoa(pkt[12:16]) != src or struct.unpack("!H", pkt[6:8])[0] & 0x3FFF:
        continue  # another sender, or a fragment
    ihl = (pkt[0] & 0x0F) * 4
    _, dport, ulen = struct.unpack("!HHH", pkt[ihl:ihl + 6])
    if dport == port:
        print(pkt[ihl + 8:ihl + ulen].hex(), flush=True)
        sys.exit(0)
sys.exit(1)
"""

# Sends each hex datagram of the JSON list in file argv[3] to argv[1]:argv[2], in order.
SEND = r"""
import json, socket, sys, time
dest, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for h in json.load(open(path)):
    s.sendto(bytes.fromhex(h), (dest, port))
    time.sleep(0.002)  # well within n2's receive buffer, even for the 9000-byte ones
"""


def capture(c: LabCluster, port: int) -> bytes:
    r = c.lab.run("n2", [sys.executable, "-c", CAPTURE, c.lab.address("n1"), str(port), "3"],
                  check=False, timeout=10)
    assert r.returncode == 0, f"no heartbeat from n1 captured: {r.stderr}"
    return bytes.fromhex(r.stdout.strip())


def send(c: LabCluster, port: int, datagrams: list[bytes]) -> None:
    path = c.dir / "datagrams.json"
    path.write_text(json.dumps([d.hex() for d in datagrams]))
    c.lab.run("client", [sys.executable, "-c", SEND, c.lab.address("n2"), str(port),
                         str(path)], timeout=20)


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.05)


def settled(c: LabCluster) -> bool:
    """n2 sees n1 up, running web, which n1 owns, and n2 itself holds nothing."""
    s = c.status("n2")
    g = s["groups"][0]
    return (s["nodes"][1]["state"] == "up" and g["owner"] == "n1" and g["state"] == "stopped"
            and g["peer_state"] == "running" and c.holders() == ["n1"])


def test_bad_frames_are_counted_and_change_nothing() -> None:
    with LabCluster() as c:
        port = load(c.config_path).port
        key = c.key.read_bytes().strip()
        assert (MIN_FRAME, MAX_FRAME) == (wire.MIN_FRAME, wire.MAX_FRAME)
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        wait_until("n2 settled", lambda: settled(c))

        old = capture(c, port)  # a real heartbeat of n1's first life
        c.stop("n1")
        c.wait_holder("n2")
        c.start("n1")
        c.wait_holder("n1")
        wait_until("n2 settled after n1's restart", lambda: settled(c))
        time.sleep(0.3)
        fresh = capture(c, port)  # and one of its second life, already accepted by n2
        assert old != fresh

        before = c.status("n2")
        gen = before["nodes"][1]["generation"]
        assert struct.unpack_from("!Q", fresh, GENERATION_AT)[0] == gen
        assert struct.unpack_from("!Q", old, GENERATION_AT)[0] < gen
        log_mark = len(c.log("n2"))

        sent: dict[str, list[bytes]] = {r: [] for r in REASONS}
        for size in (0, 1, 20, MIN_FRAME - 1, MIN_FRAME, 200, MAX_FRAME, MAX_FRAME + 1,
                     1472, 9000):
            data = random_datagram(size)
            sent[classify_random(data)].append(data)
        far = 2**40  # a sequence number far ahead: only the checks can stop these frames
        sent["bad_version"].append(build(key, generation=gen, seq=far, version=1))
        sent["bad_auth"] += [
            build(b"not-the-cluster-key-0123456789", generation=gen, seq=far),
            build(key + b"x", generation=gen + 1, seq=1),
            fresh[:-1] + bytes((fresh[-1] ^ 1,)),  # a real frame with one bit flipped
            old[:40] + bytes((old[40] ^ 0x80,)) + old[41:],
        ]
        sent["garbled"] += [
            build(key, generation=gen, seq=far, payload=b"{not json"),
            build(key, generation=gen, seq=far, payload=b'{"s":"up"}'),
            build(key, generation=gen, seq=far, payload=b'{"s":"up","g":[["web"]]}'),
            build(key, generation=gen, seq=far, payload=b"\xff\xfe\x00"),
            build(key, generation=gen, seq=far, payload=b""),
            build(key, generation=gen, seq=far, length=5),  # length field disagrees
            build(key, generation=gen, seq=far, kind=9),
        ]
        # Signed, but under n2's own name from another life: a second host named n2.
        sent["duplicate_node"].append(build(key, sender="n2", generation=gen + 7, seq=far))
        sent["unknown_sender"] += [build(key, sender="n3", generation=gen, seq=far),
                                   build(key, sender="mallory", generation=1, seq=1)]
        sent["wrong_cluster"] += [build(key, cluster="other", generation=gen, seq=far),
                                  build(key, cluster="lab2", sender="n3", generation=1, seq=1)]
        sent["replay"] += [fresh] * 3
        sent["stale_generation"] += [old] * 2
        assert all(sent[r] for r in REASONS) and sum(map(len, sent.values())) < 50
        send(c, port, [d for r in REASONS for d in sent[r]])

        base = before["frames"]["rejected"]
        want = {r: base[r] + len(sent[r]) for r in REASONS} | {r: base[r] for r in UNCHANGED}
        try:
            wait_until("every datagram counted",
                       lambda: c.status("n2")["frames"]["rejected"] == want, timeout=5)
        except TimeoutError:
            pass
        time.sleep(0.3)  # nothing is counted twice, or late
        after = c.status("n2")
        assert after["frames"]["rejected"] == want, {
            r: (after["frames"]["rejected"][r] - base[r], len(sent.get(r, ()))) for r in want}

        assert c.daemons["n2"].poll() is None and c.daemons["n1"].poll() is None
        assert c.holders() == ["n1"]
        peer = after["nodes"][1]
        assert (peer["state"], peer["generation"], peer["left"]) == ("up", gen, False)
        assert after["frames"]["received"] > before["frames"]["received"], \
            "n1's own heartbeats are still accepted"
        g = after["groups"][0]
        assert (g["owner"], g["state"], g["peer_state"]) == ("n1", "stopped", "running")
        assert g["epoch"] == before["groups"][0]["epoch"]
        new_lines = c.log("n2")[log_mark:]
        assert "two nodes share one name" in new_lines  # the one line the impostor earns
        new_lines = "\n".join(l for l in new_lines.splitlines() if "share one name" not in l)
        assert not find_lines(new_lines, ["Link ", "node ", "group ", "Traceback"]), new_lines

        text = c.vigil("n2", "status")
        assert text.returncode == 0, text.stderr
        frames_line = find_lines(text.stdout, ["frames:"])
        assert len(frames_line) == 1, text.stdout
        for r in REASONS:
            if want[r]:
                assert f"{r} {want[r]}" in frames_line[0], frames_line


# --- configuration and key files ----------------------------------------------------------


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def mutate(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def broken_configs(good: str, c: LabCluster) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(name, text, [(line needle, key, words of the message)]) for each broken file."""
    script = c.dir / "svc"
    with_exec = good + (f'[[group.resource]]\ntype = "exec"\nstart = "{script} start"\n'
                        f'stop = ["{script}", "stop"]\n')
    return [
        ("syntax", mutate(good, 'keepalive = "100ms"', 'keepalive = "100ms'),
         [('keepalive = "100ms', "<syntax>", "")]),
        ("unknown-key", mutate(good, 'initdead = "2s"\n', 'initdead = "2s"\ncolour = "blue"\n'),
         [('colour = "blue"', "cluster.colour", "unknown key 'colour'")]),
        ("deadtime", mutate(mutate(good, 'keepalive = "100ms"', 'keepalive = "300ms"'),
                            'warntime = "250ms"', 'warntime = "400ms"'),
         [('deadtime = "500ms"', "cluster.deadtime",
           "500ms must be at least twice keepalive (300ms)")]),
        ("two-problems", mutate(good, 'keepalive = "100ms"', 'keepalive = "300ms"'),
         [('deadtime = "500ms"', "cluster.deadtime", "at least twice keepalive"),
          ('warntime = "250ms"', "cluster.warntime", "between keepalive")]),
        ("home", mutate(good, 'home = "n1"', 'home = "n3"'),
         [('home = "n3"', "group[0].home", "'n3' is not a node")]),
        ("shell-string", with_exec,
         [(f'start = "{script} start"', "group[0].resource[1].start",
           "never a shell string")]),
        ("no-name", mutate(good, 'name = "lab"\n', ""),
         [("[cluster]", "cluster.name", "required key is missing")]),
    ]


def cli(c: LabCluster, config: Path, *args: str, node: str = "n1",
        in_lab: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [*VIGIL, "--config", str(config), "--node", node, "--socket",
            str(c.dir / "probe" / "vigil.sock"), "--state-dir", str(c.dir / "probe"), *args]
    if in_lab:
        return c.lab.run("n1", argv, check=False, timeout=20)
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=20)


def assert_refused_cleanly(c: LabCluster, r: subprocess.CompletedProcess[str],
                           addresses: set[str]) -> None:
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert not (c.dir / "probe" / "vigil.sock").exists()
    assert c.lab.addresses("n1") == addresses
    assert not (c.dir / "probe" / "generation").exists()


def test_broken_configs_and_keys_are_refused_with_file_line_and_key() -> None:
    with LabCluster() as c:
        good = config_text(c.lab, c.key, c.vip)
        addresses = c.lab.addresses("n1")
        ok = c.dir / "good.toml"
        ok.write_text(good)
        r = cli(c, ok, "check-config")
        assert r.returncode == 0 and "OK" in r.stdout, r.stderr
        assert "Traceback" not in r.stderr
        # Nothing protects this cluster against a partition: check-config says so.
        assert "warning: no fencing, witness or disk heartbeat configured" in r.stderr
        assert "split brain" in r.stderr
        fenced = c.dir / "fenced.toml"
        fenced.write_text(good + '\n[fencing]\nagent = "manual"\n')
        r = cli(c, fenced, "check-config")
        assert r.returncode == 0 and "warning" not in r.stderr, r.stderr

        for name, text, expected in broken_configs(good, c):
            path = c.dir / f"{name}.toml"
            path.write_text(text)
            expected.sort(key=lambda e: line_of(text, e[0]))  # problems come in line order
            want = [f"error: {path}:{line_of(text, needle)}: {key}: "
                    for needle, key, _ in expected]
            outputs = {"check-config": cli(c, path, "check-config"),
                       "daemon": cli(c, path, "daemon", "--no-realtime", in_lab=True)}
            for cmd, r in outputs.items():
                lines = r.stderr.splitlines()
                assert r.returncode == 2, (name, cmd, r.returncode, r.stderr)
                assert len(lines) == len(expected), (name, cmd, r.stderr)
                for prefix, line, (_, _, words) in zip(want, lines, expected):
                    assert line.startswith(prefix), (name, cmd, prefix, line)
                    assert words in line, (name, cmd, words, line)
                assert_refused_cleanly(c, r, addresses)
            assert outputs["check-config"].stderr == outputs["daemon"].stderr

        # A key file others may read: refused, naming the file and its mode.
        loose = c.dir / "loose-key"
        loose.write_bytes(c.key.read_bytes())
        loose.chmod(0o644)
        bad_key = c.dir / "loose.toml"
        bad_key.write_text(config_text(c.lab, loose, c.vip))
        for r in (cli(c, bad_key, "check-config"),
                  cli(c, bad_key, "daemon", "--no-realtime", in_lab=True)):
            assert r.returncode == 2, r.stderr
            assert str(loose) in r.stderr and "0644" in r.stderr, r.stderr
            assert_refused_cleanly(c, r, addresses)

        # A node name the configuration does not list.
        r = cli(c, ok, "daemon", "--no-realtime", node="n9", in_lab=True)
        assert r.returncode != 0
        assert "'n9'" in r.stderr and "n1, n2" in r.stderr and "--node" in r.stderr, r.stderr
        assert_refused_cleanly(c, r, addresses)
