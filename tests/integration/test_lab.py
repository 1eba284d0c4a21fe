"""The lab itself: namespaces, faults, the web server and the prober (integration, root only),
and the prober's pure analysis helpers (plain unit tests, no marker)."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.lab.netns import Direction, Lab, Side, cleanup, list_namespaces
from vigil.lab.probe import Outage, Prober, Sample, outages, owners, parse_lines

# -- analysis helpers (pure) ---------------------------------------------------------------


def ok(t: float, node: str = "n1") -> Sample:
    return Sample(t, node, 0.5, None)


def bad(t: float, err: str = "timeout") -> Sample:
    return Sample(t, None, 100.0, err)


def test_outages_measure_from_last_success_to_first_success() -> None:
    samples = [ok(1.0), ok(1.1), bad(1.2), bad(1.3, "refused"), ok(1.5, "n2"), ok(1.6, "n2")]
    [o] = outages(samples)
    assert (o.start, o.end, o.failures, o.complete) == (1.1, 1.5, 2, True)
    assert o.duration == pytest.approx(0.4)


def test_outages_none_when_all_succeed_and_order_does_not_matter() -> None:
    assert outages([ok(2.0), ok(1.0)]) == []
    assert outages([]) == []
    shuffled = [ok(3.0), bad(2.0), ok(1.0)]
    assert [(o.start, o.end) for o in outages(shuffled)] == [(1.0, 3.0)]


def test_outages_open_at_either_end_are_incomplete() -> None:
    first, last = outages([bad(1.0), bad(1.1), ok(1.2), bad(1.3), bad(1.4)])
    assert (first.start, first.end, first.failures, first.complete) == (1.0, 1.2, 2, False)
    assert (last.start, last.end, last.failures, last.complete) == (1.2, 1.4, 2, False)
    [only] = outages([bad(5.0)])
    assert (only.start, only.end, only.duration, only.complete) == (5.0, 5.0, 0.0, False)


def test_outages_window_keeps_overlapping_outages_unclipped() -> None:
    samples = [ok(0.0), bad(0.5), ok(1.0), ok(2.0), bad(2.5), ok(3.0), bad(3.5), ok(4.0)]
    assert [o.start for o in outages(samples, after=2.2)] == [2.0, 3.0]
    assert [o.start for o in outages(samples, after=2.0, before=3.0)] == [2.0]
    assert [o.start for o in outages(samples, before=0.7)] == [0.0]
    # A window inside one outage still reports it, whole.
    assert outages(samples, after=2.4, before=2.6) == [Outage(2.0, 3.0, 1.0, 1, True)]


def test_owners_lists_changes_of_answering_node() -> None:
    samples = [bad(0.5), ok(1.0), ok(1.1), bad(1.2), ok(1.3, "n2"), ok(1.4, "n2"), ok(1.5)]
    assert owners(samples) == [(1.0, "n1"), (1.3, "n2"), (1.5, "n1")]
    assert owners([bad(1.0)]) == []


def test_parse_lines_round_trips_and_rejects_garbage() -> None:
    samples = [ok(1.0), bad(2.0, "refused")]
    lines: list[str | bytes] = [s.to_json() + "\n" for s in samples]
    lines += ["\n", b"  \n"]
    assert parse_lines(lines) == samples
    assert parse_lines([b'{"t": 1, "node": null, "ms": 3, "err": "reset"}']) == [
        Sample(1.0, None, 3.0, "reset")]
    for garbage in ["nope", '{"t": 1}', '{"t": "x", "node": null, "ms": 1, "err": null}']:
        with pytest.raises(ValueError):
            parse_lines([garbage])


@given(st.lists(st.booleans(), max_size=40))
def test_outages_are_the_maximal_failed_runs(pattern: list[bool]) -> None:
    samples = [ok(float(i)) if good else bad(float(i)) for i, good in enumerate(pattern)]
    found = outages(samples)
    runs = "".join("x" if not good else "." for good in pattern).split(".")
    assert [o.failures for o in found] == [len(r) for r in runs if r]
    assert sum(o.failures for o in found) == pattern.count(False)
    for o in found:
        assert o.duration == o.end - o.start >= 0
        assert not any(s.ok and o.start < s.t < o.end for s in samples)


# -- the lab (integration) -----------------------------------------------------------------

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
WEB = [sys.executable, "-m", "vigil.lab.web"]
PROBE = [sys.executable, "-m", "vigil.lab.probe"]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.create(["n1", "n2", "client"]) as lab:
        webs = [lab.popen(host, [*WEB, "--name", host]) for host in ("n1", "n2")]
        for host in ("n1", "n2"):
            lab.wait_listening(host, 80)
        yield lab
        assert [Lab.stop(web) for web in webs] == [0, 0]  # SIGTERM is a clean exit
    assert not [n for n in list_namespaces() if n.startswith(lab.prefix + "-")]


def probe_once(lab: Lab, src: str, dst: str) -> Sample:
    """One probe from `src` to `dst`'s web server, run to completion inside `src`."""
    out = lab.run(src, [*PROBE, "--url", f"http://{lab.address(dst)}/", "--count", "1",
                        "--timeout", "0.3"]).stdout
    [sample] = parse_lines(out.splitlines())
    return sample


