"""The JSON API under /api: the same data as the pages (leaderboards, models, progress, certificates) and the
background index's state, with a refresh that needs the admin token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from deeprl import db
from deeprl.web import security
from deeprl.web.cache import mark_cacheable
from deeprl.web.data import (
    CERT_PATTERN,
    ENV_PATTERN,
    PAGE_MAX,
    PART_PATTERN,
    PER_PAGE_MAX,
    REV_PATTERN,
    Order,
    SortKey,
    board,
    model,
    user_progress,
    verify,
)
from deeprl.web.schemas import NOT_FOUND, Board, CertificateOut, EnvSummary, Message, ModelOut, ProgressOut, RefreshOut

# declared so the schema shows POST /api/refresh's bearer auth; the route checks the token itself (security.bearer)
bearer_scheme = HTTPBearer(
    auto_error=False, description="The server's admin token (--admin-token or DEEPRL_ADMIN_TOKEN)."
)

router = APIRouter()


@router.get(
    "/api/envs",
    response_model=list[EnvSummary],
    tags=["leaderboard"],
    summary="Environments with ranked models, with counts",
)
def api_envs(request: Request) -> Response:
    from deeprl import leaderboard as lb

    state = request.app.state
    with db.session(state.url) as s:
        return mark_cacheable(JSONResponse(lb.env_summaries(s, hub=state.hub)))


@router.get(
    "/api/leaderboard/{env}",
    response_model=Board,
    responses=NOT_FOUND,
    tags=["leaderboard"],
    summary="One environment's leaderboard (latest revision of each repo, verified result)",
)
def api_board(
    request: Request,
    env: str = PathParam(pattern=ENV_PATTERN, max_length=100),
    page: int = Query(1, ge=1, le=PAGE_MAX),
    per_page: int = Query(50, ge=1, le=PER_PAGE_MAX),
    sort: SortKey = "rank",
    order: Order | None = None,
    user: str | None = Query(None, max_length=100),
) -> Response:
    state = request.app.state
    b = board(state.hub, state.url, env, page, per_page, sort, order, user)
    return mark_cacheable(JSONResponse(Board.model_validate(b).model_dump()))


@router.get(
    "/api/models/{ns}/{name}",
    response_model=ModelOut,
    responses=NOT_FOUND,
    tags=["models"],
    summary="A model: every indexed revision with claimed and verified figures, its files",
)
def api_model(
    request: Request,
    ns: str = PathParam(pattern=PART_PATTERN, max_length=96),
    name: str = PathParam(pattern=PART_PATTERN, max_length=96),
    revision: str | None = Query(None, pattern=REV_PATTERN),
) -> Response:
    state = request.app.state
    detail = model(state.hub, state.url, ns, name, revision)
    return mark_cacheable(JSONResponse(ModelOut.model_validate(detail).model_dump()))


@router.get(
    "/api/users/{user}/progress",
    response_model=ProgressOut,
    responses=NOT_FOUND,
    tags=["certification"],
    summary="A user's course assignments: passed or not, best model and its rank, what is missing",
)
def api_progress(request: Request, user: str = PathParam(pattern=PART_PATTERN, max_length=96)) -> Response:
    state = request.app.state
    p = user_progress(state.hub, state.url, user)
    return mark_cacheable(JSONResponse(ProgressOut.model_validate(p).model_dump()))


@router.get(
    "/api/certificates/{cert_id}",
    response_model=CertificateOut,
    responses=NOT_FOUND,
    tags=["certification"],
    summary="Verify a certificate by the id printed on it",
)
def api_certificate(request: Request, cert_id: str = PathParam(pattern=CERT_PATTERN)) -> Response:
    found = verify(request.app.state.url, cert_id)
    return mark_cacheable(JSONResponse(CertificateOut.model_validate(found).model_dump()))


@router.get("/api/refresh", response_model=RefreshOut, tags=["index"], summary="State of the background index")
def api_refresh_status(request: Request) -> dict:
    return request.app.state.refresher.status()


@router.post(
    "/api/refresh",
    response_model=RefreshOut,
    status_code=202,
    tags=["index"],
    responses={
        401: {"model": Message, "description": "The admin token is missing or wrong"},
        403: {
            "model": Message,
            "description": "Refused: no admin token is set on this server, or the request came from another site",
        },
        409: {"model": RefreshOut, "description": "An index run is already running"},
        429: {"model": Message, "description": "An index run was started moments ago"},
    },
    summary="Index the hub now (admin token; pushes are indexed on their own within seconds)",
)
def api_refresh(
    request: Request, _auth: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> dict | Response:
    state = request.app.state
    refresher, admin_token = state.refresher, state.admin_token
    if not security.same_origin(request):
        raise HTTPException(403, "Refused: the request came from another site.")
    given = security.bearer(request)
    if given is not None and not admin_token:
        raise HTTPException(
            403,
            "This server has no admin token; start it with --admin-token or "
            "DEEPRL_ADMIN_TOKEN to refresh through the API.",
        )
    if not security.token_ok(admin_token, given):
        raise HTTPException(401, "The admin token is missing or wrong.", headers={"WWW-Authenticate": "Bearer"})
    status = refresher.start(manual=True)
    if status == "cooling":
        wait = refresher.retry_after()
        return JSONResponse(
            {"detail": f"An index run was started moments ago; try again in {wait} s."},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    if status == "running":
        return JSONResponse(refresher.status("already running"), status_code=409)
    return refresher.status("started")
