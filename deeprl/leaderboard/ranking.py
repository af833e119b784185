"""The ranking: queries over the indexer's stored figures, the rows they give, and the text table.

Only verified figures rank: the latest revision of every active repo that evaluated fine, ranked within its env
by `result` (mean - std). The card's claim rides along for display and flagging, never for the order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from deeprl import db
from deeprl.db import Evaluation, Repo, as_utc
from deeprl.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Subquery

SORT_KEYS = ("rank", "result", "mean_reward", "std_reward", "pushed_at", "repo_id", "user")
JSON_KEYS = ("rank", "repo_id", "user", "result", "mean_reward", "std_reward", "claimed_result", "flagged", "pushed_at")


def _latest_join() -> ColumnElement[bool]:
    return and_(Evaluation.repo_pk == Repo.id, Evaluation.revision == Repo.latest_revision)


def _ranked_subquery(hub: str, env: str) -> Subquery:
    """Latest revision of every active repo that evaluated fine for `env`, ranked.

    The env filter sits inside the window's query: ranking is per env anyway, so ranking only that env's rows gives
    the same ranks without sorting every other board's rows first (a board page spent most of its time there).

    Order: verified result, higher first; on a tie the revision this hub received first wins (it got there first;
    the commit time would be the pusher's word), then the repo id so that the order is total and the same on
    every run.
    """
    received = func.coalesce(Evaluation.received_at, Evaluation.evaluated_at)
    rank = (
        func.row_number()
        .over(partition_by=Evaluation.env, order_by=(Evaluation.result.desc(), received.asc(), Repo.repo_id.asc()))
        .label("rank")
    )
    return (
        select(
            rank,
            Repo.repo_id,
            Repo.user,
            Evaluation.env,
            Evaluation.revision,
            Evaluation.result,
            Evaluation.mean_reward,
            Evaluation.std_reward,
            Evaluation.claimed_mean,
            Evaluation.claimed_std,
            Evaluation.flagged,
            Evaluation.flag_reason,
            Evaluation.pushed_at,
            Evaluation.algo,
            Evaluation.n_eval_episodes,
            received.label("received_at"),
        )
        .join(Evaluation, _latest_join())
        .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status == "ok", Evaluation.env == env)
        .subquery()
    )


def _json_or(text: str | None, default: Any) -> Any:
    """A JSON column written by the indexer (bounded there); the default when empty or unreadable."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _iso(dt: datetime | None) -> str | None:
    utc = as_utc(dt)
    return None if utc is None else utc.isoformat(timespec="seconds")


def _row(r: Any) -> dict:  # a row of the ranking query
    claimed = None if r.claimed_mean is None or r.claimed_std is None else r.claimed_mean - r.claimed_std
    return {
        "rank": r.rank,
        "repo_id": r.repo_id,
        "user": r.user,
        "result": r.result,
        "mean_reward": r.mean_reward,
        "std_reward": r.std_reward,
        "claimed_result": claimed,
        "flagged": bool(r.flagged),
        "pushed_at": _iso(r.pushed_at),
        "env": r.env,
        "revision": r.revision,
        "flag_reason": r.flag_reason,
        "algo": r.algo,
        "n_eval_episodes": r.n_eval_episodes,
        "received_at": _iso(r.received_at),
    }


def ranking(
    s: Session,
    env: str,
    *,
    hub: str = "local",
    user: str | None = None,
    sort: str = "rank",
    order: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[dict], int]:
    """(rows, total matching) of env's leaderboard. Ranks are global to the env: a user search keeps them."""
    if sort not in SORT_KEYS:
        raise UserError(f"Cannot sort by '{sort}'; use one of {', '.join(SORT_KEYS)}.")
    if order not in (None, "asc", "desc"):
        raise UserError(f"Order must be asc or desc, not '{order}'.")
    sub = _ranked_subquery(hub, env)
    where = []
    if user:
        pattern = "%" + user.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(func.lower(sub.c.user).like(pattern, escape="\\"))
    # the total rides along as a window over the filtered rows: one pass instead of a second COUNT query
    q = select(sub, func.count().over().label("total")).where(*where)
    default_desc = sort in ("result", "mean_reward", "std_reward", "pushed_at")
    desc = (order == "desc") if order else default_desc
    col = sub.c[sort]
    q = q.order_by(col.desc() if desc else col.asc(), sub.c.rank.asc())
    if offset:
        q = q.offset(offset)
    if limit is not None:
        q = q.limit(limit)
    found = list(s.execute(q))
    if found:
        total = found[0].total
    else:  # a page past the end says nothing about the total
        total = s.scalar(select(func.count()).select_from(select(sub.c.rank).where(*where).subquery()))
    return [_row(r) for r in found], int(total or 0)


def json_row(row: dict, with_env: bool = False) -> dict:
    out = {k: row[k] for k in JSON_KEYS}
    if with_env:
        out["env"] = row["env"]
    return out


def unranked(s: Session, env: str | None = None, *, hub: str = "local", any_env: bool = False) -> list[dict]:
    """Latest revisions that could not be evaluated, with the reason (env None: those with no known env)."""
    q = (
        select(Repo.repo_id, Repo.user, Evaluation.env, Evaluation.revision, Evaluation.error, Evaluation.pushed_at)
        .join(Evaluation, _latest_join())
        .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status != "ok")
    )
    if not any_env:
        q = q.where(Evaluation.env.is_(None) if env is None else Evaluation.env == env)
    q = q.order_by(Evaluation.pushed_at.asc(), Repo.repo_id.asc())
    return [
        {
            "repo_id": r.repo_id,
            "user": r.user,
            "env": r.env,
            "revision": r.revision,
            "error": r.error,
            "pushed_at": _iso(r.pushed_at),
        }
        for r in s.execute(q)
    ]


