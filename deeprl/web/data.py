"""What the pages and the JSON API both show: a board, a model, a user's progress, a certificate, each read from
the index for one hub, plus the checks every visitor's value passes before it touches the disk or the database
(the bounds and patterns of the routes' parameters, file paths inside the repo folder only)."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import HTTPException
from sqlalchemy import select

from deeprl import db
from deeprl.errors import UserError

ENV_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$"
PART_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?$"
REV_PATTERN = r"^[0-9a-f]{7,64}$"
CERT_PATTERN = r"^[A-Za-z0-9_-]{4,64}$"
NAME_MAX = 60
PAGE_MAX = 10**6  # with PER_PAGE_MAX, an offset SQLite's integers hold (2**62 overflowed them)
PER_PAGE_MAX = 500
SortKey = Literal["rank", "result", "mean_reward", "std_reward", "pushed_at", "repo_id", "user"]
Order = Literal["asc", "desc"]


def safe_file(root: Path, rel: str) -> Path | None:
    """root/rel when it is a plain, visible file inside root; None for anything else (traversal included)."""
    if not rel or len(rel) > 500 or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    path = root / rel
    try:
        resolved, base = path.resolve(strict=True), root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if path.is_symlink() or not resolved.is_relative_to(base) or not resolved.is_file():
        return None
    return resolved


def stored_files(value: object) -> list[tuple[str, int]]:
    """The indexer's [path, size] list, with anything malformed left out."""
    out = []
    for item in value if isinstance(value, list) else []:
        if (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and len(item[0]) <= 500
        ):
            out.append((item[0], item[1]))
    return out


def short(text: object, limit: int = 60) -> str:
    """Visitor input as it may appear in a message: one line, bounded."""
    text = re.sub(r"\s+", " ", str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_user_param(user: str) -> str:
    from deeprl.certification import check_user

    try:
        return check_user(user)
    except UserError:
        raise HTTPException(404, f"'{short(user)}' is not a hub username.") from None


@cache
def env_description(env: str) -> str | None:
    from deeprl.envs.registry import get_spec

    try:
        return get_spec(env).description or None
    except Exception:
        return None


@lru_cache(maxsize=1)
def course_envs() -> tuple[dict, ...]:
    """Every env a course assignment names, with its description and what each assignment asks of it."""
    from deeprl.certification import ASSIGNMENTS

    out: dict[str, dict] = {}
    for a in ASSIGNMENTS:
        for alts in a.envs:
            item = out.setdefault(
                alts[0], {"env": alts[0], "description": env_description(alts[0]), "needs": [], "minimum": None}
            )
            need = "push a model" if a.minimum is None else f"result ≥ {a.minimum:g}"
            algos = f", trained with {'/'.join(a.algos)}" if a.algos else ""
            item["needs"].append(f"Unit {a.unit} ({a.title}): {need}{algos}")
            if a.minimum is not None:
                item["minimum"] = a.minimum if item["minimum"] is None else max(item["minimum"], a.minimum)
    return tuple(out.values())


def course_env(env: str) -> dict | None:
    return next((e for e in course_envs() if e["env"] == env), None)


def _registry_has(env: str) -> bool:
    from deeprl.envs.registry import get_spec

    try:
        get_spec(env)
        return True
    except UserError:
        return False


def board(
    hub: str, url: str | None, env: str, page_no: int, per_page: int, sort: str, order: str | None, user: str | None
) -> dict:
    from deeprl import leaderboard as lb

    course = course_env(env)
    with db.session(url) as s:
        if (
            course is None
            and not _registry_has(env)
            and s.scalar(select(db.Evaluation.id).where(db.Evaluation.env == env).limit(1)) is None
        ):
            raise HTTPException(404, f"No leaderboard for '{short(env)}'.")
        rows, total = lb.ranking(
            s, env, hub=hub, user=user or None, sort=sort, order=order, offset=(page_no - 1) * per_page, limit=per_page
        )
        errors = lb.unranked(s, env, hub=hub)
    pages = max(1, -(-total // per_page))
    return {
        "env": env,
        "rows": rows,
        "total": total,
        "page": page_no,
        "per_page": per_page,
        "pages": pages,
        "errors": errors,
        "description": env_description(env),
        "minimum": course["minimum"] if course else None,
        "needs": course["needs"] if course else [],
    }


def model(hub: str, url: str | None, ns: str, name: str, revision: str | None) -> dict:
    from deeprl import leaderboard as lb

    repo_id = f"{ns}/{name}"
    with db.session(url) as s:
        detail = lb.model_detail(s, repo_id, hub=hub)
    if detail is None:
        raise HTTPException(404, f"No model '{repo_id}' in the index; push it and it appears within a minute.")
    known = {r["revision"]: r for r in detail["revisions"]}
    if revision is not None and revision not in known:
        raise HTTPException(404, f"Revision '{revision}' of '{repo_id}' has not been indexed.")
    rev = revision or detail["latest_revision"]
    entry = known.get(rev) or {}
    files = stored_files(entry.get("files"))
    base = f"/models/{repo_id}/files/"
    q = f"?revision={rev}" if rev else ""
    detail["revision"] = rev
    detail["shown"] = entry
    detail["files"] = [{"path": p, "size": n, "url": base + quote(p) + q} for p, n in files]
    detail["video_url"] = base + "replay.mp4" + q if any(p == "replay.mp4" for p, _ in files) else None
    detail["card_html"] = entry.get("card_html")
    meta = entry.get("card_meta")
    detail["card_meta"] = meta if isinstance(meta, dict) else {}
    tags = detail["card_meta"].get("tags")
    detail["card_tags"] = [str(t)[:60] for t in tags[:30]] if isinstance(tags, list) else []
    return detail


class RepoFolders:
    """Where one hub keeps a (repo, revision)'s files, resolved once per pair; one per app, since two apps in one
    process (the tests) may serve hubs under different homes."""

    def __init__(self, hub: str, maxsize: int = 4096):
        self.hub = hub
        # an lru_cache per instance: on the method it would be one cache shared by every app, holding each app
        self._resolve = lru_cache(maxsize=maxsize)(self._download)

    def _download(self, repo_id: str, revision: str) -> Path:
        from deeprl.hub import get_hub, validate_repo_id

        validate_repo_id(repo_id)
        return Path(get_hub(self.hub).download(repo_id, revision=revision))

    def __call__(self, repo_id: str, revision: str) -> Path | None:
        try:
            return self._resolve(repo_id, revision)
        except Exception:  # gone from the hub, or the hub unreachable: not cached, the next request tries again
            return None


def user_progress(hub: str, url: str | None, user: str) -> dict:
    from deeprl import leaderboard as lb
    from deeprl.certification import missing_sentence, progress

    p = progress(check_user_param(user), hub=hub, url=url)
    p["missing"] = None if p["level"] else missing_sentence(p)
    envs = {e for a in p["assignments"] for e in a["envs"]}
    ranks = {}
    with db.session(url) as s:
        for env in sorted(envs):
            for r in lb.ranking(s, env, hub=hub, user=p["user"])[0]:
                if r["user"] == p["user"]:
                    ranks[r["repo_id"]] = (env, r["rank"])
    for a in p["assignments"]:
        env_rank = ranks.get(a["best_model"])
        a["best_env"], a["best_rank"] = env_rank if env_rank else (None, None)
    return p


def verify(url: str | None, cert_id: str) -> dict:
    from deeprl import certification

    fn = getattr(certification, "verify_certificate", None)
    found = fn(cert_id, url=url) if fn is not None else None
    if not found:
        raise HTTPException(404, "No certificate has this verification id.")
    return found
