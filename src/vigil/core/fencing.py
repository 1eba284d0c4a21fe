"""Fencing of the peer, as a machine: which state it is in, and what each event does to it.

After the peer dies without a goodbye (or reports a stop that failed), its groups are taken
over only once it is fenced: by the fence agent (resources/fence.py, run by the daemon) or by
an operator's `vigil fence confirm`. The states, and the only moves between them (`_MOVES`):

    (none) --died / failed_stop--> needed (manual for the "manual" agent)
    needed --run--> running --succeeded--> done
                    running --failed-----> failed --retry (retry_interval later)--> needed
    needed, manual, running, failed --confirmed--> done
    any --came_back--> (none)        (the peer is up again)

Any other (state, event) pair changes nothing. `PeerFencing` also says what each step means
for the log, and how long the agent waits before it shoots (`run`). Sans-IO: `now` is an
argument.
"""

from __future__ import annotations

import enum

from vigil.core.notes import Level, Note
from vigil.model import Fencing


class FenceState(str, enum.Enum):
    NEEDED = "needed"  # the agent must run
    MANUAL = "manual"  # waiting for an operator (`vigil fence confirm`)
    RUNNING = "running"  # the daemon runs the agent
    FAILED = "failed"  # it failed; tried again at `retry_at`
    DONE = "done"  # the peer is off: its groups may be taken


class FenceEvent(enum.Enum):
    DIED = "died"  # declared dead without a goodbye
    FAILED_STOP = "failed_stop"  # it reported a stop that failed: it may hold resources
    RUN = "run"  # the daemon starts the agent
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"  # retry_interval after a failure
    CONFIRMED = "confirmed"  # an operator says it is off
    CAME_BACK = "came_back"  # the peer is up again


_ASK = "ask"  # NEEDED, or MANUAL for the manual agent
_Target = FenceState | None | str
_MOVES: dict[tuple[FenceState | None, FenceEvent], _Target] = {
    **{(s, FenceEvent.DIED): _ASK for s in (None, FenceState.NEEDED, FenceState.MANUAL,
                                            FenceState.RUNNING, FenceState.FAILED)},
    (None, FenceEvent.FAILED_STOP): _ASK,
    (FenceState.FAILED, FenceEvent.FAILED_STOP): _ASK,
    (FenceState.NEEDED, FenceEvent.RUN): FenceState.RUNNING,
    (FenceState.RUNNING, FenceEvent.SUCCEEDED): FenceState.DONE,
    (FenceState.RUNNING, FenceEvent.FAILED): FenceState.FAILED,
    (FenceState.FAILED, FenceEvent.RETRY): FenceState.NEEDED,
    **{(s, FenceEvent.CONFIRMED): FenceState.DONE for s in (
        FenceState.NEEDED, FenceState.MANUAL, FenceState.RUNNING, FenceState.FAILED)},
    **{(s, FenceEvent.CAME_BACK): None for s in FenceState},
}


class PeerFencing:
    """Where fencing of the peer stands (`state`, None while nothing is needed) and why
    (`detail`)."""

    def __init__(self, config: Fencing | None) -> None:
        self.config = config
        self.state: FenceState | None = None
        self.detail = ""
        self.retry_at = 0.0

    def move(self, event: FenceEvent, detail: str | None = None) -> bool:
        """Apply `event`; False (and nothing changed) where the table has no such move."""
        if self.config is None:
            return False
        target = _MOVES.get((self.state, event), False)
        if target is False:
            return False
        if target == _ASK:
            target = FenceState.MANUAL if self.config.agent == "manual" else FenceState.NEEDED
        assert target is None or isinstance(target, FenceState)
        self.state = target
        if detail is not None:
            self.detail = detail
        return True

    @property
    def done(self) -> bool:
        return self.state is FenceState.DONE

    def tick(self, now: float) -> None:
        if self.state is FenceState.FAILED and now >= self.retry_at:
            self.move(FenceEvent.RETRY)

    def failed(self, detail: str, now: float) -> None:
        assert self.config is not None
        if self.move(FenceEvent.FAILED, detail):
            self.retry_at = now + self.config.retry_interval

    def died(self, peer: str) -> list[Note]:
        """`peer` was declared dead without a goodbye: fencing is needed."""
        if not self.move(FenceEvent.DIED, ""):
            return []
        assert self.config is not None
        f = self.config
        return [Note(Level.WARNING, (
            f"{peer} must be fenced before its groups are taken over" +
            (f": waiting for `vigil fence confirm {peer}`" if f.agent == "manual"
             else f" ({f.agent} {f.action})")))]

    def run(self, peer_serves: bool, i_serve: bool) -> float | None:
        """The daemon asks whether to run the fence agent now: marks it running and returns
        how long to wait first, or None. The fence race (model.Fencing.delay): in a
        partition both nodes want to fence each other; the one that runs no group waits
        before shooting a peer that ran groups, so the peer that serves wins."""
        if not self.move(FenceEvent.RUN):
            return None
        assert self.config is not None
        return self.config.delay if peer_serves and not i_serve else 0.0

    def result(self, ok: bool, detail: str, peer: str, now: float) -> list[Note]:
        """What the agent that `run` started found (call it while RUNNING)."""
        assert self.config is not None and self.state is FenceState.RUNNING
        if ok:
            self.move(FenceEvent.SUCCEEDED, detail)
            return [Note(Level.WARNING, f"{peer} fenced: {detail}".rstrip(": "))]
        f = self.config
        self.failed(detail, now)
        then = ("taking over anyway (on_failure = takeover)" if f.on_failure == "takeover"
                else f"its groups stay down; retrying in {f.retry_interval:g} s")
        return [Note(Level.ERROR, f"FENCING {peer} FAILED: {detail}; {then}")]

    def confirm(self, node: str, peer: str) -> str | None:
        """An operator says `node` is off. Returns an error, or None when accepted."""
        if node != peer:
            return f"{node} is not the peer of this node ({peer})"
        if not self.move(FenceEvent.CONFIRMED, "confirmed by an operator"):
            return f"{node} does not need fencing now"
        return None

    def blocks(self, peer: str) -> str | None:
        """Why the peer's groups may not be taken yet (None: they may)."""
        if self.config is None or self.state is None or self.done:
            return None
        if self.state is FenceState.FAILED and self.config.on_failure == "takeover":
            return None
        return f"{peer} is dead but not fenced yet"

    def next_deadline(self) -> float | None:
        return self.retry_at if self.state is FenceState.FAILED else None
