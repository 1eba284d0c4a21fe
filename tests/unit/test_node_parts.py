"""The smaller parts of the node core, each alone: the poison pill (core/pill.py), the stall
check (core/stall.py), the witness client's frames (core/witness.py) and what fencing says
(core/fencing.py)."""

from __future__ import annotations

import ipaddress

from vigil.core.agenda import Agenda
from vigil.core.fencing import FenceEvent, FenceState, PeerFencing
from vigil.core.frames import Frames
from vigil.core.membership import Membership
from vigil.core.notes import Level
from vigil.core.pill import PoisonPill
from vigil.core.stall import Stall
from vigil.core.witness import WitnessClient
from vigil.model import Fencing, Timings, Witness
from vigil.wire import frame as wire
from vigil.wire.votes import Reply, serialize_reply

T = Timings(0.2, 0.5, 1.0, 3.0)
KEY = b"k" * 32
LINKS = ("eth0",)


def frames(me: str, peer: str, generation: int) -> Frames:
    return Frames("sim", me, peer, KEY, generation, LINKS, T, 0.0)


# --- the poison pill -----------------------------------------------------------------------


def test_a_pill_for_this_life_poisons_and_any_other_is_ignored() -> None:
    n1 = PoisonPill(frames("n1", "n2", 10), "n1", "n2")
    n2 = PoisonPill(frames("n2", "n1", 20), "n2", "n1")
    notes = n2.mail(n1.frame(19, 5000))
    assert n2.poisoned is None and notes[0].level is Level.INFO and notes[0].key == "old pill"
    assert n2.mail(n1.frame(20, 5000))[0].text.startswith("POISONED by n1")
    assert n2.poisoned == "n1"
    later = PoisonPill(frames("n2", "n1", 20), "n2", "n1")
    later.frames.new_life(30)  # after the guard's goodbye, the old life's pill still counts
    assert later.mail(n1.frame(20, 5000)) and later.poisoned == "n1"


def test_a_bad_mailbox_is_counted_and_poisons_nothing() -> None:
    n2 = PoisonPill(frames("n2", "n1", 20), "n2", "n1")
    own = PoisonPill(frames("n2", "n1", 20), "n2", "n1").frame(20, 1)  # not from the peer
    for data in (b"garbage", own):
        assert n2.mail(data) and n2.poisoned is None
    assert n2.frames.rejected["truncated"] == n2.frames.rejected["unknown_sender"] == 1


# --- the stall check -----------------------------------------------------------------------


def test_a_stall_holds_starts_for_a_deadtime_and_then_lets_the_groups_home() -> None:
    agenda = Agenda(T.keepalive)
    m = Membership(["n2"], LINKS, T, 0.0)
    stall = Stall(T, m, agenda)
    assert stall.notice(5.0) == [], "nothing sent yet: nothing to measure"
    stall.sent(5.0)
    assert stall.notice(5.0 + 2 * T.keepalive) == []
    agenda.take_send(0.0)
    notes = stall.notice(5.0 + 2 * T.keepalive + T.deadtime)
    assert notes[0].level is Level.WARNING and "did not run for" in notes[0].text
    assert agenda.take_send(0.0) and stall.holding(6.5) and not stall.holding(7.5)
    stall.tick(7.0, ["g1"])
    assert not agenda.failback, "still held"
    stall.tick(7.5, ["g1"])
    assert agenda.take_failback() == {"g1"} and not stall.holding()
    stall.tick(8.0, ["g1"])
    assert not agenda.failback, "said once"


# --- the witness client's frames -----------------------------------------------------------

W = Witness(ipaddress.ip_address("10.0.0.9"))


def reply(seq: int, generation: int = 1) -> bytes:
    r = Reply(generation, seq, ("g1",), (("g1", "n1"),), lease_ms=2000)
    return wire.encode(wire.Frame(wire.FrameKind.WITNESS_REPLY, "sim", W.name, 7, seq, 0,
                                  serialize_reply(r)), KEY)


def test_a_reply_counts_only_for_an_open_ask_of_this_life() -> None:
    f = frames("n1", "n2", 1)
    w = WitnessClient(2.0)
    ask = wire.decode(w.ask_frame(f, ("g1",), 10.0), KEY)
    assert isinstance(ask, wire.Frame) and ask.kind is wire.FrameKind.WITNESS_ASK
    assert isinstance(w.verify(f, reply(ask.seq + 1), W), list), "no such ask"
    assert isinstance(w.verify(f, reply(ask.seq, generation=2), W), list), "another life"
    assert isinstance(w.verify(f, b"x", W), list)
    r = w.verify(f, reply(ask.seq), W)
    assert isinstance(r, Reply) and r.granted == ("g1",)
    assert f.rejected["replay"] == 2 and f.rejected["truncated"] == 1


# --- what fencing says ---------------------------------------------------------------------

AGENT = Fencing(agent="external", command=("/bin/true",), delay=2.0)


def test_fencing_says_what_it_waits_for_and_what_the_agent_found() -> None:
    f = PeerFencing(AGENT)
    assert f.run(True, False) is None, "nothing to fence"
    assert "(external reboot)" in f.died("n2")[0].text
    assert f.run(True, False) == 2.0, "serving nothing, it gives the serving peer a head start"
    assert f.state is FenceState.RUNNING
    notes = f.result(False, "rc=1", "n2", 10.0)
    assert notes[0].text == ("FENCING n2 FAILED: rc=1; its groups stay down; retrying in 5 s")
    f.tick(15.0)
    assert f.run(True, True) == 0.0, "it serves too: no waiting"
    assert f.result(True, "", "n2", 16.0)[0].text == "n2 fenced" and f.done
    manual = PeerFencing(Fencing(agent="manual"))
    assert "waiting for `vigil fence confirm n2`" in manual.died("n2")[0].text
    assert manual.confirm("n3", "n2") == "n3 is not the peer of this node (n2)"
    assert manual.confirm("n2", "n2") is None and manual.done
    assert manual.confirm("n2", "n2") == "n2 does not need fencing now"
    manual.move(FenceEvent.CAME_BACK)
    assert manual.state is None and manual.died("n2") and manual.state is FenceState.MANUAL
