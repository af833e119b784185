"""The leaderboard database: one row per evaluated (hub, repo, revision), one row per repo.

SQLite file under DEEPRL_HOME by default; any SQLAlchemy URL (PostgreSQL for a classroom server) through
DEEPRL_DATABASE_URL. Tables are created on first use; the schema is small enough that it needs no migrations yet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry


class UTCDateTime(TypeDecorator):
    """Datetimes stored naive in UTC and read back timezone-aware, the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime | str | None) -> datetime | None:
    """A timezone-aware datetime from a datetime or an ISO 8601 string; a naive one is taken as UTC."""
    if dt is None:
        return None
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Repo(Base):
    """A model repository as the hub lists it now; `latest_revision` is the one the leaderboard ranks."""

    __tablename__ = "repos"
    __table_args__ = (UniqueConstraint("hub", "repo_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hub: Mapped[str] = mapped_column(String(16), default="local")
    repo_id: Mapped[str] = mapped_column(String(200), index=True)
    user: Mapped[str] = mapped_column(String(100), index=True)
    latest_revision: Mapped[str | None] = mapped_column(String(64))
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # False once the hub no longer lists the repo: kept for its history, left off the leaderboard
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    evaluations: Mapped[list[Evaluation]] = relationship(
        back_populates="repo", cascade="all, delete-orphan", order_by="Evaluation.pushed_at.desc()"
    )


class Evaluation(Base):
    """What one revision claims on its card and what re-evaluating it here measured."""

    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("repo_pk", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    revision: Mapped[str] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the env tag the leaderboard files the model under (the one it was evaluated on, else the card's)
    env: Mapped[str | None] = mapped_column(String(100), index=True)
    algo: Mapped[str | None] = mapped_column(String(50))
    claimed_env: Mapped[str | None] = mapped_column(String(100))
    claimed_mean: Mapped[float | None] = mapped_column(Float)
    claimed_std: Mapped[float | None] = mapped_column(Float)
    mean_reward: Mapped[float | None] = mapped_column(Float)
    std_reward: Mapped[float | None] = mapped_column(Float)
    result: Mapped[float | None] = mapped_column(Float, index=True)
    n_eval_episodes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | error
    error: Mapped[str | None] = mapped_column(Text)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str | None] = mapped_column(Text)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seconds: Mapped[float | None] = mapped_column(Float)
    # when this hub first saw the revision (server side: the pusher cannot set it); ties on the board break on it
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the card, parsed and rendered once at indexing inside the limited child: pages serve these, never the repo
    card_html: Mapped[str | None] = mapped_column(Text)  # sanitized HTML of the card body
    card_meta: Mapped[str | None] = mapped_column(Text)  # JSON object: the front matter, bounded
    files: Mapped[str | None] = mapped_column(Text)  # JSON list of [path, size] of the revision's files

    repo: Mapped[Repo] = relationship(back_populates="evaluations")

    @property
    def claimed_result(self) -> float | None:
        if self.claimed_mean is None or self.claimed_std is None:
            return None
        return self.claimed_mean - self.claimed_std


class Certificate(Base):
    """A certificate as issued: its verification id is printed on the PDF/PNG and answers /certificates/<id>."""

    __tablename__ = "certificates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # verification id, random, url-safe
    hub: Mapped[str] = mapped_column(String(16), default="local")
    user: Mapped[str] = mapped_column(String(100), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))  # completion | excellence
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    results: Mapped[str] = mapped_column(Text)  # JSON: the verified assignment rows it was issued on


_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the web server read while an index run writes; busy_timeout waits for the writer instead of failing
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    from deeprl.paths import database_url

    url = _driver(url or database_url())
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            else:
                kwargs["pool_pre_ping"] = True
            engine = create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                event.listen(engine, "connect", _sqlite_pragmas)
            Base.metadata.create_all(engine)
            _add_missing_columns(engine)
            _engines[url] = engine
            _sessionmakers[url] = sessionmaker(engine, expire_on_commit=False)
        return engine


def _add_missing_columns(engine: Engine) -> None:
    """Additive migration: columns added to a model since a database was created are added to its table (NULL)."""
    from sqlalchemy import inspect, text

    insp = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have:
                    kind = col.type.compile(dialect=engine.dialect)
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {kind}"))


def _driver(url: str) -> str:
    """postgresql://... means psycopg2 to SQLAlchemy; use psycopg 3 (what deeprl installs) when psycopg2 is absent."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@contextmanager
def session(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    from deeprl.paths import database_url

    url = _driver(url or database_url())
    get_engine(url)
    s: Session = _sessionmakers[url]()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


def dispose(url: str | None = None) -> None:
    """Forget cached engines (tests switch DEEPRL_HOME between databases)."""
    with _lock:
        for key in [url] if url else list(_engines):
            engine = _engines.pop(key, None)
            _sessionmakers.pop(key, None)
            if engine is not None:
                engine.dispose()


def get_repo(s: Session, repo_id: str, hub: str = "local") -> Repo | None:
    return s.scalar(select(Repo).where(Repo.hub == hub, Repo.repo_id == repo_id))


class Match(Base):
    """One league match (Unit 7): a best-of-N set of SoccerTwos games between two pushed models, as played.

    The league's ratings are a function of these rows alone (deeprl.league.ratings): `LeagueRating` is a cache
    of them that `deeprl league recompute` drops and rebuilds. `result` is model1's (1 win, 0.5 draw, 0 loss, the
    course's convention); a forfeit (a model that could not be loaded or crashed) names who forfeited and why,
    and moves no rating."""

    __tablename__ = "matches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hub: Mapped[str] = mapped_column(String(16), default="local")
    env: Mapped[str] = mapped_column(String(100), default="ML-Agents-SoccerTwos")
    model1: Mapped[str] = mapped_column(String(200), index=True)
    model2: Mapped[str] = mapped_column(String(200), index=True)
    revision1: Mapped[str | None] = mapped_column(String(64))
    revision2: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[float] = mapped_column(Float)
    won: Mapped[int] = mapped_column(Integer, default=0)  # games, from model1's side
    drawn: Mapped[int] = mapped_column(Integer, default=0)
    lost: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(Integer, default=0)  # soccer.play_matches(seed=): model1 is blue in even games
    max_steps: Mapped[int | None] = mapped_column(Integer)
    k: Mapped[float] = mapped_column(Float, default=20.0)  # the K this match was rated with (recomputing needs it)
    rated: Mapped[bool] = mapped_column(Boolean, default=True)
    forfeit: Mapped[str | None] = mapped_column(String(200))  # the repo id that forfeited, if one did
    error: Mapped[str | None] = mapped_column(Text)
    elo1_before: Mapped[float | None] = mapped_column(Float)
    elo2_before: Mapped[float | None] = mapped_column(Float)
    elo1_after: Mapped[float | None] = mapped_column(Float)
    elo2_after: Mapped[float | None] = mapped_column(Float)
    replay: Mapped[str | None] = mapped_column(String(300))  # file name under DEEPRL_HOME/league/replays
    seconds: Mapped[float | None] = mapped_column(Float)
    played_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class LeagueRating(Base):
    """Each model's current league rating: a cache of replaying `matches` in order, rebuilt on demand."""

    __tablename__ = "league_ratings"
    __table_args__ = (UniqueConstraint("hub", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hub: Mapped[str] = mapped_column(String(16), default="local")
    model: Mapped[str] = mapped_column(String(200), index=True)
    elo: Mapped[float] = mapped_column(Float, default=1200.0)
    games: Mapped[int] = mapped_column(Integer, default=0)  # rated matches played
    last_match: Mapped[int | None] = mapped_column(Integer)  # id of the last match folded in
