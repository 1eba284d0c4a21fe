"""balancer/checks.py against real servers in a namespace: a real HTTP server, an HTTPS
one with a self-signed certificate, a server that accepts and never answers, a closed
port, and exec checks that pass, fail and hang. The checks run in the director's
namespace, as the daemon will."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.lab.netns import Lab

HUNG = "import socket,time\ns=socket.socket()\n" \
       "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n" \
       "s.bind(('{addr}',81));s.listen(8)\nc=[]\nwhile True: c.append(s.accept())"
# Answers every connection with what is not HTTP (84), or closes it unanswered (85).
BAD = "import socket\ns=socket.socket()\n" \
      "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n" \
      "s.bind(('{addr}',{port}));s.listen(8)\n" \
      "while True:\n c,_=s.accept();c.recv(4096);c.sendall({reply!r});c.close()"
# A directory served over HTTP (port 80) or HTTPS (443, given a certificate), binding
# without http.server's reverse DNS lookup: the test network sends nothing to a name server.
WWW = textwrap.dedent("""
    import http.server, socketserver, ssl, sys
    d, addr, port, cert = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    class S(http.server.HTTPServer):
        def server_bind(self):
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = addr, port
    h = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=d, **k)
    s = S((addr, port), h)
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert[0])
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
    s.serve_forever()
""")
RUN = textwrap.dedent("""
    import asyncio, ipaddress, json, sys
    from vigil.balancer.checks import run
    from vigil.balancer.model import Check, Endpoint
    async def main():
        cases = json.loads(sys.argv[1])
        results = await asyncio.gather(*(
            run(Check(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()}),
                Endpoint(ipaddress.ip_address(a), p)) for c, a, p in cases))
        print(json.dumps([[r.ok, r.why, r.latency] for r in results]))
    asyncio.run(main())