@pytest.mark.integration
@root_only
def test_namespaces_and_addresses(lab: Lab) -> None:
    names = set(list_namespaces())
    assert {lab.switch, lab.ns("n1"), lab.ns("n2"), lab.ns("client")} <= names
    assert lab.ns("n1") == f"{lab.prefix}-n1"
    assert lab.address("n1") == "10.77.0.10" and lab.address("client") == "10.77.0.12"
    assert lab.subnet(0) == "10.77.0.0/24"
    assert {"10.77.0.11/24", "127.0.0.1/8"} <= lab.addresses("n2")
    assert "10.77.0.11/24" in lab.addresses("n2", "eth0")
    # Nothing of the lab lives in the root namespace.
    root_links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True,
                                check=True).stdout
    assert not {link["ifname"] for link in json.loads(root_links)} & {
        "n1-0", "n2-0", "client-0"}


@pytest.mark.integration
@root_only
def test_two_links() -> None:
    with Lab.create(["a", "b"], subnet="10.78.0.0/24", links=2) as lab2:
        assert lab2.subnet(1) == "10.78.1.0/24"
        assert {"10.78.0.11/24", "10.78.1.11/24"} <= lab2.addresses("b")
        br = lab2.run("a", ["ip", "-br", "link"]).stdout
        assert "eth0" in br and "eth1" in br


@pytest.mark.integration
@root_only
def test_hosts_reach_each_other(lab: Lab) -> None:
    sample = probe_once(lab, "n1", "n2")
    assert (sample.node, sample.err) == ("n2", None)
    assert probe_once(lab, "n2", "n1").node == "n1"


