"""/metrics (Prometheus) and structured JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from api_client import gql, uploaded
from prometheus_client.parser import text_string_to_metric_families

from graph_api.runtime import Runtime
from jobs.broker import Broker
from jobs.contract import JobEvent
from jobs.logs import JobIdFilter, JsonFormatter, job_context
from jobs.settings import Settings
from jobs.states import JobStatus
from tests.jobs.job_records import run_to_success


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    submit = "mutation($i: JobInput!) { submitJob(input: $i) { id } }"
    ids = [
        (await gql(client, submit, {"i": {"fileId": file["id"], "effects": []}}))["data"][
            "submitJob"
        ]["id"]
        for _ in range(3)
    ]
    await client.get(f"/files/{file['id']}")
    await client.get("/files/nope")
    # One job runs and succeeds "in the bridge": the API sees its event on the broker.
    await run_to_success(runtime.store, ids[0])
    # A second job's duration comes from its RUNNING and SUCCEEDED events alone (its row
    # says QUEUED still: the API does not read it).
    t0 = datetime.now(UTC)
    broker = await Broker.connect(settings)
    try:
        again = JobEvent(job_id=ids[0], status=JobStatus.SUCCEEDED).encode()
        await broker.publish_event(again)  # the store published it already
        await broker.publish_event(
            JobEvent(job_id=ids[1], status=JobStatus.RUNNING, at=t0).encode()
        )
        later = t0 + timedelta(seconds=2.5)
        await broker.publish_event(
            JobEvent(job_id=ids[1], status=JobStatus.RUNNING, progress=0.5, at=later).encode()
        )
        done = JobEvent(job_id=ids[1], status=JobStatus.SUCCEEDED, at=t0 + timedelta(seconds=3))
        await broker.publish_event(done.encode())
    finally:
        await broker.close()

    async with asyncio.timeout(15):
        while True:
            response = await client.get("/metrics")
            got = samples(response.text)
            key = ("audio_engine_job_duration_seconds_count", (("status", "SUCCEEDED"),))
            if got.get(key) == 2:
                break
            await asyncio.sleep(0.05)
    assert response.headers["content-type"].startswith("text/plain")
    assert got[key] == 2  # the duplicate event is counted once
    bucket = "audio_engine_job_duration_seconds_bucket"
    assert got[(bucket, (("le", "2.0"), ("status", "SUCCEEDED")))] == 1  # from the row: ~0 s
    assert got[(bucket, (("le", "5.0"), ("status", "SUCCEEDED")))] == 2  # 3 s from the events
    assert got[("audio_engine_jobs", (("status", "QUEUED"),))] == 2
    assert got[("audio_engine_jobs", (("status", "SUCCEEDED"),))] == 1
    assert got[("audio_engine_jobs", (("status", "FAILED"),))] == 0
    # The outbox relay published the three job messages; nobody consumes them here.
    assert got[("audio_engine_jobs_queue_depth", ())] == 3
    route = (
        "audio_engine_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/files/{file_id}"), ("status", "200")),
    )
    assert got[route] == 1
    missing = (route[0], (("method", "GET"), ("route", "/files/{file_id}"), ("status", "404")))
    assert got[missing] == 1
    graphql = [k for k in got if k[0] == route[0] and ("route", "/graphql") in k[1]]
    assert graphql


def test_json_logs_carry_the_job_id() -> None:
    formatter, job_filter = JsonFormatter(), JobIdFilter()
    logger = logging.getLogger("test.json")

    def render(message: str) -> dict[str, object]:
        record = logger.makeRecord("test.json", logging.INFO, __file__, 1, message, (), None)
        job_filter.filter(record)
        line = formatter.format(record)
        assert "\n" not in line
        parsed: dict[str, object] = json.loads(line)
        return parsed

    plain = render("hello")
    assert set(plain) == {"time", "level", "logger", "message"}
    assert (plain["level"], plain["logger"], plain["message"]) == ("INFO", "test.json", "hello")
    with job_context("job-7"):
        assert render("working")["job_id"] == "job-7"
    assert "job_id" not in render("after")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logger.makeRecord(
            "test.json", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    assert "ValueError: boom" in json.loads(formatter.format(record))["exc_info"]


async def test_openapi_declares_the_rest_errors(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    assert {"401", "404"} <= set(paths["/files/{file_id}"]["get"]["responses"])
    assert {"201", "401", "413", "415", "422"} <= set(paths["/files"]["post"]["responses"])
    assert "401" in paths["/metrics"]["get"]["responses"]
    assert "bearer" in json.dumps(doc["components"]["securitySchemes"]).lower()
    assert (await client.get("/docs")).status_code == 200