""")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("www")
    (root / "health").write_text("all ok\n")
    cert = root / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=r1", "-keyout", str(cert), "-out", str(cert)],
                   check=True, capture_output=True)
    with Lab.create(["director", "r1"]) as lab:
        addr = lab.address("r1")
        lab.popen("r1", ["python3", "-c", WWW, str(root), addr, "80"],
                  stderr=subprocess.DEVNULL)
        lab.popen("r1", ["python3", "-c", HUNG.format(addr=addr)])
        lab.popen("r1", ["python3", "-c", WWW, str(root), addr, "443", str(cert)],
                  stderr=subprocess.DEVNULL)
        lab.popen("r1", ["python3", "-c", BAD.format(addr=addr, port=84,
                                                     reply=b"NOT HTTP\r\n\r\n")])
        lab.popen("r1", ["python3", "-c", BAD.format(addr=addr, port=85, reply=b"")])
        for port in (80, 81, 84, 85, 443):
            lab.wait_listening("r1", port)
        yield lab


def checks(lab: Lab, *cases: tuple[dict[str, Any], int]) -> list[tuple[bool, str, float]]:
    arg = json.dumps([[c, lab.address("r1"), port] for c, port in cases])
    out = lab.run("director", [sys.executable, "-c", RUN, arg], timeout=30)
    return [tuple(r) for r in json.loads(out.stdout)]  # type: ignore[misc]


def test_http_status_body_and_digest(lab: Lab) -> None:
    digest = hashlib.md5(b"all ok\n").hexdigest()
    got = checks(lab,
                 ({"type": "http", "path": "/health", "expect_body": "ok$"}, 80),
                 ({"type": "http", "path": "/health", "digest": digest}, 80),
                 ({"type": "http", "path": "/missing"}, 80),
                 ({"type": "http", "path": "/health", "expect_body": "^fine"}, 80),
                 ({"type": "http", "path": "/health", "digest": "0" * 32}, 80),
                 ({"type": "http", "path": "/missing", "expect_status": [404]}, 80))
    assert [(ok, why) for ok, why, _ in got] == [
        (True, "ok"), (True, "ok"), (False, "status 404, expected 200"),
        (False, "body does not match '^fine'"), (False, "body digest differs"), (True, "ok")]


def test_https_without_verifying_the_certificate(lab: Lab) -> None:
    (ok, why, _), (bad, why2, _) = checks(
        lab, ({"type": "https", "path": "/health", "expect_body": "ok"}, 443),
        ({"type": "https", "path": "/health"}, 80))
    assert (ok, why) == (True, "ok")
    assert not bad and why2.startswith("tls:")


def test_tcp_refused_and_hung_servers(lab: Lab) -> None:
    got = checks(lab, ({"type": "tcp"}, 80), ({"type": "tcp"}, 82),
                 ({"type": "http", "timeout": 0.3, "interval": 1.0}, 81))
    assert got[0][:2] == (True, "ok")
    assert got[1][:2] == (False, "connect: refused")
    ok, why, latency = got[2]
    assert (ok, why) == (False, "timeout after 300ms")
    assert 0.29 <= latency < 0.6  # the hung server costs the check its timeout, no more


def test_http_refused_garbage_and_unanswered(lab: Lab) -> None:
    got = checks(lab, ({"type": "http"}, 82), ({"type": "http"}, 84), ({"type": "http"}, 85))
    assert got[0][:2] == (False, "connect: refused")
    assert not got[1][0] and got[1][1].startswith("bad HTTP answer"), got[1]
    assert got[2][:2] == (False, "no HTTP answer (closed)"), got[2]


def test_exec_checks_pass_fail_and_are_killed_at_their_timeout(lab: Lab,
                                                               tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    hang = f"sleep 30 & echo $! > {marker}; wait"
    got = checks(lab,
                 ({"type": "exec", "command": ["sh", "-c",
                                               'test "$VIGIL_REAL_PORT" = 80']}, 80),
                 ({"type": "exec", "command": ["sh", "-c", "exit 3"]}, 80),
                 ({"type": "exec", "command": ["sh", "-c", hang], "timeout": 0.3}, 80))
    assert [g[:2] for g in got] == [(True, "ok"), (False, "exit status 3"),
                                    (False, "timeout after 300ms")]
    child = int(marker.read_text())
    assert not Path(f"/proc/{child}").exists() or \
        Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"


HALF_OPEN = textwrap.dedent("""
    import asyncio, ipaddress, json, sys
    from vigil.balancer.model import Check, Endpoint, RealServer, VirtualServer
    from vigil.balancer.prober import Prober
    async def main():
        check = Check(type="tcp", interval=0.1, timeout=0.05, rise=1, fall=1)
        reals = tuple(RealServer(Endpoint(ipaddress.ip_address(a), p), check=check)
                      for a, p in json.loads(sys.argv[1]))
        prober = Prober([VirtualServer("vs", "g", reals)], lambda k, c, r: None)
        task = asyncio.create_task(prober.run())
        await asyncio.sleep(1.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        print(json.dumps({"mode": prober.mode, "results": [
            [str(k[1]), r.ok, r.why, r.latency, prober.counts[k][True],
             prober.counts[k][False]] for k, r in prober.results.items()]}))
    asyncio.run(main())
""")


def test_tcp_checks_are_half_open_on_one_raw_socket(lab: Lab) -> None:
    """The daemon's prober makes tcp checks of IPv4 servers with a SYN on a raw socket: an
    open port answers SYN-ACK (up), a closed one RST (refused), an address nobody holds
    nothing (timeout); the director's kernel resets each half-open connection, so the
    server keeps none."""
    r1 = lab.address("r1")
    nobody = r1.rsplit(".", 1)[0] + ".99"  # in the lab's own subnet, held by no host
    out = lab.run("director", [sys.executable, "-c", HALF_OPEN,
                               json.dumps([[r1, 80], [r1, 82], [nobody, 80]])], timeout=30)
    got = json.loads(out.stdout)
    assert got["mode"] == "half-open", got
    results = {a: (ok, why, latency, good, bad)
               for a, ok, why, latency, good, bad in got["results"]}
    ok, why, latency, good, bad = results[f"{r1}:80"]
    assert (ok, why, bad) == (True, "ok", 0) and 9 <= good <= 12, results
    assert 0 <= latency < 0.01  # the kernel's arrival stamp, not the tick's
    ok, why, _, good, bad = results[f"{r1}:82"]
    assert (ok, why, good) == (False, "connect: refused", 0) and 9 <= bad <= 12, results
    ok, why, latency, good, bad = results[f"{nobody}:80"]
    assert (ok, why, good) == (False, "timeout after 50ms", 0) and 8 <= bad <= 12, results
    # No connection left on the server: each SYN-ACK was reset by the director's kernel.
    left = lab.run("r1", ["ss", "-Htn", "state", "syn-recv", "state", "established",
                          "sport", "= :80"]).stdout
    assert lab.address("director") not in left, left
