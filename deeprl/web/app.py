"""FastAPI app: pages rendered on the server with Jinja2 (no build step), the same data as JSON under /api.

Pages answer from what the indexer stored: the figures, the card (rendered and sanitized once, at indexing, in a
limited child process) and the file list. No page request parses Markdown or YAML or starts a git process; only
a file's bytes (the replay) are read from the hub folder, whose path is resolved once per (repo, revision).

Everything a visitor sends is checked before it touches the disk or the database: repo ids by the hub's rules,
numbers within bounds, revisions against the ones the index has seen, file paths inside the repo folder only.
"""

from __future__ import annotations

import inspect
import math
import mimetypes
import re
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Form, HTTPException, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from deeprl import db
from deeprl.errors import UserError
from deeprl.web import security
from deeprl.web.cache import DataVersion, PageCache, mark_cacheable
from deeprl.web.indexing import WATCH_INTERVAL_S, HubWatcher, Refresher

HERE = Path(__file__).parent
ENV_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$"
PART_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?$"
REV_PATTERN = r"^[0-9a-f]{7,64}$"
CERT_PATTERN = r"^[A-Za-z0-9_-]{4,64}$"
NAME_MAX = 60
PAGE_MAX = 10**6  # with PER_PAGE_MAX, an offset SQLite's integers hold (2**62 overflowed them)
PER_PAGE_MAX = 500
SortKey = Literal["rank", "result", "mean_reward", "std_reward", "pushed_at", "repo_id", "user"]
Order = Literal["asc", "desc"]
# files a browser may show inline; anything else (an .html in a repo included) downloads as bytes
INLINE_TYPES = {"video/mp4", "image/png", "image/jpeg", "image/gif", "application/json", "text/plain"}
FLASHES = {"started": "Index run started: new pushes are being evaluated in the background.",
           "running": "An index run is already under way; nothing was queued.",
           "cooling": "An index run was started moments ago; try again in a few seconds.",
           "refused": "Refused: this form did not come from this site's own page, or its token was wrong."}


# ---------------------------------------------------------------------------------------------------------
# API schema


class Row(BaseModel):
    rank: int
    repo_id: str
    user: str
    algo: str | None = None
    result: float
    mean_reward: float
    std_reward: float
    claimed_result: float | None
    flagged: bool
    pushed_at: str | None
    revision: str
    flag_reason: str | None = None


class Board(BaseModel):
    env: str
    description: str | None = None
    minimum: float | None = None
    rows: list[Row]
    total: int
    page: int
    per_page: int
    pages: int


class EnvSummary(BaseModel):
    env: str
    models: int
    users: int
    best_result: float | None
    last_push: str | None
    unranked: int


class Revision(BaseModel):
    revision: str
    message: str | None
    pushed_at: str | None
    received_at: str | None = None
    env: str | None
    algo: str | None
    status: str
    error: str | None
    mean_reward: float | None
    std_reward: float | None
    result: float | None
    n_eval_episodes: int | None
    claimed_env: str | None
    claimed_mean: float | None
    claimed_std: float | None
    claimed_result: float | None
    flagged: bool
    flag_reason: str | None
    evaluated_at: str | None
    latest: bool


class FileEntry(BaseModel):
    path: str
    size: int
    url: str


class ModelOut(BaseModel):
    repo_id: str
    user: str
    hub: str
    active: bool
    latest_revision: str | None
    pushed_at: str | None
    env: str | None
    rank: int | None
    revision: str | None
    revisions: list[Revision]
    files: list[FileEntry]
    video_url: str | None
    card_meta: dict


class AssignmentOut(BaseModel):
    key: str
    unit: str
    title: str
    envs: list[str]
    minimum: float | None
    runnable: bool
    passed: bool
    status: str
    best_model: str | None
    best_result: float | None
    best_rank: int | None = None
    missing: str | None


class ProgressOut(BaseModel):
    user: str
    hub: str
    passed: int
    total: int
    percent: float
    level: str | None
    needed_for_completion: int
    models: int
    assignments: list[AssignmentOut]
    missing: str | None


