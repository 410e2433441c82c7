"""The API's global rules as one plain ASGI middleware: read-only, bounded requests, the optional token.

* Only GET and HEAD reach the routes (405 otherwise): nothing can write.
* A request is small: a query string over ``MAX_QUERY_BYTES`` is 414, a body
  (the routes take none) is 413; only the login form posts, a few bytes.
* With ``api.token`` set, ``/api``, ``/metrics`` and ``/report`` need
  ``Authorization: Bearer <token>``; the probes never do. A browser cannot
  send that header, so ``/login`` takes the token in a form (POST, never a
  query string, which would end in access logs and history) and sets an
  HttpOnly, SameSite=Strict cookie holding an HMAC of it (not the token
  itself), which opens the report pages (only them: programs use the header).
  A browser asking for a report page without it is sent to ``/login``.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's
BaseHTTPMiddleware adds a task group and body streaming per request, which
costs more than a 50-row catalog page under 20 concurrent clients.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROTECTED_PREFIXES = ("/api/", "/metrics", "/report")
READ_METHODS = frozenset({"GET", "HEAD"})
LOGIN_PATH = "/login"
SESSION_COOKIE = "dqd_session"
MAX_QUERY_BYTES = 4096  # the longest URL the API makes: a cursor and a few filters
MAX_LOGIN_BYTES = 1024
_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>dqd report</title></head>
<body><form method="post" action="/login"><p>{message}</p>
<label>API token <input type="password" name="token" autofocus required></label>
<button type="submit">Open the report</button></form></body></html>"""


class ReadOnlyGuard:
    """Read-only, bounded, and a configured token guards the data, not the probes (module docstring)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        # What the report's cookie holds: derived from the token, so the browser never stores the token.
        self.session = _session_value(self.token) if self.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == LOGIN_PATH:
                await (await self._login(scope, receive))(scope, receive, send)
                return
            response = self._refusal(scope)
            if response is not None:
                await response(scope, receive, send)
                return
            if scope["method"] == "HEAD":
                # Routes are GET-only: answer HEAD as the GET would, headers without the body.
                await self.app(dict(scope, method="GET"), receive, _without_body(send))
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        method = scope["method"]
        if method not in READ_METHODS:
            return JSONResponse(
                {"detail": f"{method} not allowed: this API is read-only"},
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
        too_large = _too_large(scope)
        if too_large is not None:
            return too_large
        if self.token is None or not str(scope["path"]).startswith(PROTECTED_PREFIXES):
            return None
        headers = dict(scope["headers"])
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token):
            return None
        if str(scope["path"]).startswith("/report"):
            if self._has_session(headers.get(b"cookie", b"")):
                return None
            if b"text/html" in headers.get(b"accept", b""):  # a browser: the login form, not a 401
                return RedirectResponse(LOGIN_PATH, status_code=303)
        return JSONResponse(
            {"detail": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="dqd"'},
        )

    def _has_session(self, cookie_header: bytes) -> bool:
        assert self.session is not None
        for part in cookie_header.split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == SESSION_COOKIE.encode() and hmac.compare_digest(value, self.session):
                return True
        return False

    async def _login(self, scope: Scope, receive: Receive) -> Response:
        """GET: the form; POST: the token checked, the session cookie set, on to the report."""
        if self.token is None or self.session is None:
            return RedirectResponse("/report/", status_code=303)  # no token: nothing to log in to
        if scope["method"] in READ_METHODS:
            return HTMLResponse(_LOGIN_PAGE.format(message="This dqd requires its API token."))
        if scope["method"] != "POST":
            return JSONResponse(
                {"detail": "use GET or POST"}, status_code=405, headers={"Allow": "GET, POST"}
            )
        body = await _read_body(receive, MAX_LOGIN_BYTES)
        if body is None:
            return JSONResponse(
                {"detail": f"the login form is over {MAX_LOGIN_BYTES} bytes"}, status_code=413
            )
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip().encode()
        if not hmac.compare_digest(given, self.token):
            return HTMLResponse(_LOGIN_PAGE.format(message="Wrong token."), status_code=401)
        response = RedirectResponse("/report/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            self.session.decode(),
            httponly=True,
            samesite="strict",
            secure=scope.get("scheme") == "https",
            path="/report",
        )
        return response


def _session_value(token: bytes) -> bytes:
    return hmac.new(token, b"dqd report session", hashlib.sha256).hexdigest().encode()


def _too_large(scope: Scope) -> Response | None:
    if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
        return JSONResponse({"detail": f"the query string is over {MAX_QUERY_BYTES} bytes"}, status_code=414)
    length = dict(scope["headers"]).get(b"content-length", b"0")
    if length.strip() not in (b"", b"0") or b"transfer-encoding" in dict(scope["headers"]):
        return JSONResponse({"detail": "this API takes no request body"}, status_code=413)
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it is over ``limit`` bytes (the rest is not read)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


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
