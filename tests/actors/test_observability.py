"""What the Ray dashboard and the metrics endpoint show of the pool: its named actors, ALIVE,
and the Prometheus series each actor exports (Ray prefixes them `ray_`)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import ray
from ray._private.worker import get_dashboard_url

from actors.pool import ActorPool
from jobs.contract import JobMessage
from tests.conftest import sine, write_wav

TOKEN = Path.home() / ".ray" / "auth_token"


def _auth() -> dict[str, str]:
    """Ray 2.60 turns token auth on for a local Ray; the dashboard's API then wants it."""
    return {"Authorization": f"Bearer {TOKEN.read_text().strip()}"} if TOKEN.exists() else {}


async def _ignore(_p: float) -> None:
    return None


async def test_dashboard_lists_the_named_actors_alive(pool: ActorPool) -> None:
    names = {f"{pool.settings.queue_prefix}-dsp-{i}" for i in range(pool.capacity)}
    url = f"http://{get_dashboard_url()}/api/v0/actors"
    async with httpx.AsyncClient(timeout=10, headers=_auth()) as http:
        response = await http.get(url, params={"limit": 1000, "detail": "false"})
    assert response.status_code == 200, response.text[:300]
    actors = response.json()["data"]["result"]["result"]
    states = {a["name"]: a["state"] for a in actors if a.get("name") in names}
    assert states == dict.fromkeys(names, "ALIVE")
    assert all(a["class_name"] == "DspWorker" for a in actors if a.get("name") in names)


async def test_actor_metrics_reach_the_node_metrics_endpoint(
    pool: ActorPool, storage_root: Path
) -> None:
    write_wav(storage_root / "in/metrics.wav", sine(440.0, 0.25))
    job_id = uuid.uuid4().hex
    message = JobMessage(
        job_id=job_id,
        input_key="in/metrics.wav",
        output_key=f"out/{job_id}.wav",
        output_format="WAV",
        output_subtype="FLOAT",
        effects=[{"reverb": {"impulse": "room"}}],
    )
    result = await pool.run(message, _ignore)
    nodes = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    urls = [f"http://{n['NodeManagerAddress']}:{n['MetricsExportPort']}/metrics" for n in nodes]
    wanted = ("ray_audio_jobs_processed", "ray_audio_processing_seconds", "ray_audio_ir_cache_hits")
    found: set[str] = set()
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(60):  # metrics are pushed every few seconds: wait at most ~60 s
            for url in urls:
                try:
                    text = (await http.get(url)).text
                except httpx.HTTPError:
                    continue
                found |= {
                    name
                    for name in wanted
                    for line in text.splitlines()
                    if line.startswith(name) and f'actor="{result.actor}"' in line
                }
            if found == set(wanted):
                break
            await asyncio.sleep(1.0)
    assert found == set(wanted)
