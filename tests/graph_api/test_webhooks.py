"""Webhooks and exports through the API and a real bridge, against HTTP servers on
127.0.0.1 (private URLs allowed here, except where the default refusal is the point)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import as_key, codes, gql, make_key, running, uploaded
from standardwebhooks import Webhook

from bridge.service import Bridge
from graph_api.runtime import Runtime
from jobs import deliveries
from jobs.deliveries import DeliveryWorker
from jobs.settings import Settings
from tests.http_servers import Reply, http_server

ROTATE = "mutation { rotateWebhookSecret }"
SUBMIT = "mutation($input: JobInput!) { submitJob(input: $input) { id } }"
JOB_FIELDS = """
  id status progress effects outputFormat outputSubtype message attempts createdAt startedAt
  finishedAt edits { startS endS } error { code message }
  compliance { integratedLufs truePeakDb loudnessRangeLu target truePeakLimit passed renders
               reason }
  input { id filename format subtype sampleRate channels frames sizeBytes durationSeconds
          downloadUrl createdAt }
  output { id filename format subtype sampleRate channels frames sizeBytes durationSeconds
           downloadUrl createdAt }
"""
JOB = f"""query($id: ID!) {{ job(id: $id) {{ {JOB_FIELDS}
  webhookDeliveries {{ webhookId type attempt at statusCode error }}
  export {{ url status attempts error }} }} }}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_urls": True})


async def test_job_end_is_posted_signed_and_its_output_put(
    bridge: Bridge, client: httpx.AsyncClient, wav_file: Path
) -> None:
    secret = (await gql(client, ROTATE))["data"]["rotateWebhookSecret"]
    assert secret.startswith("whsec_")
    with http_server(lambda r: Reply(200 if r.method == "POST" else 201)) as server:
        file = await uploaded(client, wav_file)
        body = await gql(
            client,
            SUBMIT,
            {
                "input": {
                    "fileId": file["id"],
                    "effects": [{"gain": {"db": -3}}],
                    "webhookUrl": server.url("/hook"),
                    "output": {"format": "FLAC", "url": server.url("/bucket/out.flac?sig=x")},
                }
            },
        )
        assert "errors" not in body, body
        job_id = body["data"]["submitJob"]["id"]
        async with asyncio.timeout(60):
            while {r.method for r in server.seen()} != {"POST", "PUT"}:
                await asyncio.sleep(0.05)
            while True:
                job: dict[str, Any] = (await gql(client, JOB, {"id": job_id}))["data"]["job"]
                if job["webhookDeliveries"] and job["export"]["status"] != "PENDING":
                    break
                await asyncio.sleep(0.05)

    (post,) = [r for r in server.seen() if r.method == "POST"]
    (put,) = [r for r in server.seen() if r.method == "PUT"]
    payload = Webhook(secret).verify(post.body, post.headers)
    assert payload["type"] == "job.succeeded"
    # The data is the job as GraphQL returns it, download URL included; the webhook waited
    # for the export, so its data says how that went.
    shown = {k: v for k, v in job.items() if k != "webhookDeliveries"}
    assert payload["data"] == json.loads(json.dumps(shown))
    assert payload["data"]["export"]["status"] == "DELIVERED"
    assert server.seen().index(put) < server.seen().index(post)
    assert payload["data"]["output"]["downloadUrl"] == f"/files/{job['output']['id']}"
    (attempt,) = job["webhookDeliveries"]
    assert attempt["webhookId"] == post.headers["webhook-id"]
    assert (attempt["type"], attempt["attempt"], attempt["statusCode"]) == ("job.succeeded", 1, 200)
    assert attempt["error"] is None
    assert job["export"]["status"] == "DELIVERED"
    assert put.path == "/bucket/out.flac?sig=x"
    download = await client.get(f"/files/{job['output']['id']}")
    assert put.body == download.content and put.body[:4] == b"fLaC"


async def test_webhook_url_needs_a_secret_and_an_allowed_address(
    settings: Settings, wav_file: Path
) -> None:
    strict = settings.model_copy(update={"allow_private_urls": False})
    async with running(strict) as (_app, client):
        file = await uploaded(client, wav_file)
        job = {"fileId": file["id"], "effects": [{"gain": {"db": -3}}]}
        body = await gql(client, SUBMIT, {"input": {**job, "webhookUrl": "http://127.0.0.1/x"}})
        assert codes(body) == ["BAD_INPUT"]
        assert "AUDIO_ENGINE_ALLOW_PRIVATE_URLS" in body["errors"][0]["message"]
        body = await gql(
            client,
            SUBMIT,
            {"input": {**job, "output": {"url": "http://169.254.169.254/latest/"}}},
        )
        assert codes(body) == ["BAD_INPUT"]
        body = await gql(client, SUBMIT, {"input": {**job, "webhookUrl": "ftp://example.com/"}})
        assert codes(body) == ["BAD_INPUT"]
    async with running(settings) as (_app, client):
        body = await gql(client, SUBMIT, {"input": {**job, "webhookUrl": "http://127.0.0.1/x"}})
        assert codes(body) == ["BAD_INPUT"]
        assert "rotateWebhookSecret" in body["errors"][0]["message"]


