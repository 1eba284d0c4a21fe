"""Failover: what this node does when its peer dies, comes back or fails to stop a group,
and the gates that keep it from taking the peer's groups, or from starting one it took.
Sans-IO.

When membership declares the peer dead, the policy (policy/decide.py) assigns its groups to
this node and starts them, unless a gate is shut. The gates, for each group:

  fencing  the peer died without a goodbye, or reported a stop that failed: its groups wait
           until it is fenced (core/fencing.py), by the agent or by an operator;
  witness  with a witness, a group waits for the witness's lease (core/witness.py), unless
           the peer said goodbye with the group stopped (Peer.left_without);
  lookout  after a death without a goodbye, a group with floating addresses waits until they
           are heard free (core/lookout.py), unless fencing confirmed the peer off;
  settle   with a witness but no fencing, a takeover is decided and published at once but
           started one settle time after the death (`_settling`).

The first three keep the group off this node (the View's takeover_blocked), the last only
its start (start_blocked). Membership's news of the peer (`on_events`) shuts the gates at its
death and opens them at its return; its newer reports (`heard`) may ask for fencing (a stop
that failed there), a failback or a new announcement. The answers of the fence agent, of the
address probes and of the witness come in here too.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from vigil.core.agenda import Agenda
from vigil.core.eligibility import Eligibility
from vigil.core.fencing import FenceEvent, FenceState, PeerFencing
from vigil.core.frames import Frames
from vigil.core.lookout import Lookout, Result
from vigil.core.membership import Event, NodeDead, NodeUp
from vigil.core.notes import Level, Note
from vigil.core.peer import News, Peer
from vigil.core.witness import WitnessClient
from vigil.model import Cluster, IpResource
from vigil.wire.messages import GroupState


class Failover:
    def __init__(self, me: str, peer: Peer, fencing: PeerFencing, witness: WitnessClient | None,
                 lookout: Lookout, eligibility: Eligibility, agenda: Agenda,
                 settle: float) -> None:
        """`settle`: how long after the peer's death a takeover resting on the witness
        starts (see `_settling`)."""
        self.me, self.peer, self.fencing, self.witness = me, peer, fencing, witness
        self.lookout, self.eligibility, self.agenda = lookout, eligibility, agenda
        self.settle = settle

    # --- the peer's death and return -------------------------------------------------------

    def on_events(self, events: Iterable[Event], cluster: Cluster, known: Iterable[str],
                  now: float, latest: float) -> list[Note]:
        """What membership found as of `now`: the peer's links, its death, its return (then
        every group this node `known`s may go home). `latest`: the latest time any input
        carried, as of which eligibility is judged again."""
        notes: list[Note] = []
        for e in events:
            if isinstance(e, NodeDead):
                notes.append(Note(Level.WARNING, f"node {e.node}: is dead ({e.reason})"))
                fence = self._died(e.reason, cluster, now)
                notes += self.eligibility.update_all(latest) + fence  # its ping: no news
            elif isinstance(e, NodeUp):
                self._back()
                notes += self.eligibility.update_all(latest)
                how = "restarted" if e.restarted else "up"
                notes.append(Note(Level.INFO, f"node {e.node}: is {how} (generation "
                                              f"{e.generation})"))
                self.agenda.failback.update(known)
            else:
                notes += self.peer.link_news(e)
        return notes

    def _died(self, reason: str, cluster: Cluster, now: float) -> list[Note]:
        """Membership declared the peer dead for `reason` ("deadtime", "initdead" or
        "shutdown": a goodbye). Returns what fencing says of it."""
        if reason == "shutdown":
            self.lookout.clear()  # it stopped its groups itself
        elif cluster.address_probe > 0:
            report = self.peer.report
            addressed = _addressed(cluster)
            self.lookout.arm(addressed, twice=[
                g for g in addressed if report is None or (r := report.group(g)) is None or
                r.state not in (GroupState.RUNNING, GroupState.STOPPING, GroupState.FAILED)])
        self.peer.died(reason, now)
        self.agenda.send = True
        return self.fencing.died(self.peer.name) if reason != "shutdown" else []

    def _back(self) -> None:
        """The peer is up again: nothing to fence, to look at or to settle."""
        self.lookout.clear()
        self.fencing.move(FenceEvent.CAME_BACK, "")
        self.peer.came_back()
        if self.witness is not None:
            self.witness.peer_up()
        self.agenda.send = True

    def heard(self, news: News, cluster: Cluster, latest: float) -> list[Note]:
        """A newer report of the peer (Peer.adopt): the groups it can run again may come
        home, those whose conflict ended are announced again, a stop that failed there is
        fenced; and its ping count, or whether it counts us dead, may change what this node
        may run (judged as of `latest`, the latest time any input carried)."""
        self.agenda.failback.update(news.eligible_again)
        self.agenda.reannounce.update(news.resolved)
        notes = [n for g in news.failed for n in self._failed_stop(g)]
        if cluster.ping or cluster.witness:
            notes += self.eligibility.update_all(latest)
        return notes

    def _failed_stop(self, group: str) -> list[Note]:
        """The peer could not stop `group`: it may still hold its resources. With fencing,
        shoot it, then take the group; without, the group stays blocked (never started
        here while the peer lives), and that must be loud."""
        peer = self.peer.name
        if self.fencing.config is None:
            return [Note(Level.ERROR, f"{peer} failed to stop group {group}: it stays "
                                      f"blocked (no fencing configured); fix it on {peer} "
                                      f"and run `vigil resource cleanup {group}` there")]
        if not self.fencing.move(FenceEvent.FAILED_STOP, f"{peer} failed to stop {group}"):
            return []
        self.agenda.send = True
        return [Note(Level.ERROR, f"{peer} failed to stop group {group}: fencing it, then "
                                  f"taking the group over")]

    def fence_result(self, ok: bool, detail: str, now: float) -> list[Note]:
        """What the fence agent found (after PeerFencing.run)."""
        if self.fencing.state is not FenceState.RUNNING:
            return []  # the peer came back meanwhile
        self.agenda.send = True
        if ok:
            self.lookout.clear()  # its host is off: nothing there answers any more
        return self.fencing.result(ok, detail, self.peer.name, now)

    def witness_reply(self, frames: Frames, data: bytes, cluster: Cluster, known: set[str],
                      now: float, latest: float) -> list[Note]:
        """The witness answered an ask (`known`: the groups that exist). A reply to no open
        ask changes nothing; a reply changes leases, and so eligibility as of `latest`."""
        w = cluster.witness
        assert w is not None and self.witness is not None
        r = self.witness.verify(frames, data, w)
        if isinstance(r, list):
            return r
        notes = self.witness.reply(r, known, self.me, self.peer.name, self.peer.dead(),
                                   f"{w.address}:{w.port}", now)
        return notes + self.eligibility.update_all(latest)

    def fence_confirm(self, node: str) -> str | None:
        """An operator says `node` is off. Returns an error, or None when accepted."""
        error = self.fencing.confirm(node, self.peer.name)
        self.agenda.send |= error is None
        return error

    def probed_addresses(self, group: str, answers: Sequence[Result],
                         now: float) -> list[Note]:
        """What a Probe of `group` heard: the addresses another host answers for, and those
        it could not probe (empty: all free)."""
        change = self.lookout.found(group, tuple(answers), now)
        self.agenda.send = True
        if change in ("answered", "unprobed"):
            why = self.lookout_blocks(group) or ""
            return [Note(Level.ERROR, f"{why}; checking again every "
                                      f"{self.lookout.retry * 1000:.0f} ms")]
        if change == "free now":
            return [Note(Level.WARNING, f"group {group}: its addresses answer no more: "
                                        f"taking it over")]
        return []

    # --- the gates -------------------------------------------------------------------------

    def blocked(self, cluster: Cluster, now: float, latest: float) -> dict[str, str]:
        """Group -> why it may not be taken from the dead peer yet (the witness's lease as
        of `now`; a goodbye's window as of `latest`, the latest time any input carried)."""
        out = {}
        fence = self.fencing.blocks(self.peer.name)
        for g in cluster.groups:
            why = fence or self._witness_blocks(g.name, now, latest) or \
                self.lookout_blocks(g.name)
            if why:
                out[g.name] = why
        return out

    def start_blocked(self, cluster: Cluster, now: float) -> dict[str, str]:
        """Group -> why a takeover, once decided, may not start yet."""
        why = self._settling(now)
        return {g.name: why for g in cluster.groups} if why else {}

    def looks_due(self, groups: Iterable[str], now: float) -> dict[str, str]:
        """Group -> why the lookout holds it, for those whose next look is due now (the
        policy turns them into Probes)."""
        return {g: why for g in groups if self.lookout.due(g, now)
                and (why := self.lookout_blocks(g)) is not None}

    def wanted(self, cluster: Cluster, active: Iterable[str], up: bool) -> tuple[str, ...]:
        """The groups to hold a lease on: those `active` here, and, while the peer is dead
        and this node `up`, those this node would take over."""
        active = set(active)
        dead = self.peer.dead() and up
        return tuple(g.name for g in cluster.groups if g.name in active or (
            dead and self.eligibility.may_run(g.name)))

    def _witness_blocks(self, group: str, now: float, latest: float) -> str | None:
        if self.witness is None or self.peer.left_without(group, latest):
            return None  # (it said goodbye with the group stopped: nothing runs there)
        return self.witness.blocks(group, self.me, self.peer.name, now)

    def lookout_blocks(self, group: str) -> str | None:
        """The last gate of a takeover from a peer that went silent: its addresses heard
        free. Not once fencing confirmed it off: its host answers nothing."""
        if self.fencing.done:
            return None
        why = self.lookout.blocks(group)
        if why is None or why.startswith("checking"):
            return why
        if "still answered" not in why:
            return f"{why}: not taking {group} over before its addresses are heard free"
        return (f"{why}: {self.peer.name}'s host is alive and holds them (its daemon is dead "
                f"or cut off); not taking {group} over while they answer")

    def _settling(self, now: float) -> str | None:
        """A peer declared dead without being fenced may still run the group for a moment:
        it notices the loss of its peer and of the witness only about one deadtime after we
        did, and a peer that still hears us learns our new assignment only once we publish
        it. So a takeover that rests on the witness (not on fencing) is published at once
        and started one settle time after the death: one deadtime, and the age a frame of
        ours may have had when it reached the peer (session.py; the peer counts us alive
        until one deadtime after our last frame that said we hear it was *made*, and such a
        frame may be delivered late, held back or replayed, up to that age)."""
        dead_at = self.peer.dead_at
        if self.witness is None or dead_at is None or self.fencing.done:
            return None
        if now < dead_at + self.settle:
            return f"{self.peer.name} was declared dead just now: giving it one deadtime to stop"
        return None

    def deadlines(self, now: float) -> list[float]:
        """With a witness: when a lease runs out, the settle time ends or a goodbye's window
        closes, all of which change decisions."""
        if self.witness is None:
            return []
        times = self.witness.deadlines(now)
        dead_at = self.peer.dead_at
        if dead_at is not None and dead_at + self.settle > now:
            times.append(dead_at + self.settle)
        return times + self.peer.deadlines(now)


def _addressed(cluster: Cluster) -> list[str]:
    """The groups with floating addresses: those a takeover must look before taking."""
    return [g.name for g in cluster.groups
            if any(isinstance(r, IpResource) for r in g.resources)]
