"""A bridge killed between a job's end and its webhook, with real processes: the next bridge
delivers it, exactly once, with the same webhook-id (the issue's restart test)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from standardwebhooks import Webhook

from cli.stack import Service, Stack, free_port
from jobs.settings import Settings
from tests.conftest import drop_topology, sine, write_wav
from tests.http_servers import Reply, http_server

pytestmark = pytest.mark.slow

T = TypeVar("T")
UPLOAD = "mutation($file: Upload!) { uploadAudio(file: $file) { id } }"
SUBMIT = "mutation($input: JobInput!) { submitJob(input: $input) { id } }"
JOB = """query($id: ID!) { job(id: $id) {
  status webhookDeliveries { webhookId type attempt statusCode error } } }"""


def gql(http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = http.post("/graphql", json={"query": query, "variables": variables or {}}).json()
    assert "errors" not in body, body
    return body["data"]


def until(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(0.2)
    raise TimeoutError(what)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(
        tmp_path / "data",
        extra_env={
            "AUDIO_ENGINE_POOL_SIZE": "1",
            "AUDIO_ENGINE_ALLOW_PRIVATE_URLS": "true",
            # Retries at most this far apart (the first one 10 s after the first try): the
            # test kills the bridge within that gap.
            "AUDIO_ENGINE_DELIVERY_RETRY_FIRST_S": "10",
            "AUDIO_ENGINE_DELIVERY_POLL_S": "0.2",
        },
    )
    yield stack
    asyncio.run(drop_topology(Settings(queue_prefix=stack.prefix)))


@pytest.fixture
def api(stack: Stack) -> Iterator[Service]:
    service = stack.start_api("--dev")
    yield service
    service.stop()


def test_bridge_killed_before_the_webhook_went_out_delivers_it_once_with_the_same_id(
    stack: Stack, api: Service, tmp_path: Path
) -> None:
    receiver_port = free_port()  # nothing listens there yet: the receiver is down
    hook = f"http://127.0.0.1:{receiver_port}/hook"
    wav = write_wav(tmp_path / "in.wav", sine(440.0, 0.25))
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        secret = gql(http, "mutation { rotateWebhookSecret }")["rotateWebhookSecret"]
        with wav.open("rb") as fh:
            operations = json.dumps({"query": UPLOAD, "variables": {"file": None}})
            response = http.post(
                "/graphql",
                data={"operations": operations, "map": json.dumps({"0": ["variables.file"]})},
                files={"0": ("in.wav", fh, "application/octet-stream")},
                headers={"Apollo-Require-Preflight": "true"},
            )
        file_id = response.json()["data"]["uploadAudio"]["id"]
        job = {"fileId": file_id, "effects": [{"gain": {"db": -3}}], "webhookUrl": hook}
        job_id = gql(http, SUBMIT, {"input": job})["submitJob"]["id"]

        def job_now() -> dict[str, Any]:
            found: dict[str, Any] = gql(http, JOB, {"id": job_id})["job"]
            return found

        def answered() -> list[dict[str, Any]] | None:
            tries: list[dict[str, Any]] = job_now()["webhookDeliveries"]
            return tries if any(t["statusCode"] for t in tries) else None

        bridge = stack.start("bridge")
        try:
            # The job ends and its webhook's first try finds no receiver; then the bridge
            # dies (SIGKILL: no goodbye, its Ray with it) before the retry is due.
            failed = until(
                lambda: job_now()["webhookDeliveries"] or None, 180, "no first webhook attempt"
            )
            bridge.kill()
        finally:
            bridge.kill()
        assert job_now()["status"] == "SUCCEEDED"
        assert failed[0]["statusCode"] is None and failed[0]["error"], failed

        with http_server(lambda r: Reply(204), port=receiver_port) as receiver:
            bridge = stack.start("bridge")
            try:
                tries = until(answered, 120, "the new bridge did not deliver the webhook")
            finally:
                bridge.stop()  # it may still be starting its Ray: no clean exit code then
        seen = receiver.seen()

    (delivered,) = seen  # exactly once
    payload = Webhook(secret).verify(delivered.body, delivered.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job_id
    assert {t["webhookId"] for t in tries} == {delivered.headers["webhook-id"]}
    assert [t["attempt"] for t in tries] == list(range(1, len(tries) + 1))
    assert [t["statusCode"] for t in tries] == [None] * (len(tries) - 1) + [204]
    assert all(t["error"] for t in tries[:-1])
