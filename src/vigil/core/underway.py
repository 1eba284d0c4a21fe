"""The work under way on this node's groups: the daemon's probes and actions, from the step
that hands one out to the report that it is done, with what each means for the log. Sans-IO.

Every group's local state moves here, and only through core/groups.py's table: when a probe
finds the group (`probed` at start-up, `probed_new` after a reload, `reprobed` after a
cleanup), when the step hands out a Start, Stop or Recover (`take`) or the daemon begins an
action of its own (`begin`), and when the action ends (`finished`). On the way this keeps
what the log says at the end: a group restarted in place is "recovered", not "acquired"; a
group started because the peer is dead is part of a takeover, "complete" once the last of
them runs. A failed monitor asks for a restart in place, or moves the group off this node
(`resource_failed`, with the failure counts of core/eligibility.py); the restarts wait for
the next decision (`restarts`). A group a probe found only in part (`partly`) is restarted
in place from its first absent resource once the policy lets it, or stopped with the rest
(`recover` is what the policy reads of both). Once the initial acquisition is over, `settled`
says so.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from vigil.core.agenda import Agenda
from vigil.core.eligibility import Eligibility
from vigil.core.groups import FOUND, GroupEvent, LocalGroups, finish
from vigil.core.lookout import Lookout
from vigil.core.notes import Level, Note
from vigil.core.peer import Peer
from vigil.model import Cluster
from vigil.policy import Action, Probe, Recover, Start, Stop
from vigil.wire.messages import GroupState


class Underway:
    def __init__(self, groups: LocalGroups, eligibility: Eligibility, lookout: Lookout,
                 agenda: Agenda) -> None:
        self.groups, self.eligibility, self.lookout, self.agenda = \
            groups, eligibility, lookout, agenda
        # Restarts in place waiting for the next step (group -> first resource to restart).
        self.restarts: dict[str, int] = {}
        # Groups a probe found only in part: restarted in place from their first absent
        # resource once the policy lets them (it may stop them instead), asked until then.
        self.partly: dict[str, int] = {}
        self._recovering: set[str] = set()
        self._taking: set[str] = set()  # groups being started because the peer is dead
        self._settled = False  # "Local status now set to: 'active'" was logged

    # --- what probes find ------------------------------------------------------------------

    def probed(self, states: Mapping[str, GroupState],
               partly: Mapping[str, int] | None = None,
               cluster: Cluster | None = None) -> list[Note]:
        """What the start-up probe found; `partly`: group -> its first resource absent, for
        those found only in part."""
        notes = []
        for name, st in states.items():
            self.groups.move(name, FOUND[st])
            if partly and name in partly and st is GroupState.RUNNING:
                notes.append(self._partly(name, partly[name], cluster, "at start"))
            elif st is not GroupState.STOPPED:
                notes.append(Note(Level.WARNING, f"group {name} found {st.value} at start: "
                                                 f"adopting it, not starting it again"))
        self.agenda.send = True
        return notes

    def probed_new(self, group: str, found: GroupState, missing: int | None = None,
                   cluster: Cluster | None = None) -> list[Note]:
        """What the probe of a group added by a reload found here (`missing`: its first
        resource absent, when it was found only in part)."""
        if self.groups.states.get(group) is not GroupState.UNKNOWN:
            return []
        self.groups.move(group, FOUND[found])
        self.agenda.send = True
        if found is GroupState.STOPPED:
            return [Note(Level.INFO, f"group {group} added by reload: not present here")]
        if missing is not None and found is GroupState.RUNNING:
            return [self._partly(group, missing, cluster, "added by reload")]
        return [Note(Level.WARNING, f"group {group} added by reload: found {found.value} "
                                    f"here; adopting it, not starting it again")]

    def _partly(self, group: str, index: int, cluster: Cluster | None, when: str) -> Note:
        assert cluster is not None, "the names of a group found in part come from it"
        self.partly[group] = index
        first = cluster.group(group).resources[index].name
        return Note(Level.WARNING, f"group {group} {when}: found running only in part "
                                   f"({first} is not here): adopting it, and restarting it "
                                   f"in place from {first} if it stays here")

    def recover(self) -> dict[str, int]:
        """Group -> the first resource to restart in place, for the policy (View.recover)."""
        out = dict(self.partly)
        for g, i in self.restarts.items():
            out[g] = min(i, out.get(g, i))
        return out

    def reprobed(self, group: str, found: GroupState, why: str) -> list[Note]:
        """What a probe found after a cleanup or after the guard stopped the group; the normal
        rules take it from there. Only a settled state is replaced (not an action under way)."""
        assert found in (GroupState.RUNNING, GroupState.STOPPED)
        if self.groups.states[group] not in (GroupState.FAILED, GroupState.RUNNING):
            return []
        self.groups.move(group, FOUND[found])
        self.partly.pop(group, None)
        self.agenda.send = True
        return [Note(Level.WARNING, f"group {group} {why}: probe found it {found.value}")]

    # --- actions ---------------------------------------------------------------------------

    def take(self, actions: Iterable[Action], cluster: Cluster, peer: Peer) -> list[Note]:
        """The step hands `actions` to the daemon. A Probe only tells the lookout that it
        runs (core/lookout.py); the others move their group. The decision has read the
        restarts asked for: a monitor that fails again asks again."""
        self.restarts.clear()
        notes = []
        for act in actions:
            if isinstance(act, Probe):
                self.lookout.started(act.group)
            else:
                notes += self._take(act, cluster, peer)
                self.agenda.send = True
        return notes

    def _take(self, act: Recover | Start | Stop, cluster: Cluster, peer: Peer) -> list[Note]:
        self.partly.pop(act.group, None)  # restarted, or stopped: whole again either way
        if isinstance(act, Recover):
            self.groups.move(act.group, GroupEvent.RESTART)
            self._recovering.add(act.group)
            first = cluster.group(act.group).resources[act.index].name
            return [Note(Level.INFO, f"recovering group {act.group} from {first}")]
        if isinstance(act, Start):
            self.groups.move(act.group, GroupEvent.START)
            notes = [Note(Level.INFO, f"acquiring group {act.group} {act.reason}")]
            if peer.dead():
                if not self._taking:
                    # Heartbeat's words for a takeover, which its operators grep for
                    notes.append(Note(Level.INFO, f"Resources being acquired from "
                                                  f"{peer.name}."))
                self._taking.add(act.group)
            return notes
        self.groups.move(act.group, GroupEvent.STOP)
        return [Note(Level.INFO, f"releasing group {act.group}: {act.reason}")]

    def begin(self, group: str, state: GroupState) -> None:
        """The daemon starts an action of its own on `group` (a reload's restart or stop):
        STARTING or STOPPING until `finished`, as for the policy's own actions."""
        assert state in (GroupState.STARTING, GroupState.STOPPING)
        self.groups.move(group, GroupEvent.RESTART if state is GroupState.STARTING
                         else GroupEvent.STOP)
        self.agenda.send = True

    def finished(self, group: str, result: GroupState, detail: str, ms: float | None,
                 peer: str, latest: float) -> list[Note]:
        """The daemon finished the action on `group`. After a Start: RUNNING (ok), STOPPED
        (failed, and what had started was stopped again) or FAILED (failed, and cleaning up
        failed too). After a Stop: STOPPED or FAILED. A start that failed keeps this node off
        the group, so that the peer may take it (policy hands it over when the peer is
        eligible), until an operator clears the failure (judged as of `latest`, the latest
        time any input carried)."""
        st = self.groups.states[group]
        assert st in (GroupState.STARTING, GroupState.STOPPING), f"{group} is {st}"
        assert result in (GroupState.RUNNING, GroupState.STOPPED, GroupState.FAILED)
        assert not (st is GroupState.STOPPING and result is GroupState.RUNNING)
        self.agenda.send = True
        self.groups.move(group, finish(st, result))
        if st is GroupState.STARTING and result is not GroupState.RUNNING:
            self.eligibility.start_failed(group, detail, latest)
        verb = "start" if st is GroupState.STARTING else "stop"
        took = "" if ms is None else f" in {ms:.0f} ms"
        recovered = group in self._recovering
        self._recovering.discard(group)
        taken = group in self._taking
        self._taking.discard(group)
        if result is GroupState.RUNNING:
            done = [Note(Level.INFO, f"group {group} {'recovered' if recovered else 'acquired'}"
                                     f"{took}")]
            if taken and not self._taking:
                done.append(Note(Level.INFO, f"mach_down takeover complete for node {peer}."))
            return done
        if result is GroupState.STOPPED and st is GroupState.STOPPING:
            return [Note(Level.INFO, f"group {group} released{took}")]
        if result is GroupState.STOPPED:
            return [Note(Level.ERROR, f"group {group} failed to start: {detail}")]
        return [Note(Level.ERROR, f"group {group} failed to {verb}: {detail}; it stays blocked "
                                  f"on this node (its resources may still be held)")]

    def resource_failed(self, cluster: Cluster, group: str, index: int, kind: str,
                        detail: str, now: float, latest: float) -> list[Note]:
        """A monitor of resource `index` of `group` failed: kind "not_running" (it died),
        "soft" (it failed; a restart may help), "hard" (it cannot run on this node) or
        "fatal" (its configuration is wrong). Restart in place, or, after
        migration_threshold failures within failure_timeout (or at once for hard and fatal
        ones), keep this node off the group: policy then hands it to the peer."""
        if self.groups.states[group] is not GroupState.RUNNING:
            return []  # news about a state already left
        notes, off = self.eligibility.monitor_failed(cluster.group(group), index, kind,
                                                     detail, now)
        if off:
            return notes + self.eligibility.update(group, latest)
        self.restarts[group] = min(index, self.restarts.get(group, index))
        self.agenda.send = True
        return notes

    def settled(self, up: bool, waiting: bool, peer: Peer) -> list[Note]:
        """Once: the initial resource acquisition is over (this node `up`, no group
        `waiting`, no action under way, and the peer heard or given up on)."""
        if self._settled or not up or waiting or any(
                s in (GroupState.STARTING, GroupState.STOPPING)
                for s in self.groups.states.values()) or not peer.known():
            return []
        self._settled = True
        return [Note(Level.INFO, "Local status now set to: 'active'")]

    def forget(self, group: str) -> None:
        """A group removed by a reload."""
        self.restarts.pop(group, None)
        self.partly.pop(group, None)
        self._recovering.discard(group)
        self._taking.discard(group)
