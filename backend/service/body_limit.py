"""A request-body cap that counts bytes as they arrive, chunked bodies included.

Why not ``Content-Length``: a chunked request has none, so a check on the
header alone let a 200 MB body through.  This ASGI middleware refuses a
declared length over the cap at once, and otherwise counts the body while
the app reads it and answers 413 as soon as the count passes the cap: the
process never holds more than the cap plus one chunk.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; FastAPI answers any ``HTTPException`` with its status."""

    def __init__(self, max_bytes: int) -> None:
        # Connection: close makes the server hang up instead of draining the rest of the body.
        super().__init__(413, f"request body over {max_bytes / 2**20:g} MB", headers={"Connection": "close"})


class BodyLimit:
    """Refuse HTTP request bodies over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = BodyTooLarge(self.max_bytes).detail.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b'{"detail":"' + body + b'"}'})
