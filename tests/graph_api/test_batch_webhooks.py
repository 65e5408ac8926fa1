"""A batch's `batch.completed` webhook, through the API and a real bridge, to an HTTP server
on 127.0.0.1 (private URLs allowed here)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from api_client import gql
from standardwebhooks import Webhook
from test_batches import GAIN, _batch, _ended, _files

from bridge.service import Bridge
from jobs.settings import Settings
from tests.http_servers import Reply, http_server

FIELDS = "id status progress album albumLoudnessLufs createdAt finishedAt"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_urls": True})


async def test_batch_end_is_posted_as_a_signed_webhook(
    client: httpx.AsyncClient, bridge: Bridge, tmp_path: Path
) -> None:
    secret = (await gql(client, "mutation { rotateWebhookSecret }"))["data"]["rotateWebhookSecret"]
    with http_server(lambda r: Reply(204)) as server:
        files = await _files(client, tmp_path, 2)
        batch = await _batch(client, fileIds=files, effects=GAIN, webhookUrl=server.url("/b"))
        done = await _ended(client, batch["id"])
        async with asyncio.timeout(60):
            while not server.seen():
                await asyncio.sleep(0.05)
    assert done["status"] == "SUCCEEDED"
    query = f'{{ batch(id: "{batch["id"]}") {{ {FIELDS} }} }}'
    shown = (await gql(client, query))["data"]["batch"]
    (post,) = server.seen()
    payload = Webhook(secret).verify(post.body, post.headers)
    assert payload["type"] == "batch.completed"
    data = payload["data"]
    # The batch as GraphQL returns it, each job with its download URLs.
    assert {k: data[k] for k in shown} == shown
    assert [j["id"] for j in data["jobs"]] == [j["id"] for j in done["jobs"]]
    assert [j["output"]["downloadUrl"] for j in data["jobs"]] == [
        f"/files/{j['output']['id']}" for j in done["jobs"]
    ]
