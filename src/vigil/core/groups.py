"""The life cycle of the groups on this node: one transition table, as h11's `_state.py`.

A group's local state moves only through `LocalGroups.move`, and only along `TABLE`; any
other move is a bug (AssertionError), never a silent change:

    UNKNOWN  --found_stopped/found_running/found_failed-->  (what a probe found)
    STOPPED  --start-->    STARTING   (the policy's Start)
    STARTING --done-->     RUNNING
             --undone-->   STOPPED    (a start failed; what had started was stopped again)
             --broken-->   FAILED     (it failed, and so did cleaning up: resources may be held)
    RUNNING  --restart-->  STARTING   (Recover after a monitor failed; a reload's restart)
             --stop-->     STOPPING
             --found_*-->  (a probe after the guard stopped it)
    STOPPING --done-->     STOPPED
             --broken-->   FAILED     (blocked: never started elsewhere while this node lives)
    FAILED   --found_stopped/found_running-->  (a probe after `vigil resource cleanup`)

Sans-IO; the moves are made, and said for the log, by core/underway.py.
"""

from __future__ import annotations

import enum
from typing import Iterable, Mapping

from vigil.wire.messages import ACTIVE_STATES, GroupState


class GroupEvent(enum.Enum):
    FOUND_STOPPED = "found_stopped"
    FOUND_RUNNING = "found_running"
    FOUND_FAILED = "found_failed"
    START = "start"
    RESTART = "restart"
    STOP = "stop"
    DONE = "done"
    UNDONE = "undone"
    BROKEN = "broken"


S, E = GroupState, GroupEvent
TABLE: Mapping[GroupState, Mapping[GroupEvent, GroupState]] = {
    S.UNKNOWN: {E.FOUND_STOPPED: S.STOPPED, E.FOUND_RUNNING: S.RUNNING,
                E.FOUND_FAILED: S.FAILED},
    S.STOPPED: {E.START: S.STARTING},
    S.STARTING: {E.DONE: S.RUNNING, E.UNDONE: S.STOPPED, E.BROKEN: S.FAILED},
    S.RUNNING: {E.RESTART: S.STARTING, E.STOP: S.STOPPING, E.FOUND_STOPPED: S.STOPPED,
                E.FOUND_RUNNING: S.RUNNING},
    S.STOPPING: {E.DONE: S.STOPPED, E.BROKEN: S.FAILED},
    S.FAILED: {E.FOUND_STOPPED: S.STOPPED, E.FOUND_RUNNING: S.RUNNING},
}
FOUND = {S.STOPPED: E.FOUND_STOPPED, S.RUNNING: E.FOUND_RUNNING, S.FAILED: E.FOUND_FAILED}


def finish(before: GroupState, result: GroupState) -> GroupEvent:
    """The event of an action that ended in `result`: after a start RUNNING, STOPPED or
    FAILED; after a stop STOPPED or FAILED."""
    if result is S.FAILED:
        return E.BROKEN
    if before is S.STARTING and result is S.STOPPED:
        return E.UNDONE
    assert (before, result) in ((S.STARTING, S.RUNNING), (S.STOPPING, S.STOPPED)), \
        f"{before.value} cannot end {result.value}"
    return E.DONE


class LocalGroups:
    def __init__(self, names: Iterable[str]) -> None:
        self._states = {n: S.UNKNOWN for n in names}

    @property
    def states(self) -> Mapping[str, GroupState]:
        return self._states

    def move(self, group: str, event: GroupEvent) -> GroupState:
        st = self._states[group]
        new = TABLE[st].get(event)
        assert new is not None, f"group {group}: no move from {st.value} on {event.value}"
        self._states[group] = new
        return new

    def add(self, group: str) -> None:
        self._states[group] = S.UNKNOWN

    def forget(self, group: str) -> None:
        self._states.pop(group, None)

    def active(self) -> list[str]:
        """Groups that may hold resources here: what the guard must stop if we die."""
        return [g for g, s in self._states.items() if s in ACTIVE_STATES or s is S.FAILED]

    def quiescent(self) -> bool:
        """No group is active here (all stopped or failed): a leaving node may go."""
        return all(s in (S.STOPPED, S.FAILED, S.UNKNOWN) for s in self._states.values())
