"""The API's documentation as a page of this site (/docs; /redoc sends there): rendered here from the app's own
OpenAPI schema, with no script and nothing from a CDN."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from deeprl.web.render import page

router = APIRouter()


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> Response:
    return page(request, "docs.html", cache=True, ops=api_operations(request.app.openapi()))


@router.get("/redoc", include_in_schema=False)
def redoc() -> Response:
    return RedirectResponse("/docs", status_code=308)


def api_operations(schema: dict) -> list[dict]:
    """The API's operations as the /docs page lists them."""
    ops = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            params = []
            for p in op.get("parameters", []):
                s = p.get("schema", {})
                kind = (
                    s.get("type")
                    or " | ".join(x.get("type", "?") for x in s.get("anyOf", []))
                    or ", ".join(map(str, s.get("enum", [])))
                )
                bounds = [f"{k} {s[k]}" for k in ("minimum", "maximum", "maxLength", "pattern", "enum") if k in s]
                params.append(
                    {
                        "name": p["name"],
                        "in": p["in"],
                        "required": p.get("required", False),
                        "type": kind,
                        "bounds": "; ".join(map(str, bounds)),
                        "default": s.get("default"),
                    }
                )
            ops.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "tags": op.get("tags", []),
                    "params": params,
                    "auth": bool(op.get("security")),
                    "responses": [(code, r.get("description", "")) for code, r in op.get("responses", {}).items()],
                }
            )
    return ops
