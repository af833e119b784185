"""What keeps a browser visiting this site safe, and other sites from acting through it.

- Every response (pages, JSON, static files, errors, cached pages) carries the same security headers; a page's
  images come from this site or data: URLs only, so a model card cannot plant a tracking pixel.
- State-changing forms carry a CSRF token that must match a cookie only this site can set (double submit), and
  must come from this site's own pages (Origin / Sec-Fetch-Site).
- The API's state-changing calls need the administrator's token (`deeprl serve --admin-token` or
  DEEPRL_ADMIN_TOKEN) as a bearer token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
CSRF_COOKIE = "deeprl_csrf"
CSRF_FIELD = "csrf"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class SecurityHeaders:
    """Pure ASGI middleware (no per-request Request object): adds HEADERS where a route did not set its own."""

    def __init__(self, app: ASGIApp, trusted_hosts: tuple[str, ...] | None = None):
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
        self.names = {k.encode() for k in HEADERS}
        # on a loopback server only loopback names are accepted: a rebound DNS name cannot reach it from a page
        self.trusted = None if trusted_hosts is None else {h.encode() for h in trusted_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.trusted is not None:
            host = next((v for k, v in scope["headers"] if k == b"host"), b"")
            name = host.rsplit(b":", 1)[0] if not host.endswith(b"]") else host
            if name not in self.trusted:
                return await self._refuse(send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in have
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(self, send: Send) -> None:
        body = b"This server answers on its loopback address only.\n"
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ]
                + self.headers,
            }
        )
        await send({"type": "http.response.body", "body": body})


def same_origin(request: Request) -> bool:
    """False when a browser says the request comes from another site (a form or fetch on someone else's page)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True  # not a browser: the CSRF token or the bearer token still has to match
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme == request.url.scheme


def csrf_token(request: Request) -> tuple[str, bool]:
    """(token for this visitor's forms, whether the cookie must be set on the response)."""
    have = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(have) <= 100 and have.replace("-", "").replace("_", "").isalnum():
        return have, False
    return secrets.token_urlsafe(24), True


def set_csrf_cookie(response: Response, token: str) -> None:
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or len(submitted) > 100:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


def token_ok(expected: str | None, given: str | None) -> bool:
    if not expected or not given or len(given) > 1000:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")
