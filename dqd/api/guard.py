"""The API's two global rules as one plain ASGI middleware: read-only, and the optional bearer token.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's
BaseHTTPMiddleware adds a task group and body streaming per request, which
costs more than a 50-row catalog page under 20 concurrent clients.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROTECTED_PREFIXES = ("/api/", "/metrics", "/report")
READ_METHODS = frozenset({"GET", "HEAD"})


class ReadOnlyGuard:
    """Anything but GET/HEAD → 405 (nothing writes); a configured token guards the data, not the probes."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = self._refusal(scope)
            if response is not None:
                await response(scope, receive, send)
                return
            if scope["method"] == "HEAD":
                # Routes are GET-only: answer HEAD as the GET would, headers without the body.
                await self.app(dict(scope, method="GET"), receive, _without_body(send))
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        method = scope["method"]
        if method not in READ_METHODS:
            return JSONResponse(
                {"detail": f"{method} not allowed: this API is read-only"},
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
        if self.token is None or not str(scope["path"]).startswith(PROTECTED_PREFIXES):
            return None
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, credentials = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token):
            return None
        return JSONResponse(
            {"detail": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="dqd"'},
        )


def _without_body(send: Send) -> Send:
    async def send_headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {
                "type": "http.response.body",
                "body": b"",
                "more_body": message.get("more_body", False),
            }
        await send(message)

    return send_headers_only
