"""Passive detection: a real server whose HTTP server dies refuses the next connections
(the kernel answers its port with a reset); the director sees those resets (its ruleset logs
them to NFLOG, the daemon reads them) and takes the server out at once, long before its next
active check. Real daemons, real HTTP servers, a real client making new connections.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from typing import Any

import pytest

from tests.integration.test_balancer_daemon import _running, _servers, directors

pytestmark = pytest.mark.integration

# New connections, one after another, each recorded (monotonic time, who answered or why not).
CLIENT = textwrap.dedent("""
    import http.client, json, sys, time
    host, seconds = sys.argv[1], float(sys.argv[2])
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, 80, timeout=1)
            conn.request("GET", "/")
            out.append((t, conn.getresponse().read().decode().strip()))
            conn.close()
        except OSError as e:
            out.append((t, "error: " + (e.strerror or str(e))))
        time.sleep(0.005)
    print(json.dumps(out))
""")


def test_a_refusing_server_is_out_before_its_next_check() -> None:
    # Checks every 10 s: whatever takes r2 out within the second is not an active check.
    with directors(interval="10s") as (c, servers):
        r1, r2 = _running(c)
        client = c.lab.popen("client", ["python3", "-c", CLIENT, c.vip, "3"],
                             stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        killed = time.monotonic()
        c.lab.stop(servers["r2"])
        out, _ = client.communicate(timeout=30)
        results: list[tuple[float, str]] = [tuple(r) for r in json.loads(out)]  # type: ignore[misc]
        assert _servers(c, "n1")[r2] == "down"
        log = c.log("n1")
        assert f"real server {r2} of web is down (refused a client's connection (reset)" in log
        after = [(t - killed, who) for t, who in results if t > killed]
        failed = [dt for dt, who in after if who.startswith("error")]
        to_r2 = [dt for dt, who in after if who == "r2"]
        last_bad = max(failed + to_r2, default=0.0)
        print(f"after the kill: {len(after)} requests, {len(failed)} failed, the last one "
              f"that reached r2 or failed {last_bad * 1000:.0f} ms after the kill")
        # fall = 2: two refusals take it out; a few in flight meanwhile may fail too.
        assert 1 <= len(failed) <= 5, failed
        assert last_bad < 0.3, (last_bad, failed, to_r2)
        assert sum(who == "r1" for _, who in after) > 20
        status: dict[str, Any] = c.status("n1")["balancer"]
        assert status["passive_detection"]["on"] and status["passive_detection"]["error"] is None
        served = {s["address"]: s for s in status["virtual_servers"][0]["servers"]}
        assert served[r2]["refusals"] >= 2 and served[r1]["refusals"] == 0
        text = c.vigil("n1", "lb", "status", check=True).stdout
        assert "passive detection: on, " in text and " refused, " in text, text
