"""A model's page (its revisions, card, replay) and its files, served from the hub folder of a revision the index
has seen."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import select

from deeprl import db
from deeprl.web.data import PART_PATTERN, REV_PATTERN, model, safe_file
from deeprl.web.render import page

# files a browser may show inline; anything else (an .html in a repo included) downloads as bytes
INLINE_TYPES = {"video/mp4", "image/png", "image/jpeg", "image/gif", "application/json", "text/plain"}

router = APIRouter()


@router.get("/models/{ns}/{name}", include_in_schema=False)
def model_page(
    request: Request,
    ns: str = PathParam(pattern=PART_PATTERN),
    name: str = PathParam(pattern=PART_PATTERN),
    revision: str | None = Query(None, pattern=REV_PATTERN),
) -> Response:
    state = request.app.state
    return page(request, "model.html", cache=True, m=model(state.hub, state.url, ns, name, revision))


@router.get("/models/{ns}/{name}/files/{path:path}", include_in_schema=False)
def model_file(
    request: Request,
    ns: str = PathParam(pattern=PART_PATTERN),
    name: str = PathParam(pattern=PART_PATTERN),
    path: str = PathParam(..., max_length=500),
    revision: str | None = Query(None, pattern=REV_PATTERN),
) -> Response:
    state = request.app.state
    repo_id = f"{ns}/{name}"
    with db.session(state.url) as s:
        repo = db.get_repo(s, repo_id, state.hub)
        latest = repo.latest_revision if repo else None
        known = repo is not None and (
            revision is None
            or s.scalar(
                select(db.Evaluation.id).where(db.Evaluation.repo_pk == repo.id, db.Evaluation.revision == revision)
            )
            is not None
        )
    if not known or (revision or latest) is None:
        raise HTTPException(404, "No such model or revision in the index.")
    folder = state.folders(repo_id, revision or latest)
    target = safe_file(folder, path) if folder else None
    if target is None:
        raise HTTPException(404, "No such file in this model.")
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if target.suffix in (".md", ".txt", ".yml", ".yaml", ".csv", ".log"):
        media = "text/plain"
    headers = {
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "public, max-age=3600" if revision else "no-cache",
    }
    if media not in INLINE_TYPES:
        return FileResponse(target, media_type="application/octet-stream", filename=target.name, headers=headers)
    return FileResponse(
        target, media_type=media + ("; charset=utf-8" if media == "text/plain" else ""), headers=headers
    )
