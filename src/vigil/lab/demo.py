"""`make demo`: a live two-node cluster in network namespaces, and a failover you can watch.

Builds nodes n1 and n2 and a client on one bridge, starts `vigil daemon` on both nodes and a
web server on each that answers with its node's name, shows `vigil status`, then cuts n1's
link while the client probes the floating IP every 10 ms, shows who answers and the outage the
client saw, restores the link (the group fails back) and removes everything it built.
"""

from __future__ import annotations

import sys
import time

from vigil.lab.netns import exit_on_sigterm
from vigil.lab.cluster import LabCluster
from vigil.lab.probe import Prober, outages, owners


def say(text: str = "") -> None:
    print(text, flush=True)


def show(c: LabCluster, node: str) -> None:
    say(f"$ vigil --socket {c.socket(node)} status        # on {node}")
    r = c.vigil(node, "status")
    say(r.stdout.rstrip() or r.stderr.rstrip())
    say()


def main() -> int:
    exit_on_sigterm()
    say("vigil demo: two nodes (n1, n2) and a client in network namespaces, one bridge.")
    with LabCluster(keepalive="200ms", warntime="500ms", deadtime="1s", initdead="3s") as c:
        say(f"namespaces {c.lab.prefix}-*, floating IP {c.vip}, config {c.config_path}")
        say(c.config_path.read_text())
        say("starting vigil on n1 and n2 ...")
        c.start("n1")
        c.start("n2")
        c.wait_holder("n1")
        time.sleep(0.5)
        show(c, "n1")
        with Prober(c.lab, "client", c.url(), duration=60) as p:
            first = p.wait_sample(lambda s: s.ok, timeout=5)
            say(f"client: GET {c.url()} answered by {first.node}")
            time.sleep(1.0)
            say(f"$ ip -n {c.lab.ns('n1')} link set eth0 down      # cut n1's link")
            t0 = time.monotonic()
            c.lab.link_down("n1")
            moved = p.wait_sample(lambda s: s.node == "n2", after=t0, timeout=10)
            cut = outages(p.samples(), after=t0, before=moved.t + 0.001)
            outage = max((o.duration for o in cut), default=0.0)
            say(f"client: answered by n2 {moved.t - t0:.3f} s after the cut; "
                f"outage seen by the client: {outage * 1000:.0f} ms (deadtime 1000 ms)")
            time.sleep(0.5)
            show(c, "n2")
            say(f"$ ip -n {c.lab.ns('n1')} link set eth0 up        # restore it")
            t1 = time.monotonic()
            c.lab.link_up("n1")
            back = p.wait_sample(lambda s: s.node == "n1", after=t1, timeout=15)
            time.sleep(0.5)
            samples = p.stop()
        fb = outages(samples, after=t1)
        fb_outage = max((o.duration for o in fb), default=0.0)
        say(f"client: answered by n1 again {back.t - t1:.3f} s after the link came back "
            f"(auto_failback, a planned release-then-acquire); outage {fb_outage * 1000:.0f} ms")
        say("who answered the client, in order: "
            + " -> ".join(n for _, n in owners(samples)))
        say()
        say("n2's log during the failover:")
        for line in c.log("n2").splitlines():
            if any(k in line for k in ("dead", "taking over", "acquir", "releas", "start:",
                                       "stop:", "is up")):
                say("  " + line)
        say()
        say("cleaning up: stopping daemons and removing the namespaces")
    say("done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
