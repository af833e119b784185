"""The leaderboard pages: the home page (every env, with or without models) and one env's board."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path as PathParam, Query, Request
from fastapi.responses import Response

from deeprl import db
from deeprl.web.data import (
    ENV_PATTERN,
    PAGE_MAX,
    PER_PAGE_MAX,
    Order,
    SortKey,
    board,
    course_env,
    course_envs,
    env_description,
)
from deeprl.web.render import page

router = APIRouter()


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    from deeprl import leaderboard as lb

    state = request.app.state
    with db.session(state.url) as s:
        envs = lb.env_summaries(s, hub=state.hub)
        lost = lb.unranked(s, None, hub=state.hub)
    have = {e["env"] for e in envs}
    rows = [{**e, "description": env_description(e["env"]), "course": course_env(e["env"])} for e in envs]
    rows += [
        {
            "env": c["env"],
            "models": 0,
            "users": 0,
            "best_result": None,
            "last_push": None,
            "unranked": 0,
            "description": c["description"],
            "course": c,
        }
        for c in course_envs()
        if c["env"] not in have
    ]
    return page(request, "home.html", cache=True, envs=rows, lost=lost, total_models=sum(e["models"] for e in envs))


@router.get("/leaderboard/{env}", include_in_schema=False)
def leaderboard_page(
    request: Request,
    env: str = PathParam(pattern=ENV_PATTERN),
    page_no: int = Query(1, ge=1, le=PAGE_MAX, alias="page"),
    per_page: int = Query(50, ge=1, le=PER_PAGE_MAX),
    sort: SortKey = "rank",
    order: Order | None = None,
    user: str | None = Query(None, max_length=100),
) -> Response:
    state = request.app.state
    b = board(state.hub, state.url, env, page_no, per_page, sort, order, user)

    # the template's links: this board with some parameters changed, and a column header's sort toggle
    def link(**changes: int | str | None) -> str:
        params = {"page": page_no, "per_page": per_page, "sort": sort, "order": order, "user": user}
        params.update(changes)
        return f"/leaderboard/{quote(env)}?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})

    def sort_link(key: str) -> str:
        desc_default = key in ("result", "mean_reward", "std_reward", "pushed_at")
        current_desc = (order == "desc") if order else desc_default
        new = ("asc" if current_desc else "desc") if key == sort else ("desc" if desc_default else "asc")
        return link(sort=key, order=new, page=1)

    return page(
        request,
        "leaderboard.html",
        cache=True,
        b=b,
        link=link,
        sort_link=sort_link,
        sort=sort,
        order=order,
        user=user or "",
        course=course_envs(),
    )
