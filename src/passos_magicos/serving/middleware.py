"""Request id, body size limit and start time for every request (plain ASGI: the cheap kind)."""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Random per process + a counter: unique across replicas and workers, and far cheaper than uuid4.
_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)


class BodyTooLargeError(Exception):
    pass


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given_id, declared = b"", None
        for name, value in scope.get("headers") or ():  # the last one wins, as in a dict
            if name == b"x-request-id":
                given_id = value
            elif name == b"content-length":
                declared = value
        given = given_id.decode("latin-1")
        request_id = given if _VALID_ID.match(given) else f"{_PREFIX}{next(_COUNTER):08x}"
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = time.perf_counter()
        header_id = (b"x-request-id", request_id.encode())

        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send, request_id, header_id)
            return
        # A declared length within the limit is all the server reads (the HTTP parser stops
        # there): only a body without one (chunked) needs counting as it arrives.
        counted = receive if declared is not None and declared.isdigit() else None

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = [*message.get("headers", []), header_id]
            await send(message)

        try:
            await self.app(scope, counted or limited_receive, send_with_id)
        except BodyTooLargeError:
            if not response_started:
                await self._too_large(send, request_id, header_id)

    async def _too_large(self, send: Send, request_id: str, header_id: tuple[bytes, bytes]) -> None:
        body = orjson.dumps(
            {
                "detail": f"corpo da requisição acima de {self.max_body_bytes} bytes",
                "request_id": request_id,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    header_id,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
