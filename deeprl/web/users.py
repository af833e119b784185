"""A user's course progress, the certificate form it posts, the user search box, and a certificate's public
verification page."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Path as PathParam, Query, Request
from fastapi.responses import RedirectResponse, Response

from deeprl.errors import UserError
from deeprl.web import security
from deeprl.web.data import CERT_PATTERN, NAME_MAX, user_progress, verify
from deeprl.web.render import error_page, page

router = APIRouter()


@lru_cache(maxsize=1)
def _certificate_takes_url() -> bool:
    """Whether certificate_bytes records the certificate in a database of our choosing (its `url` argument)."""
    from deeprl.certification import certificate_bytes

    return "url" in inspect.signature(certificate_bytes).parameters


@router.get("/users/{user}", include_in_schema=False)
def progress_page(request: Request, user: str = PathParam(max_length=100)) -> Response:
    state = request.app.state
    token, new = security.csrf_token(request)
    resp = page(request, "progress.html", p=user_progress(state.hub, state.url, user), csrf=token)
    if new:
        security.set_csrf_cookie(resp, token)
    return resp


@router.post("/users/{user}/certificate", include_in_schema=False)
def certificate(
    request: Request,
    user: str = PathParam(max_length=100),
    first_name: str = Form(..., min_length=1, max_length=NAME_MAX),
    last_name: str = Form(..., min_length=1, max_length=NAME_MAX),
    format: Literal["pdf", "png"] = Form("pdf"),
    csrf: str = Form("", max_length=100),
) -> Response:
    from deeprl import certification
    from deeprl.certification import certificate_bytes, certificate_filename

    if not security.same_origin(request) or not security.csrf_ok(request, csrf):
        return error_page(
            request, 403, "This form did not come from this site's own page; reload the progress page and try again."
        )
    url = request.app.state.url
    p = user_progress(request.app.state.hub, url, user)
    when = datetime.now(UTC).date()
    try:
        data = certificate_bytes(
            p, first_name, last_name, format, when, **({"url": url} if _certificate_takes_url() else {})
        )
    except UserError as exc:
        return error_page(request, 409 if p["level"] is None else 422, str(exc))
    headers = {
        "Content-Disposition": f'attachment; filename="{certificate_filename(p["user"], format)}"',
        "Cache-Control": "no-store",
    }
    issue = getattr(certification, "issue_certificate", None)
    if issue is not None:  # recorded already by certificate_bytes: this only reads its id back
        headers["X-Certificate-Id"] = issue(p, first_name, last_name, when, url=url)
    return Response(data, media_type="application/pdf" if format == "pdf" else "image/png", headers=headers)


@router.get("/users", include_in_schema=False)
def find_user(user: str = Query("", max_length=100)) -> Response:
    user = user.strip()
    return RedirectResponse(f"/users/{quote(user)}" if user else "/", status_code=303)


@router.get("/certificates/{cert_id}", include_in_schema=False)
def certificate_page(request: Request, cert_id: str = PathParam(pattern=CERT_PATTERN)) -> Response:
    return page(request, "certificate.html", cache=True, c=verify(request.app.state.url, cert_id))
