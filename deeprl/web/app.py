"""FastAPI app: pages rendered on the server with Jinja2 (no build step), the same data as JSON under /api.

Everything a visitor sends is checked before it touches the disk: repo ids by the hub's rules, revisions against
the ones the index has seen, file paths inside the repo folder only (no '..', no hidden files, no symlinks out).
Model cards are Markdown written by strangers: raw HTML in them is shown as text and the rendered HTML goes
through nh3's allow-list, so a <script> or an onerror= attribute never reaches the browser as markup.
"""

from __future__ import annotations

import math
import mimetypes
import re
import threading
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel
from sqlalchemy import select

from deeprl import db
from deeprl.errors import UserError

HERE = Path(__file__).parent
ENV_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$"
PART_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?$"
REV_PATTERN = r"^[0-9a-f]{7,64}$"
NAME_MAX = 60
PER_PAGE_MAX = 500
SortKey = Literal["rank", "result", "mean_reward", "std_reward", "pushed_at", "repo_id", "user"]
Order = Literal["asc", "desc"]
# files a browser may show inline; anything else (an .html in a repo included) downloads as bytes
INLINE_TYPES = {"video/mp4", "image/png", "image/jpeg", "image/gif", "application/json", "text/plain"}
PAGE_CSP = ("default-src 'self'; img-src 'self' data: https:; media-src 'self'; style-src 'self'; "
            "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


# ---------------------------------------------------------------------------------------------------------
# API schema


class Row(BaseModel):
    rank: int
    repo_id: str
    user: str
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


class RefreshOut(BaseModel):
    status: str
    running: bool
    started_at: str | None
    finished_at: str | None
    last_report: dict | None
    last_error: str | None


class Message(BaseModel):
    detail: str


ERRORS = {404: {"model": Message, "description": "Not found"}}


# ---------------------------------------------------------------------------------------------------------
# Background refresh: one index run at a time


class Refresher:
    def __init__(self, hub: str, url: str | None, index_kwargs: dict | None = None):
        self.hub, self.url, self.index_kwargs = hub, url, dict(index_kwargs or {})
        self._lock = threading.Lock()
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.last_report: dict | None = None
        self.last_error: str | None = None
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def start(self) -> bool:
        """Start an index run in a thread; False when one is already running (nothing is queued)."""
        if not self._lock.acquire(blocking=False):
            return False
        self.started_at, self.finished_at = db.utcnow(), None
        self.thread = threading.Thread(target=self._run, name="deeprl-refresh", daemon=True)
        self.thread.start()
        return True

    def _run(self) -> None:
        from deeprl.leaderboard import index

        try:
            self.last_report = index(self.hub, url=self.url, **self.index_kwargs).to_dict()
            self.last_error = None
        except Exception as exc:  # shown on the page; the server keeps serving the last good figures
            self.last_error = f"{exc.__class__.__name__}: {exc}" if not isinstance(exc, UserError) else str(exc)
        finally:
            self.finished_at = db.utcnow()
            self._lock.release()

    def status(self, status: str | None = None) -> dict:
        return {"status": status or ("running" if self.running else "idle"), "running": self.running,
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "last_report": self.last_report, "last_error": self.last_error}


def _iso(dt):
    return None if dt is None else dt.isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------------
# Helpers


def render_card(text: str) -> tuple[str, dict]:
    """(safe HTML of the card body, front matter): raw HTML is escaped to text, then nh3 allow-lists the rest."""
    import markdown
    import nh3
    import yaml

    meta: dict = {}
    m = re.match(r"^---\s*\n(.*?)\n---\s*(?:\n|$)", text, re.S)
    if m:
        try:
            loaded = yaml.safe_load(m.group(1))
            meta = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            meta = {}
        text = text[m.end():]
    md = markdown.Markdown(extensions=["tables", "fenced_code"])
    md.preprocessors.deregister("html_block")  # raw HTML blocks become escaped text
    md.inlinePatterns.deregister("html")  # and so do inline tags
    html = md.convert(text)
    tags = {"a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
            "img", "li", "ol", "p", "pre", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul"}
    clean = nh3.clean(html, tags=tags, attributes={"a": {"href", "title"}, "img": {"src", "alt", "title"},
                                                  "th": {"align"}, "td": {"align"}},
                      url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
    return clean, meta


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


def list_files(root: Path) -> list[tuple[str, int]]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or p.is_symlink() or not p.is_file():
            continue
        out.append((rel, p.stat().st_size))
    return out


def fmt_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        dt = datetime.fromisoformat(value).astimezone(timezone.utc)
    except ValueError:
        return value
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def fmt_num(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def check_user_param(user: str) -> str:
    from deeprl.certification import check_user

    try:
        return check_user(user)
    except UserError:
        raise HTTPException(404, f"'{user}' is not a hub username.") from None


def local_next(url: str | None) -> str:
    """Where to go back after a form: a path on this site only (no open redirect)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url or len(url) > 1000:
        return "/"
    return url


# ---------------------------------------------------------------------------------------------------------
# The app


def create_app(hub: str = "local", url: str | None = None, *, index_on_start: bool = False,
               index_kwargs: dict | None = None) -> FastAPI:
    from deeprl import leaderboard as lb
    from deeprl.certification import certificate_bytes, certificate_filename, missing_sentence, progress

    @asynccontextmanager
    async def lifespan(_app):
        if index_on_start:  # so a fresh server shows the latest pushes without a click
            app.state.refresher.start()
        yield

    app = FastAPI(title="deeprl leaderboard", version=_version(), lifespan=lifespan,
                  description="Verified Deep RL Course leaderboards, model pages and certification progress. "
                              "Every figure is re-measured by the course protocol, never copied from a card.")
    app.state.hub, app.state.url = hub, url
    app.state.refresher = refresher = Refresher(hub, url, index_kwargs)
    db.get_engine(url)  # create tables before the first request

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["t"] = fmt_time
    templates.env.filters["num"] = fmt_num
    templates.env.globals["quote"] = lambda s: quote(str(s), safe="/")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status_code: int = 200, **ctx) -> Response:
        ctx.setdefault("refresh", refresher.status())
        ctx.setdefault("hub", hub)
        resp = templates.TemplateResponse(request, name, ctx, status_code=status_code)
        resp.headers["Content-Security-Policy"] = PAGE_CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path with GET and POST routes needs both
            from starlette.routing import Match

            methods = set()
            for route in app.router.routes:
                if route.matches(request.scope)[0] != Match.NONE and getattr(route, "methods", None):
                    methods |= set(route.methods)
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
        if request.url.path.startswith("/api") or request.url.path.startswith("/openapi"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return page(request, "error.html", status_code=exc.status_code, message=exc.detail,
                    status=exc.status_code)

    # -- data shared by pages and API ---------------------------------------------------------------------------

    def board(env: str, page_no: int, per_page: int, sort: str, order: str | None, user: str | None) -> dict:
        with db.session(url) as s:
            if not _registry_has(env) and s.scalar(select(db.Evaluation.id).where(db.Evaluation.env == env)
                                                   .limit(1)) is None:
                raise HTTPException(404, f"No leaderboard for '{env}'.")
            rows, total = lb.ranking(s, env, hub=hub, user=user or None, sort=sort, order=order,
                                     offset=(page_no - 1) * per_page, limit=per_page)
            errors = lb.unranked(s, env, hub=hub)
        pages = max(1, -(-total // per_page))
        return {"env": env, "rows": rows, "total": total, "page": page_no, "per_page": per_page, "pages": pages,
                "errors": errors}

    def model(ns: str, name: str, revision: str | None) -> dict:
        repo_id = f"{ns}/{name}"
        with db.session(url) as s:
            detail = lb.model_detail(s, repo_id, hub=hub)
        if detail is None:
            raise HTTPException(404, f"No model '{repo_id}' in the index; push it, then refresh.")
        known = {r["revision"] for r in detail["revisions"]}
        if revision is not None and revision not in known:
            raise HTTPException(404, f"Revision '{revision}' of '{repo_id}' has not been indexed.")
        rev = revision or detail["latest_revision"]
        detail["revision"] = rev
        folder = repo_folder(repo_id, rev)
        files = list_files(folder) if folder else []
        base = f"/models/{repo_id}/files/"
        q = f"?revision={rev}" if rev else ""
        detail["files"] = [{"path": p, "size": n, "url": base + quote(p) + q} for p, n in files]
        detail["video_url"] = base + "replay.mp4" + q if any(p == "replay.mp4" for p, _ in files) else None
        detail["card_html"], detail["card_meta"] = None, {}
        if folder and (folder / "README.md").is_file():
            text = (folder / "README.md").read_text(encoding="utf-8", errors="replace")[:200_000]
            detail["card_html"], detail["card_meta"] = render_card(text)
        return detail

    def repo_folder(repo_id: str, revision: str | None) -> Path | None:
        from deeprl.hub import get_hub, validate_repo_id

        try:
            validate_repo_id(repo_id)
            return Path(get_hub(hub).download(repo_id, revision=revision))
        except Exception:  # gone from the hub, or the hub is unreachable: the page shows the figures only
            return None

    def user_progress(user: str) -> dict:
        p = progress(check_user_param(user), hub=hub, url=url)
        p["missing"] = None if p["level"] else missing_sentence(p)
        return p

    # -- pages ----------------------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        with db.session(url) as s:
            envs = lb.env_summaries(s, hub=hub)
            lost = lb.unranked(s, None, hub=hub)
        return page(request, "home.html", envs=envs, lost=lost, total_models=sum(e["models"] for e in envs),
                    flash=request.query_params.get("refresh"))

    @app.get("/leaderboard/{env}", include_in_schema=False)
    def leaderboard_page(request: Request, env: str = PathParam(pattern=ENV_PATTERN), page_no: int = Query(1, ge=1, alias="page"),
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

        return page(request, "leaderboard.html", b=b, link=link, sort_link=sort_link, sort=sort, order=order,
                    user=user or "", flash=request.query_params.get("refresh"))

    @app.get("/models/{ns}/{name}", include_in_schema=False)
    def model_page(request: Request, ns: str = PathParam(pattern=PART_PATTERN),
                   name: str = PathParam(pattern=PART_PATTERN),
                   revision: str | None = Query(None, pattern=REV_PATTERN)):
        return page(request, "model.html", m=model(ns, name, revision))

    @app.get("/models/{ns}/{name}/files/{path:path}", include_in_schema=False)
    def model_file(ns: str = PathParam(pattern=PART_PATTERN), name: str = PathParam(pattern=PART_PATTERN),
                   path: str = PathParam(...), revision: str | None = Query(None, pattern=REV_PATTERN)):
        repo_id = f"{ns}/{name}"
        with db.session(url) as s:
            repo = db.get_repo(s, repo_id, hub)
            known = {e.revision for e in repo.evaluations} if repo else set()
            latest = repo.latest_revision if repo else None
        if repo is None or (revision is not None and revision not in known):
            raise HTTPException(404, "No such model or revision in the index.")
        folder = repo_folder(repo_id, revision or latest)
        target = safe_file(folder, path) if folder else None
        if target is None:
            raise HTTPException(404, "No such file in this model.")
        media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix in (".md", ".txt", ".yml", ".yaml", ".csv", ".log"):
            media = "text/plain"
        headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'",
                   "Cache-Control": "public, max-age=3600" if revision else "no-cache"}
        if media not in INLINE_TYPES:
            return FileResponse(target, media_type="application/octet-stream", filename=target.name, headers=headers)
        return FileResponse(target, media_type=media + ("; charset=utf-8" if media == "text/plain" else ""),
                            headers=headers)

    @app.get("/users/{user}", include_in_schema=False)
    def progress_page(request: Request, user: str):
        return page(request, "progress.html", p=user_progress(user))

    @app.get("/users/{user}/certificate.{fmt}", include_in_schema=False)
    def certificate(request: Request, user: str, fmt: Literal["pdf", "png"],
                    first_name: str = Query(..., min_length=1, max_length=NAME_MAX),
                    last_name: str = Query(..., min_length=1, max_length=NAME_MAX)):
        p = user_progress(user)
        try:
            data = certificate_bytes(p, first_name, last_name, fmt)
        except UserError as exc:
            return page(request, "error.html", status_code=409 if p["level"] is None else 422, message=str(exc),
                        status=409 if p["level"] is None else 422)
        media = "application/pdf" if fmt == "pdf" else "image/png"
        return Response(data, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{certificate_filename(p["user"], fmt)}"',
            "X-Content-Type-Options": "nosniff"})

    @app.get("/users", include_in_schema=False)
    def find_user(user: str = Query("", max_length=100)):
        user = user.strip()
        return RedirectResponse(f"/users/{quote(user)}" if user else "/", status_code=303)

    @app.post("/refresh", include_in_schema=False)
    def refresh_form(next: str = Form("/")):
        started = refresher.start()
        target = local_next(next)
        sep = "&" if "?" in target else "?"
        target = re.sub(r"[?&]refresh=[a-z]+", "", target)
        sep = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{sep}refresh={'started' if started else 'running'}", status_code=303)

    # -- JSON API -------------------------------------------------------------------------------------------------

    @app.get("/api/envs", response_model=list[EnvSummary], tags=["leaderboard"],
             summary="Environments with ranked models, with counts")
    def api_envs():
        with db.session(url) as s:
            return lb.env_summaries(s, hub=hub)

    @app.get("/api/leaderboard/{env}", response_model=Board, responses=ERRORS, tags=["leaderboard"],
             summary="One environment's leaderboard (latest revision of each repo, verified result)")
    def api_board(env: str = PathParam(pattern=ENV_PATTERN, max_length=100), page: int = Query(1, ge=1, le=10**6),
                  per_page: int = Query(50, ge=1, le=PER_PAGE_MAX), sort: SortKey = "rank",
                  order: Order | None = None, user: str | None = Query(None, max_length=100)):
        return board(env, page, per_page, sort, order, user)

    @app.get("/api/models/{ns}/{name}", response_model=ModelOut, responses=ERRORS, tags=["models"],
             summary="A model: every indexed revision with claimed and verified figures, its files")
    def api_model(ns: str = PathParam(pattern=PART_PATTERN, max_length=96),
                  name: str = PathParam(pattern=PART_PATTERN, max_length=96),
                  revision: str | None = Query(None, pattern=REV_PATTERN)):
        return model(ns, name, revision)

    @app.get("/api/users/{user}/progress", response_model=ProgressOut, responses=ERRORS, tags=["certification"],
             summary="A user's course assignments: passed or not, best model, what is missing")
    def api_progress(user: str = PathParam(pattern=PART_PATTERN, max_length=96)):
        return user_progress(user)

    @app.get("/api/refresh", response_model=RefreshOut, tags=["index"], summary="State of the background index")
    def api_refresh_status():
        return refresher.status()

    @app.post("/api/refresh", response_model=RefreshOut, status_code=202, tags=["index"],
              responses={409: {"model": RefreshOut, "description": "An index run is already running"}},
              summary="Index the hub in the background (one run at a time; never queued)")
    def api_refresh():
        if refresher.start():
            return refresher.status("started")
        return JSONResponse(refresher.status("already running"), status_code=409)

    return app


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
