"""Index runs behind the web server: one at a time, started by a push (the watcher) or by an administrator."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path

from deeprl import db
from deeprl.errors import UserError

COOLDOWN_S = 10.0  # between two runs an administrator starts: a button held down is one run, not hundreds
WATCH_INTERVAL_S = 5.0


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat(timespec="seconds")


class Refresher:
    def __init__(self, hub: str, url: str | None, index_kwargs: dict | None = None, cooldown_s: float = COOLDOWN_S):
        self.hub, self.url, self.index_kwargs = hub, url, dict(index_kwargs or {})
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._manual_at: float | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.last_report: dict | None = None
        self.last_error: str | None = None
        self.thread: threading.Thread | None = None
        self.generation = 0  # changes when a run starts or ends: pages that show the run's state are stale then

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def retry_after(self) -> int:
        if self._manual_at is None:
            return 0
        return max(0, int(self._manual_at + self.cooldown_s - time.monotonic() + 0.999))

    def start(self, manual: bool = False) -> str:
        """'started', 'running' (one is under way; nothing is queued) or 'cooling' (a manual start came too soon)."""
        if manual and self.retry_after() > 0:
            return "cooling"
        if not self._lock.acquire(blocking=False):
            return "running"
        if manual:
            self._manual_at = time.monotonic()
        self.started_at, self.finished_at = db.utcnow(), None
        self.generation += 1
        self.thread = threading.Thread(target=self._run, name="deeprl-refresh", daemon=True)
        self.thread.start()
        return "started"

    def _run(self) -> None:
        from deeprl.leaderboard import index

        try:
            self.last_report = index(self.hub, url=self.url, **self.index_kwargs).to_dict()
            self.last_error = None
        except Exception as exc:  # shown on the page; the server keeps serving the last good figures
            self.last_error = str(exc) if isinstance(exc, UserError) else f"{exc.__class__.__name__}: {exc}"
        finally:
            self.finished_at = db.utcnow()
            self.generation += 1
            self._lock.release()

    def status(self, status: str | None = None) -> dict:
        return {
            "status": status or ("running" if self.running else "idle"),
            "running": self.running,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "last_report": self.last_report,
            "last_error": self.last_error,
        }


class HubWatcher:
    """Starts an index run when a push lands, so nobody has to press a button.

    Polling is a stat of each repo's branch ref (a push replaces that file): about 1,000 stats every few
    seconds for 1,000 repos, no git process. The indexer skips revisions it has already evaluated.
    """

    def __init__(self, refresher: Refresher, root: Path, interval_s: float = WATCH_INTERVAL_S, index_now: bool = True):
        self.refresher, self.root, self.interval_s = refresher, Path(root), interval_s
        self.seen = None if index_now else self.signature()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def signature(self) -> frozenset:
        out = []
        try:
            namespaces = list(os.scandir(self.root))
        except OSError:
            return frozenset()
        for ns in namespaces:
            if ns.name.startswith(".") or not ns.is_dir(follow_symlinks=False):
                continue
            try:
                repos = list(os.scandir(ns.path))
            except OSError:
                continue
            for repo in repos:
                if repo.name.startswith("."):
                    continue
                for ref in ("refs/heads/main", "packed-refs"):
                    try:
                        st = os.stat(os.path.join(repo.path, ".git", ref))
                    except OSError:
                        continue
                    out.append((ns.name, repo.name, ref, st.st_ino, st.st_mtime_ns, st.st_size))
        return frozenset(out)

    def check(self) -> bool:
        """One poll: True when the hub changed and an index run started for it."""
        sig = self.signature()
        if sig == self.seen:
            return False
        if self.refresher.start() != "started":
            return False  # a run is under way; the next poll sees the change again
        self.seen = sig
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a vanished folder mid-scan: the next poll looks again
                pass

    def start(self) -> None:
        try:
            self.check()
        except Exception:
            pass
        self.thread = threading.Thread(target=self._loop, name="deeprl-hub-watcher", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
