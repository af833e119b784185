"""The admin page and its refresh form (same-origin, CSRF token, and the admin token where the server needs it)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import State

from deeprl.web import security
from deeprl.web.render import page

FLASHES = {
    "started": "Index run started: new pushes are being evaluated in the background.",
    "running": "An index run is already under way; nothing was queued.",
    "cooling": "An index run was started moments ago; try again in a few seconds.",
    "refused": "Refused: this form did not come from this site's own page, or its token was wrong.",
}

router = APIRouter()


def needs_token(state: State) -> bool:
    """A refresh needs the admin token when one is set, or when the server listens beyond loopback."""
    return bool(state.admin_token) or state.public


@router.get("/admin", include_in_schema=False)
def admin_page(request: Request, done: Literal["started", "running", "cooling", "refused"] | None = None) -> Response:
    state = request.app.state
    token, new = security.csrf_token(request)
    resp = page(
        request,
        "admin.html",
        csrf=token,
        needs_token=needs_token(state),
        refresh_off=state.public and not state.admin_token,
        flash=FLASHES.get(done or ""),
    )
    if new:
        security.set_csrf_cookie(resp, token)
    return resp


@router.post("/admin/refresh", include_in_schema=False)
def admin_refresh(
    request: Request, csrf: str = Form("", max_length=100), token: str = Form("", max_length=1000)
) -> Response:
    state = request.app.state
    if (
        not security.same_origin(request)
        or not security.csrf_ok(request, csrf)
        or (needs_token(state) and not security.token_ok(state.admin_token, token))
    ):
        return RedirectResponse("/admin?done=refused", status_code=303)
    return RedirectResponse(f"/admin?done={state.refresher.start(manual=True)}", status_code=303)
