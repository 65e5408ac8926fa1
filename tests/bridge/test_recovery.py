"""Jobs a dead bridge left behind, seen by a subscriber that was already listening: the
recovery sweep's re-queue or failure reaches it like any other change, and so does the end
of a job whose bridge was SIGKILLed and whose message a new bridge picked up."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.pool import ActorPool
from cli.client import SUBMIT, graphql, job_events, upload
from cli.stack import Stack
from jobs.outbox import mark_sent, pending_outbox
from jobs.settings import Settings
from tests.bridge.conftest import RunningBridge
from tests.conftest import write_wav
from tests.graph_api.api_client import serving

GAIN = [{"gain": {"db": -6}}]


async def _listen(url: str, job_id: str, heard: list[dict[str, Any]]) -> None:
    async for event in job_events(url, job_id):
        heard.append(event)


async def _until(predicate: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("tries_before", [1, 3], ids=["requeued", "worker-lost"])
async def test_a_subscriber_hears_what_the_recovery_sweep_does(
    bridge_settings: Settings, shared_pool: ActorPool, wav_file: Path, tries_before: int
) -> None:
    """RUNNING with its message lost (the bridge died): with tries left it is re-queued and
    runs again; after `max_attempts` (3) it fails WORKER_LOST. The subscriber opened while
    the job was orphaned hears either."""
    settings = bridge_settings.model_copy(update={"auth_enabled": False})
    async with RunningBridge(settings, shared_pool, start=False) as harness:
        source = await harness.add_input("tone.wav", wav_file)
        message = await harness.create_job(source, GAIN)  # stored, never published
        for _ in range(tries_before):
            await harness.store.start(message.job_id, "a bridge that died")
        # Its message went out once and died with that bridge: nothing left to publish.
        sent = [row.id for row in await harness.db.run(pending_outbox)]
        await harness.db.run(mark_sent, sent, datetime.now(UTC))
        async with serving(settings) as base:
            heard: list[dict[str, Any]] = []
            listener = asyncio.create_task(_listen(f"http://{base}", message.job_id, heard))
            await _until(lambda: heard, 15)  # subscribed: it sent the current state
            await harness.bridge.start()
            await asyncio.wait_for(listener, 120)
    statuses = [e["status"] for e in heard]
    if tries_before < settings.max_attempts:
        assert statuses[:3] == ["RUNNING", "QUEUED", "RUNNING"], heard
        assert statuses[-1] == "SUCCEEDED", heard
    else:
        assert statuses == ["RUNNING", "FAILED"], heard
        assert heard[-1]["message"].startswith("WORKER_LOST: the bridge running the job stopped")
        assert heard[-1]["job"]["error"]["code"] == "WORKER_LOST"


def _long_wav(path: Path) -> Path:
    rng = np.random.default_rng(5)
    return write_wav(path, (0.1 * rng.standard_normal((1, 120 * 48_000))).astype(np.float32))


@pytest.mark.slow
def test_a_subscriber_hears_the_end_of_a_job_whose_bridge_was_killed(tmp_path: Path) -> None:
    """SIGKILL the bridge while it runs the job: its message returns to the queue, a new
    bridge runs it, and the subscriber that stayed open gets the final state."""
    stack = Stack(tmp_path / "data", extra_env={"AUDIO_ENGINE_POOL_SIZE": "1"})
    api = stack.start("api", "--dev")
    bridges = []
    heard: list[dict[str, Any]] = []
    listener: threading.Thread | None = None
    try:
        api.wait_http(f"{stack.url}/healthz")

        async def submit() -> str:
            import httpx

            async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
                file_id = (await upload(http, _long_wav(tmp_path / "long.wav")))["id"]
                chain = [{"reverb": {"impulse": "hall", "mix": 0.5}}]
                data = await graphql(http, SUBMIT, {"input": {"fileId": file_id, "effects": chain}})
            return str(data["submitJob"]["id"])

        job_id = asyncio.run(submit())
        listener = threading.Thread(
            target=lambda: asyncio.run(_listen(stack.url, job_id, heard)), daemon=True
        )
        listener.start()
        asyncio.run(_until(lambda: heard, 30))  # subscribed: it sent the current state
        bridges.append(stack.start("bridge"))
        asyncio.run(_until(lambda: any(e["status"] == "RUNNING" for e in heard), 180))
        bridges[0].kill()  # mid-job: its message goes back to the queue unacked
        bridges.append(stack.start("bridge"))
        listener.join(300)
        assert not listener.is_alive(), f"no final state after the restart: {heard}"
    finally:
        for bridge in bridges:
            bridge.stop()
        api.stop()
    statuses = [e["status"] for e in heard]
    assert statuses[0] == "QUEUED" and statuses[-1] == "SUCCEEDED", heard
    assert heard[-1]["job"]["output"] is not None
