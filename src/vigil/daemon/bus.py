"""Where events go: numbered, kept (the latest few hundred), and handed to every listener.

The daemon publishes the `events.diff` of each input. Listeners are synchronous and must
not block (the notify hooks queue the event, metrics count it, the HTTP API's streams put
it on their queues); one that raises is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from vigil.events import Change

log = logging.getLogger(__name__)

KEEP = 512  # recent events kept for GET /events and the dashboard's timeline
STREAM_QUEUE = 1024  # events a slow stream client may fall behind before it is dropped


@dataclass(frozen=True, slots=True)
class Event:
    seq: int  # 1, 2, ... for this daemon's life
    time: float  # Unix time
    node: str  # the node that saw it
    kind: str
    subject: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Bus:
    def __init__(self, me: str, keep: int = KEEP) -> None:
        self.me = me
        self.seq = 0
        self.recent: deque[Event] = deque(maxlen=keep)
        self.listeners: list[Callable[[Event], None]] = []
        self.streams: set[asyncio.Queue[Event | None]] = set()

    def publish(self, changes: list[Change]) -> list[Event]:
        out = []
        for c in changes:
            self.seq += 1
            ev = Event(self.seq, time.time(), self.me, c.kind, c.subject, c.detail)
            self.recent.append(ev)
            out.append(ev)
            for listen in self.listeners:
                try:
                    listen(ev)
                except Exception:
                    log.exception("event listener failed on %s %s", ev.kind, ev.subject)
            for q in list(self.streams):
                try:
                    q.put_nowait(ev)
                except asyncio.QueueFull:  # a client that does not read: end its stream
                    self.streams.discard(q)
                    q.get_nowait()
                    q.put_nowait(None)
        return out

    def since(self, seq: int) -> list[Event]:
        return [e for e in self.recent if e.seq > seq]

    def subscribe(self) -> asyncio.Queue[Event | None]:
        q: asyncio.Queue[Event | None] = asyncio.Queue(STREAM_QUEUE)
        self.streams.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None:
        self.streams.discard(q)