SET_DEFAULT = """mutation($url: String) {
  setDefaultWebhookUrl(url: $url) { keyName defaultWebhookUrl } }"""
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { status } }"
SUBMIT_BATCH = "mutation($input: BatchInput!) { submitBatch(input: $input) { id } }"
CANCEL_BATCH = "mutation($id: ID!) { cancelBatch(id: $id) { status } }"


async def test_a_keys_default_webhook_url_serves_jobs_submitted_without_one(
    secure_settings: Settings, wav_file: Path
) -> None:
    key = await make_key(secure_settings, "alice")
    with http_server(lambda r: Reply(204)) as server:
        default, explicit = server.url("/default"), server.url("/explicit")
        async with running(secure_settings) as (app, _), as_key(app, key) as client:
            runtime: Runtime = app.state.runtime
            body = await gql(client, SET_DEFAULT, {"url": default})
            assert codes(body) == ["BAD_INPUT"]  # no signing secret yet
            assert "rotateWebhookSecret" in body["errors"][0]["message"]
            secret = (await gql(client, ROTATE))["data"]["rotateWebhookSecret"]
            for refused in ("http://169.254.169.254/latest/", "gopher://example.com/"):
                body = await gql(client, SET_DEFAULT, {"url": refused})
                assert codes(body) == ["BAD_INPUT"], refused
            body = await gql(client, SET_DEFAULT, {"url": default})
            expected = {"keyName": "alice", "defaultWebhookUrl": default}
            assert body["data"]["setDefaultWebhookUrl"] == expected
            viewer = await gql(client, "{ viewer { defaultWebhookUrl } }")
            assert viewer["data"]["viewer"]["defaultWebhookUrl"] == default

            file = await uploaded(client, wav_file)
            job = {"fileId": file["id"], "effects": [{"gain": {"db": -3}}]}

            async def cancelled(**given: str) -> str:
                answer = await gql(client, SUBMIT, {"input": {**job, **given}})
                job_id: str = answer["data"]["submitJob"]["id"]
                answer = await gql(client, CANCEL, {"id": job_id})
                assert answer["data"]["cancelJob"]["status"] == "CANCELLED"
                return job_id

            batch = {"fileIds": [file["id"]], "effects": [{"gain": {"db": -3}}]}
            answer = await gql(client, SUBMIT_BATCH, {"input": batch})
            batch_id = answer["data"]["submitBatch"]["id"]
            answer = await gql(client, CANCEL_BATCH, {"id": batch_id})
            assert answer["data"]["cancelBatch"]["status"] == "CANCELLED"
            by_default = await cancelled()
            by_input = await cancelled(webhookUrl=explicit)
            opted_out = await cancelled(webhookUrl="")
            body = await gql(client, SET_DEFAULT, {"url": None})
            assert body["data"]["setDefaultWebhookUrl"]["defaultWebhookUrl"] is None
            after_clearing = await cancelled()

            worker = DeliveryWorker(secure_settings, runtime.db, runtime.storage, runtime.fernet)
            worker.start()
            try:
                async with asyncio.timeout(20):
                    while len(server.seen()) < 3:
                        await asyncio.sleep(0.05)
            finally:
                await worker.stop()
            for job_id in (opted_out, after_clearing):  # no webhook stored at all
                assert await runtime.db.run(deliveries.state_of, job_id, deliveries.WEBHOOK) is None

    posts = []
    for request in server.seen():
        payload = Webhook(secret).verify(request.body, request.headers)
        posts.append((request.path, payload["type"], payload["data"]["id"]))
    assert sorted(posts) == sorted(
        [
            ("/default", "batch.completed", batch_id),
            ("/default", "job.cancelled", by_default),
            ("/explicit", "job.cancelled", by_input),
        ]
    )


async def test_no_default_webhook_url_without_a_key(settings: Settings) -> None:
    async with running(settings) as (_app, client):
        body = await gql(client, SET_DEFAULT, {"url": "http://127.0.0.1/x"})
    assert codes(body) == ["BAD_INPUT"]
    assert "authentication is off" in body["errors"][0]["message"]
