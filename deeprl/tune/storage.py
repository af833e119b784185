"""Where a study lives (Optuna RDB storage), the lock that hands out trial slots, and worker liveness."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeprl.errors import UserError

if TYPE_CHECKING:
    import optuna

STORAGE_ENV = "DEEPRL_TUNE_STORAGE"


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


# --------------------------------------------------------------------------------------------------------------
# Storage, locks, worker liveness


def default_storage() -> str:
    from deeprl.paths import home

    # Its own file: Optuna's tables (and its alembic_version) stay out of the leaderboard database.
    return os.environ.get(STORAGE_ENV) or f"sqlite:///{home() / 'optuna.db'}"


def driver_url(url: str) -> str:
    """postgresql:// means psycopg2 to SQLAlchemy 2.0 and psycopg (3) to 2.1; deeprl installs psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(
    url: str, heartbeat_interval: int | None = 30, grace_period: int | None = None
) -> optuna.storages.RDBStorage:
    import sqlalchemy
    from optuna.storages import RDBStorage

    _quiet_optuna()
    url = driver_url(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:
        raise UserError(
            f"'{url}' is not a database URL; use sqlite:///path/to/file.db or postgresql://user@host:port/dbname."
        ) from None
    engine_kwargs: dict[str, Any] = {}
    lock_path: Path | None = None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            db = Path(parsed.database).expanduser()
            db.parent.mkdir(parents=True, exist_ok=True)
            lock_path = _lock_path(db)
        # Workers write at the same time; wait for the file lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif parsed.get_backend_name() in ("postgresql", "mysql"):
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            # Workers starting together would all create Optuna's tables at once: one at a time on SQLite,
            # and a retry elsewhere (the loser of that race finds the tables made).
            with _flock(lock_path):
                return RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period
                )
        except ImportError:
            raise UserError(
                f"The database driver for {parsed.get_backend_name()} is not installed; for PostgreSQL: "
                f"pip install 'psycopg[binary]'."
            ) from None
        except sqlalchemy.exc.ArgumentError:
            raise UserError(
                f"'{url}' is not a database URL; use sqlite:///path/to/file.db or postgresql://user@host:port/dbname."
            ) from None
        except sqlalchemy.exc.DBAPIError as exc:
            if attempt == 4:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no connection"
                raise UserError(
                    f"Cannot open the study storage {parsed.render_as_string(hide_password=True)} ({reason})."
                ) from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("not reached: the last attempt returns or raises")


def _lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


@contextmanager
def _flock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class ClaimLock:
    """Serializes "count the study's trials, then start one" across workers, so N means N.

    SQLite (one machine): an flock on a file beside the database. PostgreSQL: a session advisory lock keyed by
    the study name. Other databases: a lock within this process only (two workers may then overshoot by one).
    """

    def __init__(self, url: str, study_name: str):
        import sqlalchemy

        self._thread_lock = threading.Lock()
        self._path = None
        self._engine = None
        parsed = sqlalchemy.engine.make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
            self._path = _lock_path(Path(parsed.database).expanduser())
        elif backend == "postgresql":
            self._engine = sqlalchemy.create_engine(driver_url(url), poolclass=sqlalchemy.pool.NullPool)
            digest = hashlib.blake2b(f"deeprl-tune:{study_name}".encode(), digest_size=8).digest()
            self._key = int.from_bytes(digest, "big", signed=True)

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self._path is not None:
                with _flock(self._path):
                    yield
            elif self._engine is not None:
                import sqlalchemy

                with self._engine.connect() as conn:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                    try:
                        yield
                    finally:
                        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                        conn.commit()
            else:
                yield

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone (or a zombie)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def worker_identity() -> dict:
    pid = os.getpid()
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = None
    return {
        "host": socket.gethostname(),
        "boot": _read("/proc/sys/kernel/random/boot_id"),
        "pidns": pidns,
        "pid": pid,
        "start": _process_start(pid),
    }


def _is_dead_local_worker(worker: dict, me: dict) -> bool:
    # Only a process this machine (and pid namespace) can see is judged here; others wait for the heartbeat.
    if not me["boot"] or not me["start"]:
        return False
    if (worker.get("host"), worker.get("boot"), worker.get("pidns")) != (me["host"], me["boot"], me["pidns"]):
        return False
    return _process_start(int(worker.get("pid", -1))) != worker.get("start")


def fail_abandoned_trials(study: optuna.Study, me: dict | None = None) -> list[int]:
    """Mark FAILED the RUNNING trials whose worker is gone; returns their numbers."""
    import optuna
    from optuna.trial import TrialState

    me = me or worker_identity()
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if isinstance(worker, dict) and _is_dead_local_worker(worker, me):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "fail_reason", "its worker process died")
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)  # heartbeat older than the grace period: any machine
    return sorted(before & {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))})


class _Heartbeat:
    """Optuna's RDB heartbeat for a trial we run ourselves (ask/tell), on a daemon thread."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        interval = storage.get_heartbeat_interval()
        self.thread = None
        if interval:
            self.thread = threading.Thread(target=self._beat, args=(interval,), daemon=True)

    def _beat(self, interval: float) -> None:
        while not self.stop.wait(interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a missed beat is retried; a dead database shows up in the trial itself
                pass

    def __enter__(self) -> _Heartbeat:
        if self.thread is not None:
            self.storage.record_heartbeat(self.trial_id)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