def env_summaries(s: Session, *, hub: str = "local") -> list[dict]:
    """Every env with ranked models: counts, users and the best verified result; most models first."""
    q = (
        select(
            Evaluation.env,
            func.count().label("models"),
            func.count(func.distinct(Repo.user)).label("users"),
            func.max(Evaluation.result).label("best"),
            func.max(Evaluation.pushed_at).label("last_push"),
        )
        .join(Evaluation, _latest_join())
        .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status == "ok", Evaluation.env.is_not(None))
        .group_by(Evaluation.env)
        .order_by(func.count().desc(), Evaluation.env)
    )
    out = [
        {"env": r.env, "models": r.models, "users": r.users, "best_result": r.best, "last_push": _iso(r.last_push)}
        for r in s.execute(q)
    ]
    errors = dict(
        s.execute(
            select(Evaluation.env, func.count())
            .join(Repo, _latest_join())
            .where(Repo.hub == hub, Repo.active.is_(True), Evaluation.status != "ok")
            .group_by(Evaluation.env)
        ).all()
    )
    for item in out:
        item["unranked"] = errors.pop(item["env"], 0)
    for env, n in sorted(errors.items(), key=lambda kv: str(kv[0])):
        if env is not None:
            out.append({"env": env, "models": 0, "users": 0, "best_result": None, "last_push": None, "unranked": n})
    return out


def leaderboard(env: str | None = None, *, hub: str = "local", url: str | None = None) -> dict:
    """What `deeprl leaderboard --json` prints: {"env", "rows"}; env None gives every env, each row with its env."""
    with db.session(url) as s:
        if env is not None:
            rows, _ = ranking(s, env, hub=hub)
            return {"env": env, "rows": [json_row(r) for r in rows]}
        rows = []
        for item in env_summaries(s, hub=hub):
            rows += [json_row(r, with_env=True) for r in ranking(s, item["env"], hub=hub)[0]]
        return {"env": None, "rows": rows}


def model_detail(s: Session, repo_id: str, *, hub: str = "local") -> dict | None:
    """A repo with every evaluated revision (newest first) and the rank of its latest one."""
    repo = db.get_repo(s, repo_id, hub)
    if repo is None:
        return None
    revisions = []
    # newest first; git times have one-second resolution, so the hub's latest revision leads whatever its time says
    for e in sorted(
        repo.evaluations,
        key=lambda e: (e.revision == repo.latest_revision, e.pushed_at or datetime.min.replace(tzinfo=UTC), e.id),
        reverse=True,
    ):
        revisions.append(
            {
                "revision": e.revision,
                "message": e.message,
                "pushed_at": _iso(e.pushed_at),
                "env": e.env,
                "algo": e.algo,
                "status": e.status,
                "error": e.error,
                "mean_reward": e.mean_reward,
                "std_reward": e.std_reward,
                "result": e.result,
                "n_eval_episodes": e.n_eval_episodes,
                "claimed_env": e.claimed_env,
                "claimed_mean": e.claimed_mean,
                "claimed_std": e.claimed_std,
                "claimed_result": e.claimed_result,
                "flagged": e.flagged,
                "flag_reason": e.flag_reason,
                "evaluated_at": _iso(e.evaluated_at),
                "latest": e.revision == repo.latest_revision,
                "received_at": _iso(e.received_at),
                "card_html": e.card_html,
                "card_meta": _json_or(e.card_meta, {}),
                "files": _json_or(e.files, []),
            }
        )
    latest = next((r for r in revisions if r["latest"]), None)
    rank = None
    if latest and latest["status"] == "ok" and latest["env"]:
        sub = _ranked_subquery(hub, latest["env"])
        rank = s.scalar(select(sub.c.rank).where(sub.c.repo_id == repo_id))
    return {
        "repo_id": repo.repo_id,
        "user": repo.user,
        "hub": repo.hub,
        "active": repo.active,
        "latest_revision": repo.latest_revision,
        "pushed_at": _iso(repo.pushed_at),
        "env": latest["env"] if latest else None,
        "rank": rank,
        "latest": latest,
        "revisions": revisions,
    }


def format_table(env: str, rows: list[dict], errors: list[dict] | None = None) -> str:
    lines = [f"{env}  ({len(rows)} ranked)"]
    if rows:
        w_model = max(5, *(len(r["repo_id"]) for r in rows))
        w_user = max(4, *(len(r["user"]) for r in rows))
        lines.append(
            f"{'rank':>4}  {'model':<{w_model}}  {'user':<{w_user}}  {'result':>10}  {'mean +/- std':>21}  pushed at"
        )
        for r in rows:
            flag = (
                "  ! claim " + (f"{r['claimed_result']:.2f}" if r["claimed_result"] is not None else "?")
                if r["flagged"]
                else ""
            )
            ms = f"{r['mean_reward']:.2f} +/- {r['std_reward']:.2f}"
            pushed = (r["pushed_at"] or "-").replace("T", " ").replace("+00:00", "Z")
            lines.append(
                f"{r['rank']:>4}  {r['repo_id']:<{w_model}}  {r['user']:<{w_user}}  {r['result']:>10.2f}  "
                f"{ms:>21}  {pushed}{flag}"
            )
    for e in errors or []:
        lines.append(f"   -  {e['repo_id']}  not ranked: {e['error']}")
    return "\n".join(lines)