class CertResult(BaseModel):
    unit: str
    title: str
    env: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    result: float | None = None
    minimum: float | None = None


class CertificateOut(BaseModel):
    id: str
    user: str
    first_name: str
    last_name: str
    level: str
    issued_at: str | None
    hub: str
    results: list[CertResult]


class RefreshOut(BaseModel):
    status: str
    running: bool
    started_at: str | None
    finished_at: str | None
    last_report: dict | None
    last_error: str | None


class Message(BaseModel):
    detail: str


NOT_FOUND = {404: {"model": Message, "description": "Not found"}}


# ---------------------------------------------------------------------------------------------------------
# Helpers


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


def stored_files(value) -> list[tuple[str, int]]:
    """The indexer's [path, size] list, with anything malformed left out."""
    out = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str) \
                and isinstance(item[1], int) and not isinstance(item[1], bool) and len(item[0]) <= 500:
            out.append((item[0], item[1]))
    return out


def fmt_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        dt = datetime.fromisoformat(value).astimezone(timezone.utc)
    except ValueError:
        return value
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def fmt_day(value: str | None) -> str:
    """A date as the certificate prints it (05 March 2025)."""
    try:
        return datetime.fromisoformat(value).astimezone(timezone.utc).strftime("%d %B %Y")
    except (TypeError, ValueError):
        return "-"


