"""API keys: the first-start admin key, Bearer headers, websocket payloads, the CLI, 401s."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import (
    as_key,
    auth,
    codes,
    gql,
    heartbeat,
    make_key,
    revoke_key,
    running,
    serving,
    upload,
    uploaded,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from cli import exits
from cli.main import main as cli_main
from graph_api.auth import KEY_PREFIX, KeyChecks, bearer, hash_key, key_from_params
from jobs.db import Database, writes
from jobs.db import repository as repo
from jobs.errors import Unauthenticated
from jobs.settings import Settings

VIEWER = "{ viewer { owner admin keyName } }"


async def test_first_start_prints_an_admin_key_once_and_stores_its_hash(
    secure_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(secure_settings) as (app, _):
        out = capsys.readouterr().out
        key = next(w for w in out.split() if w.startswith(KEY_PREFIX))
        assert f'{{"Authorization": "Bearer {key}"}}' in out  # for GraphiQL's headers pane
        assert f"curl -H 'Authorization: Bearer {key}'" in out
        async with as_key(app, key) as client:
            body = await gql(client, VIEWER)
        assert body["data"]["viewer"] == {"owner": "admin", "admin": True, "keyName": "admin"}
    db = Database(secure_settings.sqlalchemy_url)
    try:
        async with db.transaction() as session:
            keys = await repo.list_api_keys(session)
            assert await repo.api_key_by_hash(session, hash_key(key)) is not None
    finally:
        await db.close()
    assert [k.name for k in keys] == ["admin"]
    raw = (secure_settings.data_dir / "audio-engine.db").read_bytes()
    assert key.encode() not in raw
    async with running(secure_settings):
        assert KEY_PREFIX not in capsys.readouterr().out  # only on the very first start


async def test_every_operation_but_the_probes_needs_a_key(
    secure_settings: Settings, wav_file: Path
) -> None:
    await make_key(secure_settings, "alice")
    async with running(secure_settings) as (app, client):
        await heartbeat(app, secure_settings)
        for query in (
            VIEWER,
            "{ effects { name } }",
            "{ jobs { edges { cursor } } }",
            '{ job(id: "x") { id } }',
            '{ file(id: "x") { id } }',
            "{ presets { name } }",
            'mutation { cancelJob(id: "x") { id } }',
            'mutation { deletePreset(name: "x") }',
        ):
            response = await client.post("/graphql", json={"query": query})
            assert response.status_code == 200
            body = response.json()
            assert codes(body) == ["UNAUTHENTICATED"], (query, body)
            assert "Authorization: Bearer" in body["errors"][0]["message"]
        assert codes(await upload(client, wav_file.read_bytes())) == ["UNAUTHENTICATED"]
        for method, path in (("GET", "/files/x"), ("POST", "/files"), ("GET", "/metrics")):
            files = {"file": ("a.wav", wav_file.read_bytes())} if method == "POST" else None
            response = await client.request(method, path, files=files)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["code"] == "UNAUTHENTICATED"
            assert response.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/graphql", headers={"Accept": "text/html"})).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer ae_not_a_key", "Basic dXNlcjpwYXNz", "Bearer", "", "ae_wrong"],
)
async def test_wrong_keys_are_refused(secure_settings: Settings, header: str) -> None:
    await make_key(secure_settings, "alice")
    async with running(secure_settings) as (_, client):
        response = await client.post(
            "/graphql", json={"query": VIEWER}, headers={"Authorization": header}
        )
        assert codes(response.json()) == ["UNAUTHENTICATED"]
        assert (await client.get("/metrics", headers={"Authorization": header})).status_code == 401


async def test_revoked_key_stops_working_at_once(secure_settings: Settings) -> None:
    key = await make_key(secure_settings, "alice")
    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        assert (await gql(client, VIEWER))["data"]["viewer"]["owner"] == "alice"
        async with app.state.runtime.db.transaction() as session:
            await writes.revoke_api_key(session, "alice")
        body = await gql(client, VIEWER)
        assert codes(body) == ["UNAUTHENTICATED"]
        assert "revoked" in body["errors"][0]["message"]


async def test_rest_routes_with_a_key(secure_settings: Settings, wav_file: Path) -> None:
    key = await make_key(secure_settings, "alice")
    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        response = await client.post("/files", files={"file": ("a.wav", wav_file.read_bytes())})
        assert response.status_code == 201, response.text
        download = await client.get(response.json()["downloadUrl"])
        assert download.status_code == 200
        assert download.content == wav_file.read_bytes()
        assert (await client.get("/metrics")).status_code == 200


def test_bearer_and_connection_params() -> None:
    assert bearer("Bearer ae_x") == "ae_x"
    assert bearer("bearer   ae_x ") == "ae_x"
    assert bearer("ae_x") == "ae_x"
    assert bearer("Basic abc") is None
    assert bearer(None) is None and bearer(3) is None and bearer("") is None
    assert key_from_params({"Authorization": "Bearer ae_1"}) == "ae_1"
    assert key_from_params({"authorization": "Bearer ae_2"}) == "ae_2"
    assert key_from_params({"apiKey": "ae_3"}) == "ae_3"
    assert key_from_params({}) is None
    assert key_from_params(None) is None
    assert key_from_params(["ae_4"]) is None


async def _ws_viewer(base: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    """Subscribe to myJobUpdates with `payload` in connection_init; the first message back."""
    async with connect(
        f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        query = 'subscription { jobUpdates(jobId: "missing") { jobId } }'
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return message


def _ws_codes(message: dict[str, Any]) -> list[str]:
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    return [e["extensions"]["code"] for e in errors]


async def _ws_refused(base: str, payload: dict[str, Any] | None) -> ConnectionClosed:
    """Send `connection_init` with `payload`; the close the server answers with."""
    async with connect(
        f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    return closed.value


async def test_websocket_key_in_connection_init(secure_settings: Settings) -> None:
    key = await make_key(secure_settings, "alice")
    async with serving(secure_settings) as base:
        # With a key the subscription runs (and finds no such job); without, the connection
        # is refused at connection_init, before any document is parsed.
        for payload in (
            {"Authorization": f"Bearer {key}"},
            {"authorization": f"Bearer {key}"},
            {"apiKey": key},
        ):
            assert _ws_codes(await _ws_viewer(base, payload)) == ["NOT_FOUND"], payload
        for payload in (None, {}, {"apiKey": "ae_wrong"}, {"Authorization": "Bearer nope"}):
            closed = await _ws_refused(base, payload)
            assert closed.rcvd is not None and closed.rcvd.code == 4403, payload


async def test_dev_mode_has_no_owner_and_sees_everything(settings: Settings) -> None:
    assert settings.auth_enabled is False
    async with running(settings) as (_, client):
        assert (await gql(client, VIEWER))["data"]["viewer"] == {
            "owner": None,
            "admin": True,
            "keyName": None,
        }


async def test_dev_mode_warns_loudly(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="graph_api.app"):
        async with running(settings):
            pass
    assert any("AUTHENTICATION IS DISABLED" in r.getMessage() for r in caplog.records)


def test_keys_cli(
    secure_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUDIO_ENGINE_DATA_DIR", str(secure_settings.data_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AUDIO_ENGINE_DATABASE_URL", raising=False)
    assert cli_main(["keys", "create", "--name", "alice"]) == 0
    created = capsys.readouterr().out
    key = next(w for w in created.split() if w.startswith(KEY_PREFIX))
    assert cli_main(["keys", "create", "--name", "ops", "--admin"]) == 0
    assert cli_main(["keys", "create", "--name", "alice"]) == exits.BAD_INPUT  # names are unique
    capsys.readouterr()
    assert cli_main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "ops" in listing and key not in listing
    assert cli_main(["keys", "revoke", "alice"]) == 0
    assert cli_main(["keys", "revoke", "nobody"]) == exits.BAD_INPUT
    capsys.readouterr()
    assert cli_main(["keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out

    async def check() -> None:
        async with running(secure_settings) as (app, _), as_key(app, key) as client:
            assert codes(await gql(client, VIEWER)) == ["UNAUTHENTICATED"]

    asyncio.run(check())


async def test_uploads_are_owned_by_the_key_owner(
    secure_settings: Settings, wav_file: Path
) -> None:
    key = await make_key(secure_settings, "alice-laptop", owner="alice")
    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        file = await uploaded(client, wav_file)
        async with app.state.runtime.db.transaction() as session:
            assert (await repo.get_files(session, [file["id"]]))[file["id"]].owner == "alice"
        response = await client.post(
            "/files", files={"file": ("b.wav", wav_file.read_bytes())}, headers=auth(key)
        )
        second = response.json()["id"]
        async with app.state.runtime.db.transaction() as session:
            assert (await repo.get_files(session, [second]))[second].owner == "alice"


async def test_graphiql_works_without_a_key(secure_settings: Settings) -> None:
    async with running(secure_settings) as (_, client):
        response = await client.get("/graphql", headers={"Accept": "text/html"})
        assert response.status_code == 200
        assert isinstance(client, httpx.AsyncClient)


async def _refused_before_the_body(
    address: str,
    path: str,
    key: str = "",
    content_type: str = "multipart/form-data; boundary=xyz",
    length: int = 5_000_000,
) -> bytes:
    """Announce a `length`-byte form upload, send its first bytes only, and read the answer:
    a server that parsed the body before checking the key would wait here for the rest."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address}\r\nApollo-Require-Preflight: true\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
        + (f"Authorization: Bearer {key}\r\n" if key else "")
        + '\r\n--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    )
    writer.write(head.encode() + b"\0" * 65536)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_uploads_without_a_live_key_are_refused_before_their_body_is_read(
    secure_settings: Settings,
) -> None:
    await make_key(secure_settings, "alice")
    async with serving(secure_settings) as address:
        rest = await _refused_before_the_body(address, "/files")
        assert rest.startswith(b"HTTP/1.1 401") and b'"UNAUTHENTICATED"' in rest, rest
        wrong = await _refused_before_the_body(address, "/files", key="ae_not_a_key")
        assert wrong.startswith(b"HTTP/1.1 401") and b"unknown or revoked" in wrong, wrong
        form = "application/x-www-form-urlencoded"
        # (Under the 1 MiB a body without a file may have: BodyLimit would answer 413.)
        urlencoded = await _refused_before_the_body(
            address, "/files", content_type=form, length=900_000
        )
        assert urlencoded.startswith(b"HTTP/1.1 401"), urlencoded
        graphql = await _refused_before_the_body(address, "/graphql")
        body = json.loads(graphql.partition(b"\r\n\r\n")[2])
        assert codes(body) == ["UNAUTHENTICATED"] and body["data"] is None, graphql


