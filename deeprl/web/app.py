"""FastAPI app: pages rendered on the server with Jinja2 (no build step), the same data as JSON under /api.

Pages answer from what the indexer stored: the figures, the card (rendered and sanitized once, at indexing, in a
limited child process) and the file list. No page request parses Markdown or YAML or starts a git process; only
a file's bytes (the replay) are read from the hub folder, whose path is resolved once per (repo, revision).

Everything a visitor sends is checked before it touches the disk or the database: repo ids by the hub's rules,
numbers within bounds, revisions against the ones the index has seen, file paths inside the repo folder only.

The routes live in one router per area (boards, models, users, admin, docs, api, league); this module builds the
app, puts what they share on app.state (hub, url, refresher, watcher, folders, admin token, public flag), and
answers errors: JSON under /api, a page everywhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from deeprl import db
from deeprl.dispatch import DispatchOptions
from deeprl.web import admin, api, boards, docs, models, security, users
from deeprl.web.cache import DataVersion, PageCache
from deeprl.web.data import RepoFolders, short
from deeprl.web.indexing import WATCH_INTERVAL_S, HubWatcher, Refresher
from deeprl.web.render import HERE, error_page, page


def create_app(
    hub: str = "local",
    url: str | None = None,
    *,
    index_on_start: bool = False,
    index_kwargs: dict | None = None,
    admin_token: str | None = None,
    public: bool = False,
    watch_interval_s: float | None = WATCH_INTERVAL_S,
    trusted_hosts: tuple[str, ...] | None = None,
    cooldown_s: float | None = None,
    league_every_s: float | None = None,
    dispatch: DispatchOptions | None = None,
) -> FastAPI:
    """`public`: the server listens beyond loopback, so refresh needs the admin token even from the page.
    `watch_interval_s`: how often to look for new pushes (None: never; only the local hub is watched).
    `league_every_s`: play a SoccerTwos league round this often in the background (None: never).
    `dispatch`: where index evaluations and league matches run (deeprl.dispatch; None: a local pool)."""
    if dispatch is not None:
        index_kwargs = {**(index_kwargs or {}), "dispatch": dispatch}
    refresher = Refresher(hub, url, index_kwargs, **({} if cooldown_s is None else {"cooldown_s": cooldown_s}))
    watcher = None
    if watch_interval_s and hub == "local":
        from deeprl.paths import home

        watcher = HubWatcher(refresher, home() / "hub", watch_interval_s, index_now=index_on_start)
    league = None
    if league_every_s:
        from deeprl.league.runner import Scheduler, Settings

        league = Scheduler(league_every_s, hub, url, Settings(dispatch=dispatch))

    app = FastAPI(
        title="deeprl leaderboard",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Verified Deep RL Course leaderboards, model pages and certification progress. "
        "Every figure is re-measured by the course protocol, never copied from a card.",
    )
    app.state.hub, app.state.url = hub, url
    app.state.refresher, app.state.watcher, app.state.league = refresher, watcher, league
    app.state.index_on_start = index_on_start
    app.state.public, app.state.admin_token = public, admin_token
    app.state.folders = RepoFolders(hub)
    db.get_engine(url)  # create tables before the first request
    data_version = DataVersion(url)
    app.state.data_version = data_version
    app.state.cache = None

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    from deeprl.web.league import league_router

    # in the order the routes were declared before the split: the OpenAPI schema lists them in this order
    routers = [area.router for area in (boards, models, users, admin, docs, api)]
    routers.append(league_router(hub=hub, url=url, page=page, scheduler=league))
    from deeprl.web.huggy import huggy_router

    routers.append(huggy_router(hub=hub, page=page))
    for router in routers:
        app.include_router(router)
    app.state.routers = routers  # the 405 handler reads their routes (see http_error)
    app.add_middleware(PageCache, version=lambda: (data_version(), refresher.generation))
    app.add_middleware(security.SecurityHeaders, trusted_hosts=trusted_hosts)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the hub watcher (or one index run) and the league's rounds with the server; stop them with it."""
    state = app.state
    if state.watcher is not None:
        state.watcher.start()
    elif state.index_on_start:
        state.refresher.start()
    if state.league is not None:
        state.league.start()
    yield
    if state.league is not None:
        state.league.stop()
    if state.watcher is not None:
        state.watcher.stop()
    state.data_version.close()


def _version() -> str:
    from deeprl.version import __version__

    return __version__


def is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/openapi"))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # registered for this type only
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; a path with GET and POST routes needs both
        from starlette.routing import Match

        # FastAPI 0.16x keeps an included router as one entry of app.router.routes, without methods of its own:
        # the routers' own routes are read as well (with older versions they are the app's, and counted twice)
        routes = [*request.app.router.routes, *(r for router in request.app.state.routers for r in router.routes)]
        methods: set[str] = set()
        for route in routes:
            if route.matches(request.scope)[0] != Match.NONE and getattr(route, "methods", None):
                methods |= set(route.methods)
        headers["Allow"] = ", ".join(sorted(methods))
    detail = exc.detail if isinstance(exc.detail, str) else "Request refused."
    if exc.status_code == 404 and detail == "Not Found":
        detail = "There is no page at this address."
    if is_api(request):
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)
    return error_page(request, exc.status_code, detail, headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # registered for this type only
    if is_api(request):
        return JSONResponse({"detail": clean_errors(exc)}, status_code=422)
    return error_page(request, 422, validation_message(exc))


def validation_message(exc: RequestValidationError) -> str:
    err = (exc.errors() or [{}])[0]
    where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "the request"
    return f"Bad value for {short(where, 40)}: {short(err.get('msg', 'invalid'), 120).rstrip('.')}."


def clean_errors(exc: RequestValidationError) -> list[dict]:
    """FastAPI's 422 detail without the 'input' it echoes (a 100 KB query string came back whole)."""
    return [
        {
            "loc": [short(p, 60) if isinstance(p, str) else p for p in e.get("loc", ())],
            "msg": short(e.get("msg", ""), 200),
            "type": short(e.get("type", ""), 60),
        }
        for e in exc.errors()[:10]
    ]
