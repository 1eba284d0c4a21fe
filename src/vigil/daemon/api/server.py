"""The HTTP API, the metrics and the dashboard, served by the daemon from its event loop.

HTTP/1.1 on asyncio streams, one request per connection (`Connection: close`), in layers:

  limits.py    the limits, and who gets a connection slot under them (sans-IO)
  exchange.py  one request and its answer, parsed and framed by h11
  routes.py    what each path answers; the token; the actions' JSON
  server.py    the connections: admission, deadlines, refusals, event streams, shutdown

What an untrusted client can do to it, and what it gets (README, "Operating it"): every
answer, refusals included, is well-formed HTTP with the documented JSON body
{"error": "...", "code": "..."}, and the connection is drained before it is closed so that
the answer is not lost to a reset. Slots are capped in all and per address (limits.py);
a request head must be whole within `head_timeout` (408) with a slot, `overflow_timeout`
without one (then 503 or 429, with Retry-After), a body within `body_timeout` (408);
nothing a client sends can raise out of the parser or the routes; and what a client can
make the daemon log is rate-limited (vigil.ratelimit), each line held back counted in a
later one.

Tasks: asyncio's server starts one task per accepted connection (`_client`); each registers
itself here, and when `serve` (the daemon's "api" task, which also reports the log lines
held back, each second) is cancelled, it stops listening, cancels them and waits for them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl
from dataclasses import dataclass
from importlib import resources
from typing import Any

from vigil.daemon.api.exchange import Exchange, HttpError, Reply, Request
from vigil.daemon.api.limits import Admission, AdmissionStatistics, Limits, Refused
from vigil.config.files import check_token_file
from vigil.daemon.api.routes import Backend, Router, Stream
from vigil.daemon.bus import Event
from vigil.errors import VigilError
from vigil.model import Api
from vigil.log import LimitedLog
from vigil.ratelimit import RateLimiter, Summary

__all__ = ["Backend", "Limits", "Server", "ServerStatistics", "tls_context"]

log = logging.getLogger(__name__)

LOG_BURST = 5  # lines of one kind a client can cause at once,
LOG_PER_SECOND = 0.1  # then one every 10 s; the rest are counted


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    admission: AdmissionStatistics
    requests: int  # request heads read whole
    timeouts: int  # 408: head or body not whole in time (with a slot)
    rejected: int  # other 4xx but 429: malformed, unauthorised, unknown... (what was sent)
    failed: int  # 500: a bug, logged (rate-limited)
    log_held_back: int  # log lines suppressed, not yet reported


def tls_context(api: Api) -> ssl.SSLContext | None:
    if api.cert_file is None or api.key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(api.cert_file, api.key_file)
    except (OSError, ssl.SSLError) as e:
        raise VigilError(f"[api] cert_file {api.cert_file} / key_file {api.key_file}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    return ctx


class Server:
    def __init__(self, api: Api, backend: Backend, limits: Limits = Limits()) -> None:
        self.api = api
        self.backend = backend
        self.limits = limits
        if api.token_file is not None:
            check_token_file(api.token_file)
        self.tls = tls_context(api)
        dashboard = resources.files(__package__).joinpath("dashboard.html").read_bytes()
        self.router = Router(api, backend, dashboard, limits.max_body)
        self.admission = Admission(limits)
        self._log = LimitedLog(log, LOG_PER_SECOND, LOG_BURST)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._requests = self._timeouts = self._rejected = self._failed = 0

    async def start(self) -> asyncio.Server:
        try:
            return await asyncio.start_server(
                self._client, self.api.host, self.api.port, ssl=self.tls,
                # The listen queue is where a burst waits, in the kernel, at no file
                # descriptor's cost (asyncio also accepts this many at a time): a longer one
                # only turns that wait into refusals (measured: of 500 requests at once,
                # 379 answered 200 with 512; 458 to 497 with 128).
                reuse_address=True, backlog=self.limits.max_clients,
                ssl_handshake_timeout=self.limits.head_timeout if self.tls else None)
        except OSError as e:
            raise VigilError(f"[api] listen {self.api.host}:{self.api.port}: "
                             f"{e.strerror or e}") from None

    async def serve(self, server: asyncio.Server) -> None:
        """Run until cancelled; then stop listening, and end every connection (event
        streams too) and wait for its task."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(1.0)
                _report(self.log_limit.due(loop.time()))
        finally:
            server.close()
            await asyncio.sleep(0)  # a connection accepted just now registers its task
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
            _report(self.log_limit.flush())


    @property
    def log_limit(self) -> RateLimiter:
        """The limiter of the lines clients can cause (tests give it another rate)."""
        return self._log.limit

    @log_limit.setter
    def log_limit(self, limiter: RateLimiter) -> None:
        self._log.limit = limiter
    def statistics(self) -> ServerStatistics:
        return ServerStatistics(self.admission.statistics(), self._requests, self._timeouts,
                                self._rejected, self._failed, self.log_limit.pending())

    # --- one connection --------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        conn_id = next(self._ids)
        ex = Exchange(reader, writer, self.limits.max_head)
        try:
            verdict = self.admission.arrive(conn_id, host)
            if isinstance(verdict, Refused):
                self._refused(host, verdict)
                if verdict.answer:
                    await self._finish(ex, _refusal(verdict, self.limits))
                return
            await self._exchange(conn_id, host, ex, verdict.overflow)
        except OSError:  # reset, broken pipe, TLS alert, a timeout while answering
            pass
        except Exception:  # a bug here, not in a route (those answer 500)
            self._say("bug", logging.ERROR, "HTTP API: connection failed client=%s", host,
                      exc_info=True)
        finally:
            self.admission.leave(conn_id)
            self._tasks.discard(task)
            writer.close()

    async def _exchange(self, conn_id: int, host: str, ex: Exchange,
                        overflow: Refused | None) -> None:
        """Read the head, by its deadline (a short one in the overflow), then answer."""
        lim = self.limits
        try:
            try:
                async with asyncio.timeout(lim.head_timeout if overflow is None
                                           else lim.overflow_timeout):
                    req = await ex.request()
            except TimeoutError:
                if overflow is not None:  # no slot, and no whole head in time: refused
                    self._refused(host, overflow)
                    raise _refusal_error(overflow, lim, f", and the request head was not "
                                         f"whole within {lim.overflow_timeout:g} s") from None
                self._timeouts += 1
                raise HttpError(408, "timeout", f"no whole request head within "
                                                f"{lim.head_timeout:g} s") from None
            if req is None:  # connected, sent nothing, closed: nothing to answer
                return
            self.admission.headed(conn_id)
            self._requests += 1
            reply = await self._answer(conn_id, ex, req)
        except HttpError as e:
            if 400 <= e.status < 500 and e.status not in (408, 429):
                self._rejected += 1
            reply = e.reply()
        if reply is not None:
            await self._finish(ex, reply)

    async def _answer(self, conn_id: int, ex: Exchange, req: Request) -> Reply | None:
        """What `req` gets (None: it was an event stream, already answered)."""
        lim = self.limits
        try:
            routed = self.router.route(req)
        except HttpError:
            raise
        except Exception:
            return self._failure(req)
        if isinstance(routed, Reply):
            return routed
        if isinstance(routed, Stream):
            refused = self.admission.stream(conn_id)
            if refused is not None:
                return _refusal(refused, lim)
            await self._stream(ex, routed)
            return None
        try:
            async with asyncio.timeout(lim.body_timeout):
                body = await ex.body()
        except TimeoutError:
            self._timeouts += 1
            raise HttpError(408, "timeout", f"no whole body within "
                                            f"{lim.body_timeout:g} s") from None
        try:
            return await self.router.act(routed, body, req.header("content-type"))
        except HttpError:
            raise
        except Exception:
            return self._failure(req)

    def _failure(self, req: Request) -> Reply:
        """A bug in a route or in the daemon behind it: 500, and the traceback logged."""
        self._failed += 1
        self._say("failed", logging.ERROR, "HTTP API: %s %s failed", req.method[:20],
                  req.path[:80], exc_info=True)
        return HttpError(500, "internal", "internal error; see the daemon's log").reply()

    async def _finish(self, ex: Exchange, reply: Reply) -> None:
        """Answer (unless an answer has begun already), then drain and let go."""
        lim = self.limits
        if not ex.answered:
            async with asyncio.timeout(lim.send_timeout):
                await ex.reply(reply)
        try:
            async with asyncio.timeout(lim.linger_timeout):
                await ex.linger(lim.linger_bytes)
        except TimeoutError:
            pass

    def _refused(self, host: str, r: Refused) -> None:
        self._say("refused", logging.WARNING, "HTTP API: refused a connection client=%s "
                  "status=%d code=%s", host, r.status, r.code)

    async def _stream(self, ex: Exchange, stream: Stream) -> None:
        """Server-sent events: what the client missed (Last-Event-ID), then each event live,
        with a comment every `stream_keepalive` seconds when there is none."""
        lim = self.limits
        bus = self.backend.bus
        q = bus.subscribe()
        try:
            missed = [] if stream.last_event_id is None else bus.since(stream.last_event_id)
            async with asyncio.timeout(lim.send_timeout):
                await ex.stream("text/event-stream",
                                b"retry: 1000\n\n" + b"".join(map(_sse, missed)))
            while True:
                try:
                    async with asyncio.timeout(lim.stream_keepalive):
                        got = [await q.get()]
                except TimeoutError:
                    data = b": keepalive\n\n"
                else:
                    while not q.empty():
                        got.append(q.get_nowait())
                    if None in got:  # it fell too far behind: the client resumes from
                        break  # Last-Event-ID on a new connection
                    data = b"".join(_sse(ev) for ev in got if ev is not None)
                async with asyncio.timeout(lim.send_timeout):
                    await ex.send(data)
            async with asyncio.timeout(lim.send_timeout):
                await ex.end()
        finally:
            bus.unsubscribe(q)

    def _say(self, kind: str, level: int, msg: str, *args: object,
             exc_info: bool = False) -> None:
        """Log a line a client can cause, unless too many of its kind went out lately."""
        self._log.log(kind, level, msg, *args, exc_info=exc_info)


def _report(held_back: list[Summary]) -> None:
    for s in held_back:
        log.warning("HTTP API: held back suppressed=%d lines kind=%s", s.suppressed, s.key)


def _refusal_error(r: Refused, lim: Limits, more: str = "") -> HttpError:
    return HttpError(r.status, r.code, r.message + more,
                     (("Retry-After", str(lim.retry_after)),))


def _refusal(r: Refused, lim: Limits) -> Reply:
    return _refusal_error(r, lim).reply()


def _sse(ev: Event) -> bytes:
    return f"id: {ev.seq}\nevent: {ev.kind}\ndata: {json.dumps(ev.as_dict())}\n\n".encode()
