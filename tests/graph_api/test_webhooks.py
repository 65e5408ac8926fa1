"""Webhooks and exports through the API and a real bridge, against HTTP servers on
127.0.0.1 (private URLs allowed here, except where the default refusal is the point)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import codes, gql, running, uploaded
from standardwebhooks import Webhook

from bridge.service import Bridge
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
    # The data is the job as GraphQL returns it, download URL included.
    shown = {k: v for k, v in job.items() if k not in ("webhookDeliveries", "export")}
    assert payload["data"] == json.loads(json.dumps(shown))
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
