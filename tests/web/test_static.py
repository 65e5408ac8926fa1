"""The page and its assets are served from `graph_api/static/` and nothing outside it."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from graph_api import web


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(web.router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web")


async def test_page_and_modules_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert "/static/app.js" in assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
    script = await client.get("/static/app.js")
    assert "javascript" in script.headers["content-type"]
    again = await client.get("/static/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304


async def test_nothing_outside_static_and_no_remote_urls(client: httpx.AsyncClient) -> None:
    for path in ("/static/../web.py", "/static/%2e%2e/web.py", "/static/missing.js"):
        assert (await client.get(path)).status_code == 404, path
    for name in ("index.html", "app.js", "api.js", "form.js", "style.css"):
        text = (web.STATIC_DIR / name).read_text()
        assert not re.search(r"https?://", text), f"{name} fetches from elsewhere"


def test_the_page_names_only_fields_and_presets_the_api_declares() -> None:
    """The page's copies of declared names (it is static JavaScript): a drift fails here."""
    import json
    from pathlib import Path

    from jobs.effects import IR_PRESETS

    static = Path(web.__file__).with_name("static")
    app = (static / "app.js").read_text()
    fields = re.search(r'const FILE = "([^"]+)";', app)
    assert fields is not None
    # graph_api/schema.graphql is the schema's SDL (tests/graph_api/test_schema_sdl.py).
    sdl = (static.parent / "schema.graphql").read_text()
    body = re.search(r"\ntype AudioFile \{(.*?)\n\}", sdl, re.S)
    assert body is not None
    declared = set(re.findall(r"^  (\w+)[:(]", body.group(1), re.M))
    assert set(fields.group(1).split()) <= declared
    presets = re.search(r"const IMPULSE_PRESETS = (\[[^\]]*\]);", (static / "form.js").read_text())
    assert presets is not None and tuple(json.loads(presets.group(1))) == IR_PRESETS
