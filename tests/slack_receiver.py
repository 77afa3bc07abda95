"""A real HTTP stand-in for a Slack incoming webhook, for tests.

A threaded `http.server` on 127.0.0.1 (random port) that records every request and answers
from a script, like Slack would ("ok" with 200 by default):

    with SlackReceiver() as receiver:             # or the `slack_receiver` pytest fixture
        receiver.respond_with(500, 429, 200, retry_after=2)   # then 200 "ok" again
        receiver.respond_with(Reply(400, "invalid_blocks"))
        receiver.delay = 0.5                      # every answer waits (client timeouts)
        sender = SlackSender(receiver.url, ...)
        ...
        receiver.requests       # [ReceivedRequest(method, path, headers, body, raw, at)]
        receiver.bodies         # the parsed JSON bodies
        receiver.wait_for(2)    # block until 2 requests arrived (for background senders)
        receiver.clear()        # forget requests, pending replies and the delay

Plain helpers (no pytest here), so a REPL or a benchmark can use them too.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

WEBHOOK_PATH: Final = "/services/T0000TEST/B0000TEST/segredo-de-teste"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `retry_after` becomes the Retry-After header (seconds or text);
    `delay` (seconds) is waited before answering, on top of the receiver's `delay`."""

    status: int = 200
    body: str = "ok"
    retry_after: float | str | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


DEFAULT_BODIES: Final = {200: "ok", 400: "invalid_payload", 404: "no_service", 429: "rate_limited"}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up (timeout tests) is expected, not a traceback


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or None when the body is not JSON
    raw: bytes
    at: float  # time.monotonic() on arrival


class SlackReceiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[ReceivedRequest] = []
        self._script: deque[Reply] = deque()
        self._stopping = threading.Event()
        self.delay = 0.0
        self._server = _QuietServer((host, 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # a quick shutdown at the end of each test
            name="slack-receiver",
            daemon=True,
        )
        self.host = host
        self.port: int = self._server.server_address[1]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SlackReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wake answers that are still waiting out a delay
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> SlackReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- what tests use -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{WEBHOOK_PATH}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        return [request.body for request in self.requests]

    def respond_with(self, *replies: int | Reply, retry_after: float | str | None = None) -> None:
        """Queue answers for the next requests (after them: 200 "ok"). A bare status gets
        Slack's usual body; `retry_after` is added to every bare 429 of this call."""
        queued = [
            reply
            if isinstance(reply, Reply)
            else Reply(
                reply,
                DEFAULT_BODIES.get(reply, "server_error" if reply >= 500 else "error"),
                retry_after if reply == 429 else None,
            )
            for reply in replies
        ]
        with self._lock:
            self._script.extend(queued)

    def clear(self) -> None:
        """Forget the recorded requests, the queued answers and the delay."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self.delay = 0.0

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least `count` requests arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"o receptor do Slack recebeu {len(self._requests)} de {count} "
                        f"requisições em {timeout} s"
                    )
                self._arrived.wait(left)
            return list(self._requests)

    # -- the server side ------------------------------------------------------------------------

    def _record(self, request: ReceivedRequest) -> tuple[Reply, float]:
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()
            reply = self._script.popleft() if self._script else Reply()
            return reply, self.delay + reply.delay

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                reply, delay = receiver._record(
                    ReceivedRequest(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=body,
                        raw=raw,
                        at=time.monotonic(),
                    )
                )
                if delay > 0 and receiver._stopping.wait(delay):
                    return
                payload = reply.body.encode()
                # The client may have given up (timeout) meanwhile: that is the point.
                with contextlib.suppress(OSError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(payload)))
                    if reply.retry_after is not None:
                        self.send_header("Retry-After", str(reply.retry_after))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)

            do_POST = _handle  # noqa: N815 - http.server's naming
            do_GET = _handle  # noqa: N815
            do_PUT = _handle  # noqa: N815

            def log_message(self, *_: object) -> None:
                return

        return Handler
