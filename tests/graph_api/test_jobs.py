"""submitJob, cancelJob and the job queries against real RabbitMQ and SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from api_client import codes, free_port, gql, running, uploaded

from graph_api.runtime import Runtime
from jobs.contract import ControlMessage, JobMessage
from jobs.db import repository as repo
from jobs.effects import SPECS
from jobs.outbox import pending_outbox
from jobs.settings import Settings
from jobs.states import JobStatus

SUBMIT = """
mutation Submit($input: JobInput!) {
  submitJob(input: $input) { id status progress effects input { id } output { id } error { code } }
}
"""
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { id status } }"


async def submit(client: httpx.AsyncClient, **job_input: Any) -> dict[str, Any]:
    return await gql(client, SUBMIT, {"input": job_input})


async def next_message(settings: Settings, queue_name: str) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message on a queue (waits for the outbox relay to publish it)."""
    connection = await aio_pika.connect(settings.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        async with queue.iterator() as messages:
            message = await asyncio.wait_for(anext(aiter(messages)), 15)
            await message.ack()
            return message


async def queued_messages(settings: Settings) -> int:
    connection = await aio_pika.connect(settings.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.jobs_queue, passive=True)
        count = queue.declaration_result.message_count
        assert count is not None
        return count


async def nothing_written(runtime: Runtime, settings: Settings) -> None:
    async with runtime.db.transaction() as session:
        assert (await repo.list_jobs(session))[0] == []
        assert await runtime.db.run(pending_outbox) == []
    assert await queued_messages(settings) == 0


async def test_submit_queues_a_job_message_with_defaults(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    body = await submit(
        client,
        fileId=file["id"],
        effects=[
            {"gain": {"db": -3}},
            {"eq": {"bands": [{"kind": "PEAK", "frequency": 1000, "gainDb": 4}]}},
            {"reverb": {}},
        ],
    )
    assert "errors" not in body, body
    job = body["data"]["submitJob"]
    assert job["status"] == "QUEUED"
    assert job["progress"] == 0.0
    assert job["input"] == {"id": file["id"]}
    assert job["output"] is None and job["error"] is None
    band = {"kind": "PEAK", "frequency": 1000.0, "q": 0.7071, "gainDb": 4.0}
    assert job["effects"][1] == {"eq": {"bands": [band]}}

    message = JobMessage.decode((await next_message(settings, settings.jobs_queue)).body)
    assert message.job_id == job["id"]
    assert message.input_key == f"in/{file['id']}.wav"
    assert message.output_key == f"out/{job['id']}.wav"
    assert (message.output_format, message.output_subtype) == ("WAV", "FLOAT")
    assert message.effects == job["effects"]
    assert message.effects[2] == {
        "reverb": {"impulse": "room", "mix": 0.3, "preDelayMs": 0.0, "tail": True}
    }
    assert message.impulses == {}
    assert message.timeout_s == settings.job_timeout_s


async def test_uploaded_impulse_goes_into_the_message(
    client: httpx.AsyncClient, settings: Settings, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    ir = await uploaded(client, wav_file)
    body = await submit(
        client,
        fileId=file["id"],
        effects=[{"reverb": {"impulse": ir["id"], "mix": 1}}],
        output={"format": "FLAC", "subtype": "PCM_24"},
    )
    assert "errors" not in body, body
    message = JobMessage.decode((await next_message(settings, settings.jobs_queue)).body)
    assert message.impulses == {ir["id"]: f"in/{ir['id']}.wav"}
    assert (message.output_format, message.output_subtype) == ("FLAC", "PCM_24")
    assert message.output_key.endswith(".flac")


@pytest.mark.parametrize(
    ("effects", "output", "code", "words"),
    [
        ([{"eq": {"bands": [{"kind": "PEAK", "frequency": -5}]}}], None, "BAD_INPUT", "frequency"),
        (
            [{"eq": {"bands": [{"kind": "LOWPASS", "frequency": 24000}]}}],
            None,
            "BAD_INPUT",
            "Nyquist",
        ),
        ([{"eq": {"bands": [{"kind": "PEAK", "frequency": 100, "q": 0}]}}], None, "BAD_INPUT", "q"),
        ([{"gain": {"db": 100}}], None, "BAD_INPUT", "gain.db"),
        # The file is 1 s long: a profile must lie inside it and span at least 0.1 s.
        (
            [{"denoise": {"profile": {"startS": 0.5, "endS": 1.5}}}],
            None,
            "BAD_INPUT",
            "denoise.profile.endS",
        ),
        (
            [{"denoise": {"profile": {"startS": 0.2, "endS": 0.25}}}],
            None,
            "BAD_INPUT",
            "denoise.profile.endS",
        ),
        # ...and inside the signal reaching it: after a trim, that is 0.5 s.
        (
            [{"trim": {"startS": 0.5}}, {"denoise": {"profile": {"startS": 0.6, "endS": 0.9}}}],
            None,
            "BAD_INPUT",
            "denoise.profile.endS",
        ),
        ([{"denoise": {"reductionDb": 41}}], None, "BAD_INPUT", "denoise.reductionDb"),
        ([{"silence": {"keepMs": -1}}], None, "BAD_INPUT", "silence.keepMs"),
        ([{"gate": {"releaseMs": 20000}}], None, "BAD_INPUT", "gate.releaseMs"),
        ([{"reverb": {"impulse": "nope"}}], None, "BAD_INPUT", "'nope' is neither a preset"),
        ([{"trim": {"startS": 3600}}], None, "BAD_INPUT", "past the end"),
        (
            [{"trim": {"startS": 0.8}}, {"normalize": {"mode": "LOUDNESS", "target": -14}}],
            None,
            "BAD_INPUT",
            "effects[1] normalize LOUDNESS needs at least 400 ms",
        ),
        (
            [{"resample": {"rate": 8000}}, {"trim": {"startS": 1, "endS": 0.5}}],
            None,
            "BAD_INPUT",
            "endS",
        ),
        (
            [{"gain": {"db": 1}}],
            {"format": "FLAC", "subtype": "FLOAT"},
            "UNSUPPORTED_FORMAT",
            "FLAC",
        ),
    ],
)
async def test_invalid_jobs_are_refused_before_anything_is_written(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    wav_file: Path,
    effects: list[dict[str, Any]],
    output: dict[str, str] | None,
    code: str,
    words: str,
) -> None:
    file = await uploaded(client, wav_file)
    body = await submit(client, fileId=file["id"], effects=effects, output=output)
    assert codes(body) == [code], body
    assert words in body["errors"][0]["message"]
    await nothing_written(runtime, settings)


@pytest.mark.parametrize(
    ("output", "written"),
    [
        (None, ("WAV", "FLOAT")),
        ({"format": "WAV"}, ("WAV", "FLOAT")),
        ({"format": "FLAC"}, ("FLAC", "PCM_24")),  # FLAC has no float samples
        ({"format": "FLAC", "subtype": "PCM_16"}, ("FLAC", "PCM_16")),
        ({"format": "MP3", "subtype": "PCM_16"}, ("MP3", "MPEG_LAYER_III")),
        ({"format": "AIFF"}, ("AIFF", "PCM_24")),
        ({"format": "CAF", "subtype": "PCM_16"}, ("CAF", "PCM_16")),
        ({"format": "W64"}, ("W64", "FLOAT")),
    ],
)
async def test_the_sample_format_defaults_to_what_the_container_holds(
    client: httpx.AsyncClient,
    settings: Settings,
    wav_file: Path,
    output: dict[str, str] | None,
    written: tuple[str, str],
) -> None:
    file = await uploaded(client, wav_file)
    body = await submit(client, fileId=file["id"], effects=[{"gain": {"db": 1}}], output=output)
    assert "errors" not in body, body
    message = JobMessage.decode((await next_message(settings, settings.jobs_queue)).body)
    assert (message.output_format, message.output_subtype) == written


async def test_unknown_input_file_is_not_found(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    body = await submit(client, fileId="missing", effects=[{"gain": {"db": 1}}])
    assert codes(body) == ["NOT_FOUND"]
    await nothing_written(runtime, settings)


async def test_effect_input_is_one_of(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    body = await submit(
        client, fileId=file["id"], effects=[{"gain": {"db": 1}, "fade": {"inMs": 10}}]
    )
    assert body.get("data") is None
    assert "exactly one" in body["errors"][0]["message"]
    await nothing_written(runtime, settings)


async def test_submit_succeeds_while_rabbitmq_is_down(settings: Settings, wav_file: Path) -> None:
    down = settings.model_copy(
        update={"rabbitmq_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    )
    async with running(down) as (app, client):
        runtime: Runtime = app.state.runtime
        assert not runtime.broker_connected
        file = await uploaded(client, wav_file)
        body = await submit(client, fileId=file["id"], effects=[{"gain": {"db": -1}}])
        assert body["data"]["submitJob"]["status"] == "QUEUED", body
        pending = await runtime.db.run(pending_outbox)
        assert [JobMessage.decode(row.body).job_id for row in pending] == [
            body["data"]["submitJob"]["id"]
        ]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"].startswith("failed")
        assert ready.json()["checks"]["database"] == "ok"


async def test_jobs_are_paginated_newest_first(client: httpx.AsyncClient, wav_file: Path) -> None:
    file = await uploaded(client, wav_file)
    ids = []
    for db in (-1, -2, -3):
        body = await submit(client, fileId=file["id"], effects=[{"gain": {"db": db}}])
        ids.append(body["data"]["submitJob"]["id"])
    query = """
    query($after: String, $status: JobStatus) {
      jobs(first: 2, after: $after, status: $status) {
        edges { cursor node { id status } } pageInfo { hasNextPage endCursor }
      }
    }"""
    first = (await gql(client, query))["data"]["jobs"]
    assert [e["node"]["id"] for e in first["edges"]] == ids[::-1][:2]
    assert first["pageInfo"]["hasNextPage"] is True
    after = first["pageInfo"]["endCursor"]
    second = (await gql(client, query, {"after": after}))["data"]["jobs"]
    assert [e["node"]["id"] for e in second["edges"]] == [ids[0]]
    assert second["pageInfo"]["hasNextPage"] is False
    none = (await gql(client, query, {"status": "RUNNING"}))["data"]["jobs"]
    assert none == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}
    assert codes(await gql(client, "{ jobs(first: 0) { pageInfo { hasNextPage } } }")) == [
        "BAD_INPUT"
    ]


async def test_job_query(client: httpx.AsyncClient, wav_file: Path) -> None:
    file = await uploaded(client, wav_file)
    job = (await submit(client, fileId=file["id"], effects=[]))["data"]["submitJob"]
    q = "query($id: ID!) { job(id: $id) { id status segments input { filename } } }"
    assert (await gql(client, q, {"id": job["id"]}))["data"]["job"] == {
        "id": job["id"],
        "status": "QUEUED",
        "segments": 1,  # until a bridge splits it
        "input": {"filename": "tone.wav"},
    }
    assert (await gql(client, q, {"id": "unknown"}))["data"]["job"] is None


async def test_cancel_queued_then_finished_job(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    job = (await submit(client, fileId=file["id"], effects=[]))["data"]["submitJob"]
    body = await gql(client, CANCEL, {"id": job["id"]})
    assert body["data"]["cancelJob"] == {"id": job["id"], "status": "CANCELLED"}
    async with runtime.db.transaction() as session:
        assert (await repo.get_job(session, job["id"])).status is JobStatus.CANCELLED
    again = await gql(client, CANCEL, {"id": job["id"]})
    assert codes(again) == ["CONFLICT"]
    assert codes(await gql(client, CANCEL, {"id": "missing"})) == ["NOT_FOUND"]


async def test_cancel_running_job_asks_the_bridge(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, wav_file: Path
) -> None:
    connection = await aio_pika.connect(settings.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        control = await channel.declare_exchange(
            settings.control_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(control)

        file = await uploaded(client, wav_file)
        job = (await submit(client, fileId=file["id"], effects=[]))["data"]["submitJob"]
        await runtime.store.start(job["id"], "dsp-test")
        body = await gql(client, CANCEL, {"id": job["id"]})
        assert body["data"]["cancelJob"]["status"] == "RUNNING"

        async with queue.iterator() as messages:
            message = await asyncio.wait_for(anext(aiter(messages)), 15)
        assert ControlMessage.decode(message.body) == ControlMessage(
            kind="cancel", job_id=job["id"]
        )


async def test_effects_catalog_lists_every_spec(client: httpx.AsyncClient) -> None:
    body = await gql(
        client,
        """{ effects { name inputType params { name type unit min max minExclusive
             belowNyquist default required nullable choices
             fields { name type min minExclusive belowNyquist default required choices } } } }""",
    )
    catalog = {e["name"]: e for e in body["data"]["effects"]}
    assert set(catalog) == set(SPECS)
    gain = catalog["gain"]["params"][0]
    assert (gain["name"], gain["type"], gain["unit"]) == ("db", "FLOAT", "dB")
    assert (gain["min"], gain["max"], gain["required"], gain["default"]) == (-120, 60, True, None)
    bands = catalog["eq"]["params"][0]
    assert (bands["type"], bands["min"], bands["max"]) == ("LIST", 1, 64)
    fields = {f["name"]: f for f in bands["fields"]}
    assert fields["kind"]["choices"][0] == "LOWPASS"
    assert fields["frequency"]["minExclusive"] is True
    assert fields["frequency"]["belowNyquist"] is True
    assert fields["q"]["default"] == 0.7071
    trim_end = catalog["trim"]["params"][1]
    assert (trim_end["name"], trim_end["nullable"], trim_end["required"]) == ("endS", True, False)
    assert catalog["reverb"]["params"][0]["default"] == "room"
