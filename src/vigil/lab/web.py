"""A tiny HTTP server that says who it is: the service the lab's cluster nodes fail over.

    python -m vigil.lab.web --name n1 [--port 80] [--bind 0.0.0.0]

Every GET (and HEAD) is answered 200 with the body ``<name>\\n`` and ``Connection: close``
(HTTP/1.1 keep-alive with --keepalive); nothing is logged per request. GET /stream is a
long-lived transfer: a line ``<name> <n>\\n`` every 50 ms until the client goes (the
balancer's tests keep connections open through a director's failover with it). A thread per
connection. Binding never looks the address up in DNS (http.server's would: a test network
sends nothing to a name server). Exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STREAM_INTERVAL = 0.05


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "vigil-lab-web"
    sys_version = ""
    body = b"\n"

    def do_GET(self) -> None:
        if self.path == "/stream":
            self._stream()
        else:
            self._answer(with_body=True)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        name = self.body.strip()
        n = 0
        try:
            while True:
                self.wfile.write(b"%s %d\n" % (name, n))
                self.wfile.flush()
                n += 1
                time.sleep(STREAM_INTERVAL)
        except OSError:  # the client went
            pass

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        if self.protocol_version == "HTTP/1.0":
            self.send_header("Connection", "close")
        self.end_headers()
        if with_body:
            self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-answer (the lab's probes time out and close) is not
        worth a traceback on stderr; anything else still is."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def server_bind(self) -> None:
        """TCPServer's bind, without HTTPServer's socket.getfqdn (a reverse DNS lookup)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), \
            int(self.server_address[1])


def serve(name: str, port: int = 80, bind: str = "0.0.0.0", keepalive: bool = False) -> None:
    """Serve until SIGTERM or SIGINT. Must be called from the main thread."""
    handler = type("Handler", (_Handler,), {
        "body": f"{name}\n".encode(),
        "protocol_version": "HTTP/1.1" if keepalive else "HTTP/1.0"})
    stop = {signal.SIGTERM, signal.SIGINT}
    # Blocked before any thread starts, so only sigwait below ever sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    server = _Server((bind, port), handler)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                            name="serve")
    loop.start()
    try:
        signal.sigwait(stop)
    finally:
        server.shutdown()
        loop.join()
        server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vigil.lab.web", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="what to answer")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--keepalive", action="store_true",
                        help="HTTP/1.1, connections kept open between requests")
    args = parser.parse_args(argv)
    serve(args.name, args.port, args.bind, args.keepalive)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
