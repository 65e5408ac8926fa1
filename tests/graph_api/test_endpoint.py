"""`/graphql`'s edges: multipart `map` paths checked before Strawberry follows them, and
GraphiQL served from pinned local copies under a Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import PREFLIGHT, UPLOAD, as_key, codes, make_key, running

from graph_api.endpoint import BadFileMap, check_file_map
from jobs.settings import Settings

OPERATIONS = {"query": UPLOAD, "variables": {"file": None}}


async def _multipart(client: httpx.AsyncClient, operations: Any, files_map: Any) -> httpx.Response:
    return await client.post(
        "/graphql",
        headers=PREFLIGHT,
        data={"operations": json.dumps(operations), "map": json.dumps(files_map)},
        files={"0": ("a.wav", b"RIFF", "audio/wav")},
    )


@pytest.mark.parametrize(
    ("files_map", "words"),
    [
        ({"0": ["variables.file.__class__.x"]}, "variables.file has no '__class__'"),
        ({"0": ["variables.__class__"]}, "variables has no '__class__'"),
        ({"0": ["variables.file.0"]}, "variables.file has no '0'"),
        ({"0": ["query"]}, "must start with 'variables.<name>'"),
        ({"0": ["variables"]}, "must start with 'variables.<name>'"),
        ({"0": ["variables.nope"]}, "variables has no 'nope'"),
        ({"0": [7]}, "must be a string"),
        ({"0": "variables.file"}, "non-empty list"),
        ({"1": ["variables.file"]}, "file field '1'"),
        (["variables.file"], "'map' must be a JSON object"),
    ],
)
async def test_bad_file_maps_get_400_naming_the_path(
    secure_settings: Settings, files_map: Any, words: str
) -> None:
    key = await make_key(secure_settings, "alice")
    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        response = await _multipart(client, OPERATIONS, files_map)
        assert response.status_code == 400, response.text
        assert response.text.startswith("Invalid multipart upload: ")
        assert words in response.text, response.text
        # The same request with a good map gets as far as the audio check.
        good = await _multipart(client, OPERATIONS, {"0": ["variables.file"]})
        assert codes(good.json()) == ["UNSUPPORTED_AUDIO"], good.text


def test_map_paths_may_go_into_lists_and_objects_that_exist() -> None:
    operations = {"variables": {"files": [None, None], "input": {"file": None}}}
    files = {"0": object(), "1": object(), "2": object()}
    check_file_map(
        operations,
        {"0": ["variables.files.0"], "1": ["variables.files.1"], "2": ["variables.input.file"]},
        files,
    )
    for path in ("variables.files.2", "variables.files.-1", "variables.input.other"):
        with pytest.raises(BadFileMap):
            check_file_map(operations, {"0": [path]}, files)
    with pytest.raises(BadFileMap, match="batches"):
        check_file_map([operations], {"0": ["0.variables.files.0"]}, files)


async def test_graphiql_loads_nothing_from_elsewhere(secure_settings: Settings) -> None:
    async with running(secure_settings) as (_, client):
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy.split("; ")
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        html = page.text
        assert not re.search(r"https?://|//[a-z]", html), "GraphiQL names another host"
        assert "<script>" not in html  # no inline script: the policy would block it
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert {"/static/graphiql.js", "/static/vendor/graphiql-3.8.3/graphiql.min.js"} <= set(
            assets
        )
        hashes = dict(re.findall(r'(?:src|href)="(/static/[^"]+)"\s+integrity="([^"]+)"', html))
        assert len(hashes) == 6
        for asset in assets:
            response = await client.get(asset)
            assert response.status_code == 200, asset
            if asset in hashes:
                digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
                assert hashes[asset] == f"sha384-{digest}", asset
        own = await client.get("/static/graphiql.js")
        assert not re.search(r"https?://", own.text)
        web_page = await client.get("/")
        assert web_page.headers["content-security-policy"] == policy


def test_vendored_files_carry_their_licenses() -> None:
    vendor = Path(__file__).parents[2] / "graph_api" / "static" / "vendor"
    folders = [p for p in vendor.iterdir() if p.is_dir()]
    assert len(folders) == 4
    for folder in folders:
        assert "MIT License" in (folder / "LICENSE").read_text(), folder
    assert sum(f.stat().st_size for f in vendor.rglob("*")) < 5 * 2**20


async def test_batches_multipart_bombs_and_alias_floods_stay_refused(
    secure_settings: Settings,
) -> None:
    """What the probe found holding, kept: a GraphQL batch, a multipart request of thousands
    of parts, and an alias flood are each refused, never a 5xx."""
    key = await make_key(secure_settings, "alice")
    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        batch = await client.post("/graphql", json=[{"query": "{ __typename }"}] * 2)
        assert batch.status_code == 400, batch.text
        parts = {str(i): (f"{i}.wav", b"x", "audio/wav") for i in range(1500)}
        bomb = await client.post(
            "/graphql",
            headers=PREFLIGHT,
            data={"operations": json.dumps(OPERATIONS), "map": '{"0": ["variables.file"]}'},
            files=parts,
        )
        assert bomb.status_code == 400, bomb.text
        fields = await client.post(
            "/graphql",
            headers=PREFLIGHT,
            data={f"f{i}": "x" for i in range(1500)},
            files={"0": ("a.wav", b"x", "audio/wav")},
        )
        assert fields.status_code == 400, fields.text
        aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(500)) + " }"
        flood = await client.post("/graphql", json={"query": aliases})
        assert flood.status_code < 500
        assert codes(flood.json()) == ["GRAPHQL_VALIDATION_FAILED"], flood.text
