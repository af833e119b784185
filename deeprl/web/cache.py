"""Rendered responses kept until the data under them changes.

A board or model page is the same bytes for every visitor until an index run writes the database, so the
second request for a URL is answered from memory, before routing. The database's version is read per request:
SQLite's `PRAGMA data_version` on a connection of our own (it changes whenever any other connection commits,
in this process or another one), a cheap summary query at most once a second on other databases.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import func, select

from deeprl import db

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

ResponseT = TypeVar("ResponseT", bound="Response")

CACHE_HEADER = b"x-deeprl-cache"  # a route's mark that its answer may be cached; never sent to the client


def mark_cacheable(response: ResponseT) -> ResponseT:
    response.headers[CACHE_HEADER.decode()] = "1"
    return response


class DataVersion:
    def __init__(self, url: str | None):
        self.url = url
        engine = db.get_engine(url)
        self._lock = threading.Lock()
        self._conn = None
        path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
        if path and path != ":memory:" and not path.startswith("file:"):
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._checked = 0.0
        self._value: object = None

    def __call__(self) -> object:
        with self._lock:
            if self._conn is not None:
                return self._conn.execute("PRAGMA data_version").fetchone()[0]
            now = time.monotonic()
            if now - self._checked >= 1.0:
                with db.session(self.url) as s:
                    self._value = tuple(
                        s.execute(
                            select(
                                func.count(db.Evaluation.id),
                                func.max(db.Evaluation.evaluated_at),
                                func.max(db.Repo.indexed_at),
                                func.count(db.Repo.id),
                            )
                        ).one()
                    )
                self._checked = now
            return self._value

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class PageCache:
    """Pure ASGI middleware: GET answers a route marked cacheable, kept per (path, query) for one data version."""

    def __init__(self, app: ASGIApp, version: Callable[[], object], max_entries: int = 2000, max_bytes: int = 64 << 20):
        self.app, self.version = app, version
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: OrderedDict = OrderedDict()
        self.size = 0
        self.current: object = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        version = self.version()
        if version != self.current:
            self.entries.clear()
            self.size, self.current = 0, version
        key = (scope["path"], scope.get("query_string", b""))
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            status, headers, body = hit
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        start: dict[str, Message] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if any(k == CACHE_HEADER for k, _ in headers):
                    message["headers"] = [(k, v) for k, v in headers if k != CACHE_HEADER]
                    start["message"] = message
            elif start and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._store(key, version, start["message"], b"".join(chunks))
            await send(message)

        await self.app(scope, receive, capture)

    def _store(self, key: tuple[str, bytes], version: object, start: Message, body: bytes) -> None:
        if version != self.current or start["status"] != 200 or len(body) > self.max_bytes // 16:
            return
        self.entries[key] = (start["status"], start["headers"], body)
        self.size += len(body)
        while len(self.entries) > self.max_entries or self.size > self.max_bytes:
            _, (_, _, old) = self.entries.popitem(last=False)
            self.size -= len(old)