async def test_subscriptions_of_one_key_share_its_rechecks(secure_settings: Settings) -> None:
    """Many subscriptions re-checking one key at once ask the database once; a shared
    answer older than the asker's own, or than the interval, is not taken; a revoked key
    fails the next re-check."""
    key = await make_key(secure_settings, "alice")
    db = Database(secure_settings.sqlalchemy_url)
    try:
        checks = KeyChecks(db)
        answers = await asyncio.gather(*(checks.recheck(key, 0.0, 60.0) for _ in range(50)))
        assert checks.lookups == 1
        at, principal = answers[0]
        assert principal.owner == "alice" and {a for a, _ in answers} == {at}
        assert await checks.recheck(key, at - 1.0, 60.0) == (at, principal)  # newer: shared
        assert checks.lookups == 1
        await revoke_key(secure_settings, "alice")
        assert await checks.recheck(key, at - 1.0, 60.0) == (at, principal)  # within its age
        with pytest.raises(Unauthenticated, match="revoked"):
            await checks.recheck(key, at, 60.0)  # not newer than the asker's own: asks again
        with pytest.raises(Unauthenticated, match="revoked"):
            await checks.recheck(key, 0.0, 0.0)  # too old for the asker: asks again
        assert checks.lookups == 3
    finally:
        await db.close()
