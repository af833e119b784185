"""Pages rendered on the server: the Jinja2 templates with their filters, and the two ways a route answers with
one (a page, an error page). What every page shows about the site (hub, index state) comes from app.state."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from deeprl.web.cache import mark_cacheable

HERE = Path(__file__).parent


def fmt_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        dt = datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return value
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def fmt_day(value: str | None) -> str:
    """A date as the certificate prints it (05 March 2025)."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%d %B %Y")
    except (TypeError, ValueError):
        return "-"


def fmt_num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def quote_path(value: object) -> str:
    return quote(str(value), safe="/")


# one template set for every app in the process: the templates and filters hold no per-app state
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["t"] = fmt_time
templates.env.filters["num"] = fmt_num
templates.env.filters["day"] = fmt_day
templates.env.globals["quote"] = quote_path


def page(request: Request, name: str, status_code: int = 200, cache: bool = False, **ctx: Any) -> Response:
    """Template `name` with `ctx`, plus the site's hub and index state; `cache`: the page cache may keep it."""
    state = request.app.state
    ctx.setdefault("refresh", state.refresher.status())
    ctx.setdefault("hub", state.hub)
    ctx.setdefault("watching", state.watcher is not None)
    resp = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    return mark_cacheable(resp) if cache else resp


def error_page(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    resp = page(request, "error.html", status_code=status, message=message, status=status)
    resp.headers.update(headers or {})
    return resp