def fmt_num(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def short(text, limit: int = 60) -> str:
    """Visitor input as it may appear in a message: one line, bounded."""
    text = re.sub(r"\s+", " ", str(text))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_user_param(user: str) -> str:
    from deeprl.certification import check_user

    try:
        return check_user(user)
    except UserError:
        raise HTTPException(404, f"'{short(user)}' is not a hub username.") from None


@lru_cache(maxsize=None)
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
            item = out.setdefault(alts[0], {"env": alts[0], "description": env_description(alts[0]),
                                            "needs": [], "minimum": None})
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


def _version() -> str:
    from deeprl import __version__

    return __version__


def validation_message(exc: RequestValidationError) -> str:
    err = (exc.errors() or [{}])[0]
    where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "the request"
    return f"Bad value for {short(where, 40)}: {short(err.get('msg', 'invalid'), 120).rstrip('.')}."


def clean_errors(exc: RequestValidationError) -> list[dict]:
    """FastAPI's 422 detail without the 'input' it echoes (a 100 KB query string came back whole)."""
    return [{"loc": [short(p, 60) if isinstance(p, str) else p for p in e.get("loc", ())],
             "msg": short(e.get("msg", ""), 200), "type": short(e.get("type", ""), 60)} for e in exc.errors()[:10]]


# ---------------------------------------------------------------------------------------------------------
# The app


def create_app(hub: str = "local", url: str | None = None, *, index_on_start: bool = False,
               index_kwargs: dict | None = None, admin_token: str | None = None, public: bool = False,
               watch_interval_s: float | None = WATCH_INTERVAL_S, trusted_hosts: tuple[str, ...] | None = None,
               cooldown_s: float | None = None, league_every_s: float | None = None) -> FastAPI:
    """`public`: the server listens beyond loopback, so refresh needs the admin token even from the page.
    `watch_interval_s`: how often to look for new pushes (None: never; only the local hub is watched).
    `league_every_s`: play a SoccerTwos league round this often in the background (None: never)."""
    from deeprl import certification
    from deeprl import leaderboard as lb
    from deeprl.certification import certificate_bytes, certificate_filename, missing_sentence, progress

    refresher = Refresher(hub, url, index_kwargs, **({} if cooldown_s is None else {"cooldown_s": cooldown_s}))
    watcher = None
    if watch_interval_s and hub == "local":
        from deeprl.paths import home

        watcher = HubWatcher(refresher, home() / "hub", watch_interval_s, index_now=index_on_start)
    league = None
    if league_every_s:
        from deeprl.league.runner import Scheduler

        league = Scheduler(league_every_s, hub, url)

    @asynccontextmanager
    async def lifespan(_app):
        if watcher is not None:
            watcher.start()
        elif index_on_start:
            refresher.start()
        if league is not None:
            league.start()
        yield
        if league is not None:
            league.stop()
        if watcher is not None:
            watcher.stop()
        data_version.close()

    app = FastAPI(title="deeprl leaderboard", version=_version(), lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Verified Deep RL Course leaderboards, model pages and certification progress. "
                              "Every figure is re-measured by the course protocol, never copied from a card.")
    app.state.hub, app.state.url = hub, url
    app.state.refresher, app.state.watcher = refresher, watcher
    app.state.public, app.state.admin_token = public, admin_token
    needs_token = bool(admin_token) or public
    db.get_engine(url)  # create tables before the first request
    data_version = DataVersion(url)
    app.state.cache = None

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["t"] = fmt_time
    templates.env.filters["num"] = fmt_num
    templates.env.filters["day"] = fmt_day
    templates.env.globals["quote"] = lambda s: quote(str(s), safe="/")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    bearer_scheme = HTTPBearer(auto_error=False, description="The server's admin token (--admin-token or "
                                                            "DEEPRL_ADMIN_TOKEN).")
    accepts_url = "url" in inspect.signature(certificate_bytes).parameters

    def page(request: Request, name: str, status_code: int = 200, cache: bool = False, **ctx) -> Response:
        ctx.setdefault("refresh", refresher.status())
        ctx.setdefault("hub", hub)
        ctx.setdefault("watching", watcher is not None)
        resp = templates.TemplateResponse(request, name, ctx, status_code=status_code)
        return mark_cacheable(resp) if cache else resp

    def error_page(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
        resp = page(request, "error.html", status_code=status, message=message, status=status)
        resp.headers.update(headers or {})
        return resp

    def is_api(request: Request) -> bool:
        return request.url.path.startswith(("/api/", "/openapi"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path with GET and POST routes needs both
            from starlette.routing import Match

            methods = set()
            for route in app.router.routes:
                if route.matches(request.scope)[0] != Match.NONE and getattr(route, "methods", None):
                    methods |= set(route.methods)
            headers["Allow"] = ", ".join(sorted(methods))
        detail = exc.detail if isinstance(exc.detail, str) else "Request refused."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "There is no page at this address."
        if is_api(request):
            return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)
        return error_page(request, exc.status_code, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        if is_api(request):
            return JSONResponse({"detail": clean_errors(exc)}, status_code=422)
        return error_page(request, 422, validation_message(exc))

    # -- data shared by pages and API ---------------------------------------------------------------------------

    def board(env: str, page_no: int, per_page: int, sort: str, order: str | None, user: str | None) -> dict:
        course = course_env(env)
        with db.session(url) as s:
            if course is None and not _registry_has(env) and s.scalar(
                    select(db.Evaluation.id).where(db.Evaluation.env == env).limit(1)) is None:
                raise HTTPException(404, f"No leaderboard for '{short(env)}'.")
            rows, total = lb.ranking(s, env, hub=hub, user=user or None, sort=sort, order=order,
                                     offset=(page_no - 1) * per_page, limit=per_page)
            errors = lb.unranked(s, env, hub=hub)
        pages = max(1, -(-total // per_page))
        return {"env": env, "rows": rows, "total": total, "page": page_no, "per_page": per_page, "pages": pages,
                "errors": errors, "description": env_description(env),
                "minimum": course["minimum"] if course else None, "needs": course["needs"] if course else []}

    def model(ns: str, name: str, revision: str | None) -> dict:
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

    @lru_cache(maxsize=4096)
    def _folder(repo_id: str, revision: str) -> Path:
        from deeprl.hub import get_hub, validate_repo_id

        validate_repo_id(repo_id)
        return Path(get_hub(hub).download(repo_id, revision=revision))

    def repo_folder(repo_id: str, revision: str) -> Path | None:
        try:
            return _folder(repo_id, revision)
        except Exception:  # gone from the hub, or the hub unreachable: not cached, the next request tries again
            return None

    def user_progress(user: str) -> dict:
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

    def verify(cert_id: str) -> dict:
        fn = getattr(certification, "verify_certificate", None)
        found = fn(cert_id, url=url) if fn is not None else None
        if not found:
            raise HTTPException(404, "No certificate has this verification id.")
        return found

    # -- pages ----------------------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        with db.session(url) as s:
            envs = lb.env_summaries(s, hub=hub)
            lost = lb.unranked(s, None, hub=hub)
        have = {e["env"] for e in envs}
        rows = [{**e, "description": env_description(e["env"]), "course": course_env(e["env"])} for e in envs]
        rows += [{"env": c["env"], "models": 0, "users": 0, "best_result": None, "last_push": None, "unranked": 0,
                  "description": c["description"], "course": c} for c in course_envs() if c["env"] not in have]
        return page(request, "home.html", cache=True, envs=rows, lost=lost,
                    total_models=sum(e["models"] for e in envs))

    @app.get("/leaderboard/{env}", include_in_schema=False)
    def leaderboard_page(request: Request, env: str = PathParam(pattern=ENV_PATTERN),
                         page_no: int = Query(1, ge=1, le=PAGE_MAX, alias="page"),
                         per_page: int = Query(50, ge=1, le=PER_PAGE_MAX), sort: SortKey = "rank",
                         order: Order | None = None, user: str | None = Query(None, max_length=100)):
        b = board(env, page_no, per_page, sort, order, user)

        def link(**changes):
            params = {"page": page_no, "per_page": per_page, "sort": sort, "order": order, "user": user}
            params.update(changes)
            return f"/leaderboard/{quote(env)}?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})

        def sort_link(key):
            desc_default = key in ("result", "mean_reward", "std_reward", "pushed_at")
            current_desc = (order == "desc") if order else desc_default
            new = ("asc" if current_desc else "desc") if key == sort else ("desc" if desc_default else "asc")
            return link(sort=key, order=new, page=1)

        return page(request, "leaderboard.html", cache=True, b=b, link=link, sort_link=sort_link, sort=sort,
                    order=order, user=user or "", course=course_envs())

    @app.get("/models/{ns}/{name}", include_in_schema=False)
    def model_page(request: Request, ns: str = PathParam(pattern=PART_PATTERN),
                   name: str = PathParam(pattern=PART_PATTERN),
                   revision: str | None = Query(None, pattern=REV_PATTERN)):
        return page(request, "model.html", cache=True, m=model(ns, name, revision))

    @app.get("/models/{ns}/{name}/files/{path:path}", include_in_schema=False)
    def model_file(ns: str = PathParam(pattern=PART_PATTERN), name: str = PathParam(pattern=PART_PATTERN),
                   path: str = PathParam(..., max_length=500),
                   revision: str | None = Query(None, pattern=REV_PATTERN)):
        repo_id = f"{ns}/{name}"
        with db.session(url) as s:
            repo = db.get_repo(s, repo_id, hub)
            latest = repo.latest_revision if repo else None
            known = repo is not None and (revision is None or s.scalar(
                select(db.Evaluation.id).where(db.Evaluation.repo_pk == repo.id,
                                               db.Evaluation.revision == revision)) is not None)
        if not known or (revision or latest) is None:
            raise HTTPException(404, "No such model or revision in the index.")
        folder = repo_folder(repo_id, revision or latest)
        target = safe_file(folder, path) if folder else None
        if target is None:
            raise HTTPException(404, "No such file in this model.")
        media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix in (".md", ".txt", ".yml", ".yaml", ".csv", ".log"):
            media = "text/plain"
        headers = {"Content-Security-Policy": "sandbox; default-src 'none'",
                   "Cache-Control": "public, max-age=3600" if revision else "no-cache"}
        if media not in INLINE_TYPES:
            return FileResponse(target, media_type="application/octet-stream", filename=target.name, headers=headers)
        return FileResponse(target, media_type=media + ("; charset=utf-8" if media == "text/plain" else ""),
                            headers=headers)

    @app.get("/users/{user}", include_in_schema=False)
    def progress_page(request: Request, user: str = PathParam(max_length=100)):
        token, new = security.csrf_token(request)
        resp = page(request, "progress.html", p=user_progress(user), csrf=token)
        if new:
            security.set_csrf_cookie(resp, token)
        return resp

    @app.post("/users/{user}/certificate", include_in_schema=False)
    def certificate(request: Request, user: str = PathParam(max_length=100),
                    first_name: str = Form(..., min_length=1, max_length=NAME_MAX),
                    last_name: str = Form(..., min_length=1, max_length=NAME_MAX),
                    format: Literal["pdf", "png"] = Form("pdf"), csrf: str = Form("", max_length=100)):
        if not security.same_origin(request) or not security.csrf_ok(request, csrf):
            return error_page(request, 403, "This form did not come from this site's own page; reload the "
                                            "progress page and try again.")
        p = user_progress(user)
        when = datetime.now(timezone.utc).date()
        try:
            data = certificate_bytes(p, first_name, last_name, format, when,
                                     **({"url": url} if accepts_url else {}))
        except UserError as exc:
            return error_page(request, 409 if p["level"] is None else 422, str(exc))
        headers = {"Content-Disposition": f'attachment; filename="{certificate_filename(p["user"], format)}"',
                   "Cache-Control": "no-store"}
        issue = getattr(certification, "issue_certificate", None)
        if issue is not None:  # recorded already by certificate_bytes: this only reads its id back
            headers["X-Certificate-Id"] = issue(p, first_name, last_name, when, url=url)
        return Response(data, media_type="application/pdf" if format == "pdf" else "image/png", headers=headers)

    @app.get("/users", include_in_schema=False)
    def find_user(user: str = Query("", max_length=100)):
        user = user.strip()
        return RedirectResponse(f"/users/{quote(user)}" if user else "/", status_code=303)

    @app.get("/certificates/{cert_id}", include_in_schema=False)
    def certificate_page(request: Request, cert_id: str = PathParam(pattern=CERT_PATTERN)):
        return page(request, "certificate.html", cache=True, c=verify(cert_id))

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request, done: Literal["started", "running", "cooling", "refused"] | None = None):
        token, new = security.csrf_token(request)
        resp = page(request, "admin.html", csrf=token, needs_token=needs_token,
                    refresh_off=public and not admin_token, flash=FLASHES.get(done or ""))
        if new:
            security.set_csrf_cookie(resp, token)
        return resp

    @app.post("/admin/refresh", include_in_schema=False)
    def admin_refresh(request: Request, csrf: str = Form("", max_length=100),
                      token: str = Form("", max_length=1000)):
        if not security.same_origin(request) or not security.csrf_ok(request, csrf) \
                or (needs_token and not security.token_ok(admin_token, token)):
            return RedirectResponse("/admin?done=refused", status_code=303)
        return RedirectResponse(f"/admin?done={refresher.start(manual=True)}", status_code=303)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request):
        return page(request, "docs.html", cache=True, ops=api_operations(app.openapi()))

    @app.get("/redoc", include_in_schema=False)
    def redoc():
        return RedirectResponse("/docs", status_code=308)

    # -- JSON API -------------------------------------------------------------------------------------------------

    @app.get("/api/envs", response_model=list[EnvSummary], tags=["leaderboard"],
             summary="Environments with ranked models, with counts")
    def api_envs():
        with db.session(url) as s:
            return mark_cacheable(JSONResponse(lb.env_summaries(s, hub=hub)))

    @app.get("/api/leaderboard/{env}", response_model=Board, responses=NOT_FOUND, tags=["leaderboard"],
             summary="One environment's leaderboard (latest revision of each repo, verified result)")
    def api_board(env: str = PathParam(pattern=ENV_PATTERN, max_length=100),
                  page: int = Query(1, ge=1, le=PAGE_MAX), per_page: int = Query(50, ge=1, le=PER_PAGE_MAX),
                  sort: SortKey = "rank", order: Order | None = None,
                  user: str | None = Query(None, max_length=100)):
        b = board(env, page, per_page, sort, order, user)
        return mark_cacheable(JSONResponse(Board.model_validate(b).model_dump()))

    @app.get("/api/models/{ns}/{name}", response_model=ModelOut, responses=NOT_FOUND, tags=["models"],
             summary="A model: every indexed revision with claimed and verified figures, its files")
    def api_model(ns: str = PathParam(pattern=PART_PATTERN, max_length=96),
                  name: str = PathParam(pattern=PART_PATTERN, max_length=96),
                  revision: str | None = Query(None, pattern=REV_PATTERN)):
        return mark_cacheable(JSONResponse(ModelOut.model_validate(model(ns, name, revision)).model_dump()))

    @app.get("/api/users/{user}/progress", response_model=ProgressOut, responses=NOT_FOUND, tags=["certification"],
             summary="A user's course assignments: passed or not, best model and its rank, what is missing")
    def api_progress(user: str = PathParam(pattern=PART_PATTERN, max_length=96)):
        return mark_cacheable(JSONResponse(ProgressOut.model_validate(user_progress(user)).model_dump()))

    @app.get("/api/certificates/{cert_id}", response_model=CertificateOut, responses=NOT_FOUND,
             tags=["certification"], summary="Verify a certificate by the id printed on it")
    def api_certificate(cert_id: str = PathParam(pattern=CERT_PATTERN)):
        return mark_cacheable(JSONResponse(CertificateOut.model_validate(verify(cert_id)).model_dump()))

    @app.get("/api/refresh", response_model=RefreshOut, tags=["index"], summary="State of the background index")
    def api_refresh_status():
        return refresher.status()

    @app.post("/api/refresh", response_model=RefreshOut, status_code=202, tags=["index"],
              responses={401: {"model": Message, "description": "The admin token is missing or wrong"},
                         403: {"model": Message, "description": "Refused: no admin token is set on this server, "
                                                               "or the request came from another site"},
                         409: {"model": RefreshOut, "description": "An index run is already running"},
                         429: {"model": Message, "description": "An index run was started moments ago"}},
              summary="Index the hub now (admin token; pushes are indexed on their own within seconds)")
    def api_refresh(request: Request, _auth=Depends(bearer_scheme)):
        if not security.same_origin(request):
            raise HTTPException(403, "Refused: the request came from another site.")
        given = security.bearer(request)
        if given is not None and not admin_token:
            raise HTTPException(403, "This server has no admin token; start it with --admin-token or "
                                     "DEEPRL_ADMIN_TOKEN to refresh through the API.")
        if not security.token_ok(admin_token, given):
            raise HTTPException(401, "The admin token is missing or wrong.", headers={"WWW-Authenticate": "Bearer"})
        state = refresher.start(manual=True)
        if state == "cooling":
            wait = refresher.retry_after()
            return JSONResponse({"detail": f"An index run was started moments ago; try again in {wait} s."},
                                status_code=429, headers={"Retry-After": str(wait)})
        if state == "running":
            return JSONResponse(refresher.status("already running"), status_code=409)
        return refresher.status("started")

    from deeprl.web.league import league_router

    app.include_router(league_router(hub=hub, url=url, page=page, scheduler=league))
    app.add_middleware(PageCache, version=lambda: (data_version(), refresher.generation))
    app.add_middleware(security.SecurityHeaders, trusted_hosts=trusted_hosts)
    return app


def api_operations(schema: dict) -> list[dict]:
    """The API's operations as the /docs page lists them (rendered here: no script, nothing from a CDN)."""
    ops = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            params = []
            for p in op.get("parameters", []):
                s = p.get("schema", {})
                kind = s.get("type") or " | ".join(x.get("type", "?") for x in s.get("anyOf", [])) \
                    or ", ".join(map(str, s.get("enum", [])))
                bounds = [f"{k} {s[k]}" for k in ("minimum", "maximum", "maxLength", "pattern", "enum") if k in s]
                params.append({"name": p["name"], "in": p["in"], "required": p.get("required", False),
                               "type": kind, "bounds": "; ".join(map(str, bounds)), "default": s.get("default")})
            ops.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                        "tags": op.get("tags", []), "params": params,
                        "auth": bool(op.get("security")),
                        "responses": [(code, r.get("description", "")) for code, r in op.get("responses", {}).items()]})
    return ops
