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