@pytest.mark.integration
@root_only
def test_prober_sees_n1_on_schedule(lab: Lab) -> None:
    before = time.monotonic()
    prober = Prober(lab, "client", f"http://{lab.address('n1')}/", interval=0.01,
                    duration=1.0).start()
    # Lines come as probes finish, not always in start order (several are in flight).
    samples = sorted(prober.wait(timeout=10), key=lambda s: s.t)
    after = time.monotonic()
    assert len(samples) > 20
    assert {s.node for s in samples} == {"n1"} and all(s.ok for s in samples)
    # CLOCK_MONOTONIC is shared with the namespace: times fall inside our own window.
    assert before < samples[0].t and samples[-1].t < after
    assert samples[-1].t - samples[0].t <= 1.0
    # A fixed schedule: a late start does not delay the next slot, so gaps vary but centre
    # on the interval.
    gaps = sorted(b.t - a.t for a, b in itertools.pairwise(samples))
    assert min(gaps) > 0 and 0.008 < gaps[len(gaps) // 2] < 0.012
    assert owners(samples) == [(samples[0].t, "n1")] and outages(samples) == []


def fault_cycle(prober: Prober, fault: Callable[[], None], repair: Callable[[], None]) -> None:
    """Apply `fault` until probes fail, `repair` until they succeed; one outage between."""
    prober.wait_sample(lambda s: s.ok, timeout=5)
    t_fault = time.monotonic()
    try:
        fault()
        failed = prober.wait_sample(lambda s: not s.ok, after=t_fault, timeout=3)
        time.sleep(0.2)
    finally:
        t_repair = time.monotonic()
        repair()
    back = prober.wait_sample(lambda s: s.ok, after=t_repair, timeout=5)
    [outage] = outages(prober.samples(), after=t_fault, before=back.t)
    assert outage.complete and outage.start < failed.t < outage.end == back.t
    assert outage.duration >= 0.2
    # Probes keep their 10 ms schedule while earlier ones wait out their timeouts, so the
    # recovery is seen within an interval, not a timeout, after it happens.
    assert outage.failures >= 0.6 * outage.duration / 0.01, outage
    assert back.t - t_repair < 0.1


@pytest.mark.integration
@root_only
@pytest.mark.parametrize("side", ["host", "switch"])
def test_link_down_fails_probes_and_link_up_restores(lab: Lab, side: Side) -> None:
    with Prober(lab, "client", f"http://{lab.address('n1')}/", duration=15) as prober:
        fault_cycle(prober, lambda: lab.link_down("n1", side=side),
                    lambda: lab.link_up("n1", side=side))
    assert prober.returncode == 0  # stopped by SIGTERM
    assert "10.77.0.10/24" in lab.addresses("n1")


@pytest.mark.integration
@root_only
@pytest.mark.parametrize("direction", ["in", "out", "both"])
def test_drop_fails_probes_and_undrop_restores(lab: Lab, direction: Direction) -> None:
    with Prober(lab, "client", f"http://{lab.address('n1')}/", duration=15) as prober:
        fault_cycle(prober, lambda: lab.drop("n1", direction), lambda: lab.undrop("n1"))
    assert "vigil_lab" not in lab.run("n1", ["nft", "list", "tables"]).stdout


@pytest.mark.integration
@root_only
def test_partial_drop_loses_some(lab: Lab) -> None:
    try:
        lab.drop("n1", "in", percent=50)
        with Prober(lab, "client", f"http://{lab.address('n1')}/", timeout=0.05,
                    count=40, duration=10) as prober:
            samples = prober.wait(timeout=10)
    finally:
        lab.undrop("n1")
    assert len(samples) == 40
    assert any(s.ok for s in samples) and any(not s.ok for s in samples)


@pytest.mark.integration
@root_only
def test_drop_from_one_peer_is_a_one_way_partition(lab: Lab) -> None:
    try:
        lab.drop("n1", "in", peer=lab.address("n2"))
        assert probe_once(lab, "n2", "n1").err == "timeout"
        assert probe_once(lab, "client", "n1").node == "n1"
        # Only n2 is cut off: n1 still reaches the client (which refuses: no server there).
        assert probe_once(lab, "n1", "client").err == "refused"
    finally:
        lab.undrop("n1")
    assert probe_once(lab, "n2", "n1").node == "n1"


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.integration
@root_only
def test_close_removes_namespaces_and_processes() -> None:
    lab = Lab.create(["a", "b"])
    names = [lab.switch, lab.ns("a"), lab.ns("b")]
    assert set(names) <= set(list_namespaces())
    # A tracked process with a child of its own, and a process the lab did not track.
    tracked = lab.popen("a", ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE,
                        text=True)
    assert tracked.stdout is not None
    child = int(tracked.stdout.readline())
    stray = subprocess.Popen(["ip", "netns", "exec", lab.ns("b"), "sleep", "60"])
    time.sleep(0.1)
    lab.close()
    assert not [n for n in list_namespaces() if n.startswith(lab.prefix + "-")]
    assert tracked.returncode is not None
    assert stray.wait(timeout=2) is not None
    deadline = time.monotonic() + 2
    while not _gone_or_zombie(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone_or_zombie(child)
    lab.close()  # idempotent
    with pytest.raises(RuntimeError):
        lab.run("a", ["true"])


@pytest.mark.integration
@root_only
def test_cleanup_deletes_only_the_exact_prefix(lab: Lab) -> None:
    prefix = "vgt" + secrets.token_hex(3)
    leaked = Lab.create(["x"], prefix=prefix)
    lookalike = Lab.create(["x"], prefix=prefix + "0")  # same first letters, other prefix
    try:
        assert sorted(cleanup(prefix)) == sorted([leaked.switch, leaked.ns("x")])
        names = set(list_namespaces())
        assert not {leaked.switch, leaked.ns("x")} & names
        assert {lookalike.ns("x"), lab.ns("n1")} <= names
    finally:
        leaked.close()  # already gone: still fine
        lookalike.close()
    with pytest.raises(ValueError):
        cleanup("")


def test_bad_lab_arguments_are_refused_before_anything_is_built() -> None:
    with pytest.raises(ValueError):
        Lab(["n1", "n1"], "10.77.0.0/24", 1, "vgxx")
    with pytest.raises(ValueError):
        Lab(["sw"], "10.77.0.0/24", 1, "vgxx")
    with pytest.raises(ValueError):
        Lab(["n1"], "10.77.0.0/16", 1, "vgxx")
    with pytest.raises(ValueError):
        Lab(["averyveryverylonghost", "averyveryverylonghost2"], "10.77.0.0/24", 1, "vgxx")
    lab = Lab(["n1", "n2"], "10.77.0.0/24", 2, "vgxx")
    assert lab.address("n2", 1) == "10.77.1.11" and lab.ns("n2") == "vgxx-n2"
    with pytest.raises(KeyError):
        lab.ns("n3")


def test_arpwatch_sees_one_mac_and_catches_two() -> None:
    """The benchmarks' split-brain detector, from the client: one MAC answers ARP for an
    address one node holds; with the address put on both nodes by hand, both answer."""
    import subprocess
    import sys

    from vigil.lab.arpwatch import doubles

    lab = Lab.create(["n1", "n2", "client"])
    try:
        vip = lab.address("n1").rsplit(".", 1)[0] + ".100"
        lab.run("n1", ["ip", "addr", "add", f"{vip}/24", "dev", "eth0"])

        def watch(seconds: float) -> list[str]:
            p = lab.popen("client", [sys.executable, "-m", "vigil.lab.arpwatch", "--ip", vip,
                                     "--duration", str(seconds)], stdout=subprocess.PIPE,
                          text=True)
            out, _ = p.communicate(timeout=seconds + 10)
            return out.splitlines()

        lines = watch(0.5)
        macs = {line.split()[2] for line in lines}
        assert len(lines) >= 20 and macs == {lab.mac("n1")}, (lines[:5], macs)
        assert doubles(lines) == []
        lab.run("n2", ["ip", "addr", "add", f"{vip}/24", "dev", "eth0"])
        found = doubles(watch(0.5))
        assert found and found[0][1] == sorted([lab.mac("n1"), lab.mac("n2")])
    finally:
        lab.close()
