"""The web page at `/`: upload or pick a file, build an effect chain from the `effects`
catalog, follow the job live and compare before/after. Plain HTML, ES modules and CSS from
`graph_api/static/`, no build step and nothing fetched from elsewhere at run time (a
Content-Security-Policy says so to the browser). `static/vendor/` holds the pinned GraphiQL
and React builds the GraphiQL page at `/graphql` loads.

`router` also carries the image routes of `graph_api.images`, which the page shows:

>>> app.include_router(web.router)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from graph_api import images

STATIC_DIR = Path(__file__).parent / "static"
# Revalidate every time (ETag / Last-Modified): a new release shows at once, unchanged files
# cost a 304.
NO_CACHE = {"Cache-Control": "no-cache"}
# For the pages people type API keys into (this one and GraphiQL): scripts from this service
# only, no inline script, nothing framed. Styles may be inline (React sets style attributes);
# images and sounds may be blob: URLs the page made from authenticated downloads.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)

router = APIRouter()
router.include_router(images.router)
_static = StaticFiles(directory=STATIC_DIR)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={**NO_CACHE, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/static/{path:path}", include_in_schema=False)
async def static(path: str, request: Request) -> Response:
    """Files under `static/` only (StaticFiles refuses paths that leave the folder)."""
    response = await _static.get_response(path, request.scope)
    response.headers.update(NO_CACHE)
    return response
