"""The API outlives a missing broker: jobs wait in the outbox and go out once it appears."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from api_client import free_port, gql, heartbeat, running, uploaded
from test_jobs import next_message

from graph_api.runtime import Runtime
from jobs.contract import JobMessage
from jobs.outbox import pending_outbox
from jobs.settings import Settings


@contextlib.asynccontextmanager
async def forwarder(port: int, target_port: int = 5672) -> AsyncIterator[None]:
    """A TCP relay to RabbitMQ on `port`: the broker "comes up" when this starts."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_jobs_submitted_while_broker_is_down_go_out_when_it_comes_up(
    settings: Settings, wav_file: Path
) -> None:
    port = free_port()
    late = settings.model_copy(update={"rabbitmq_url": f"amqp://guest:guest@127.0.0.1:{port}/"})
    async with running(late) as (app, client):
        runtime: Runtime = app.state.runtime
        file = await uploaded(client, wav_file)
        body = await gql(
            client,
            "mutation($i: JobInput!) { submitJob(input: $i) { id status } }",
            {"i": {"fileId": file["id"], "effects": [{"gain": {"db": -2}}]}},
        )
        job = body["data"]["submitJob"]
        assert job["status"] == "QUEUED"
        assert (await client.get("/readyz")).status_code == 503

        async with forwarder(port):
            async with asyncio.timeout(30):
                while not runtime.broker_connected:
                    await asyncio.sleep(0.05)
            message = JobMessage.decode((await next_message(settings, settings.jobs_queue)).body)
            assert message.job_id == job["id"]
            # Stamped sent once the relay idles (no transition came to take the stamp along).
            async with asyncio.timeout(10):
                while await runtime.db.run(pending_outbox):
                    await asyncio.sleep(0.05)
            await heartbeat(app, settings)
            assert (await client.get("/readyz")).status_code == 200
