"""A two-node Ray cluster on one machine (two `ray start` node processes, one CPU each), and
real `audio-engine api --dev` / `bridge` processes joining it with
`AUDIO_ENGINE_RAY_ADDRESS=127.0.0.1:<port>`: the pool spreads over both nodes, jobs run on
both, and the local-folder storage must be declared shared.

The nodes get their own temp dir and free ports, run in their own process groups and are
stopped by group id (never `ray stop`, which would stop every Ray on the machine, the
suite's own included). Token auth is on for both (`RAY_AUTH_MODE=token`, the token from
`~/.ray/auth_token`), as Ray 2.60 does for a local head by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.client import SUBMIT, graphql, job_events, upload
from cli.stack import S3Server, Service, Stack, free_port
from jobs.db import Database
from jobs.db import repository as repo
from tests.conftest import sine, write_wav

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))
TOKEN = Path.home() / ".ray" / "auth_token"
AUTH_ENV = {"RAY_AUTH_MODE": "token"}


def _agent_ports() -> list[str]:
    # Each node of one machine needs its own agent ports (the defaults would collide).
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
    ]


@dataclass
class TwoNodeCluster:
    temp_dir: Path
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def node_dir(self, name: str) -> Path:
        return self.temp_dir / f"node-{name}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN.read_text().strip()}"} if TOKEN.exists() else {}

    def _start(self, name: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env.update(AUTH_ENV)
        # Each node its own empty local folder, as on separate machines (object storage).
        env["AUDIO_ENGINE_DATA_DIR"] = str(self.node_dir(name))
        log = (self.temp_dir / f"{name}.log").open("wb")
        self.nodes.append(
            subprocess.Popen(
                [RAY, "start", "--block", "--disable-usage-stats", "--num-cpus=1", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped by its id
            )
        )

    def start(self) -> None:
        # A local `ray.init()` makes the token on first use; `ray start` only reads it, so a
        # machine that never ran Ray (or this module run alone) needs one made first.
        subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True)
        self._start(
            "head",
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp_dir}",
            "--node-ip-address=127.0.0.1",
            '--resources={"head": 1}',
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={self.client_port}",
            *_agent_ports(),
        )
        self.wait_nodes(1)
        self._start(
            "second",
            f"--address={self.address}",
            "--node-ip-address=127.0.0.1",
            '--resources={"second": 1}',
            *_agent_ports(),
        )
        self.wait_nodes(2)

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.dashboard}{path}", params=params, headers=self.headers())
        response.raise_for_status()
        return response.json()["data"]["result"]["result"]

    def wait_nodes(self, count: int, timeout: float = 120.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.nodes:
                if proc.poll() is not None:
                    raise RuntimeError(f"a ray node exited {proc.returncode}:\n{self.logs()}")
            try:
                alive = [n for n in self.get("/api/v0/nodes") if n["state"] == "ALIVE"]
            except (httpx.HTTPError, KeyError, ValueError):
                alive = []
            if len(alive) >= count:
                return alive
            time.sleep(0.5)
        raise TimeoutError(f"{count} Ray nodes not up after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.temp_dir.glob("*.log"))

    def client_server_logs(self) -> str:
        """The head's Ray client servers' own logs: why a `ray://` join was refused."""
        found = sorted(self.temp_dir.glob("session_latest/logs/ray_client_server*"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in found)

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            # Whatever of the node's group outlived `ray start --block` goes now.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def cluster(s3_server: S3Server) -> Iterator[TwoNodeCluster]:
    # After moto: the nodes inherit its AWS_* variables, as real nodes get their credentials.
    # Short path: Ray's unix sockets live under it (108-byte limit).
    temp_dir = Path(tempfile.mkdtemp(prefix="ae-ray-", dir="/tmp"))
    running = TwoNodeCluster(temp_dir)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stack(cluster: TwoNodeCluster, data_dir: Path, shared: bool, address: str = "") -> Stack:
    # `auto` finds the cluster through RAY_ADDRESS, as on a node of it (`ray start` sets it).
    env = {"AUDIO_ENGINE_RAY_ADDRESS": address or cluster.address}
    if address == "auto":
        env["RAY_ADDRESS"] = cluster.address
    return Stack(
        data_dir,
        extra_env={
            **AUTH_ENV,
            **env,
            "AUDIO_ENGINE_STORAGE_SHARED": str(shared).lower(),
            "AUDIO_ENGINE_POOL_SIZE": "2",
            "AUDIO_ENGINE_BLOCK_FRAMES": "8192",
        },
    )


def test_local_storage_is_refused_on_two_nodes_unless_declared_shared(
    cluster: TwoNodeCluster, tmp_path: Path
) -> None:
    stack = _stack(cluster, tmp_path / "data", shared=False, address="auto")
    bridge = stack.start("bridge")
    try:
        code = bridge.proc.wait(120)
    finally:
        bridge.kill()
    assert code != 0
    assert "the Ray cluster has 2 nodes" in bridge.log()  # it joined this cluster via auto
    assert "StorageNotShared" in bridge.log() and "STORAGE_SHARED=true" in bridge.log()
    assert not [a for a in cluster.get("/api/v0/actors") if a["state"] == "ALIVE" and
                a.get("name", "").startswith(f"{stack.prefix}-dsp-")]  # fmt: skip


async def _run_jobs(url: str, path: Path, count: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        file = await upload(http, path)
        effects = [{"reverb": {"impulse": "hall", "mix": 0.3}}]
        ids = [
            (await graphql(http, SUBMIT, {"input": {"fileId": file["id"], "effects": effects}}))[
                "submitJob"
            ]["id"]
            for _ in range(count)
        ]

    async def last(job_id: str) -> dict[str, Any]:
        return [e async for e in job_events(url, job_id)][-1]

    return list(await asyncio.gather(*(last(i) for i in ids)))


@contextlib.contextmanager
def _serving(stack: Stack) -> Iterator[Service]:
    """An API (`--dev`) and a bridge on `stack` until the block ends; yields the bridge,
    which must then stop cleanly."""
    api = stack.start("api", "--dev")
    bridge: Service | None = None
    try:
        api.wait_http(f"{stack.url}/healthz")
        bridge = stack.start("bridge")
        bridge.wait_log("bridge consuming", timeout=180)
        yield bridge
    finally:
        if bridge is not None:
            assert bridge.stop() == 0, bridge.log()[-3000:]
        api.stop()


def test_pool_spreads_over_both_nodes_and_jobs_run_on_both(
    cluster: TwoNodeCluster, tmp_path: Path
) -> None:
    stack = _stack(cluster, tmp_path / "data", shared=True)
    with _serving(stack) as bridge:
        names = {f"{stack.prefix}-dsp-0", f"{stack.prefix}-dsp-1"}
        actors = {a["name"]: a for a in cluster.get("/api/v0/actors") if a.get("name") in names}
        assert {a["state"] for a in actors.values()} == {"ALIVE"}, actors
        assert len({a["node_id"] for a in actors.values()}) == 2  # SPREAD: one per node

        path = write_wav(tmp_path / "in.wav", sine(440.0, 3.0))
        events = asyncio.run(_run_jobs(stack.url, path, 6))
        assert [e["status"] for e in events] == ["SUCCEEDED"] * 6, events

        async def placements() -> dict[str, tuple[str, str]]:
            db = Database(f"sqlite+aiosqlite:///{stack.data_dir / 'audio-engine.db'}")
            try:
                async with db.transaction() as s:
                    jobs, _ = await repo.list_jobs(s, first=100)
                    return {j.id: (j.node_id or "", j.actor or "") for j in jobs if j.node_id}
            finally:
                await db.close()

        ran_on = asyncio.run(placements())
        assert len(ran_on) == 6
        nodes = {node for node, _ in ran_on.values()}
        assert nodes == {a["node_id"] for a in actors.values()}, ran_on

        # The bridge logs JSON lines (cli.main -> configure_logging) carrying the job id.
        lines = [json.loads(x) for x in bridge.log().splitlines() if x.startswith('{"time"')]
        assert {line.get("job_id") for line in lines} >= set(ran_on)


def test_object_storage_needs_no_shared_mount(
    cluster: TwoNodeCluster, s3_server: S3Server, tmp_path: Path
) -> None:
    stack = _stack(cluster, tmp_path / "data", shared=False)
    stack.storage_url = s3_server.url()
    with _serving(stack):
        path = write_wav(tmp_path / "in.wav", sine(440.0, 2.0))
        events = asyncio.run(_run_jobs(stack.url, path, 4))
        assert [e["status"] for e in events] == ["SUCCEEDED"] * 4, events
    outputs = [o for o in stack.storage().list("out/")]
    assert len(outputs) == 4 and all(o.size > 0 for o in outputs)
    # Nothing went through a folder: no storage folder, and every scratch copy is gone.
    assert not (stack.data_dir / "storage").exists()
    assert not [p for p in (stack.data_dir / "scratch").rglob("*") if p.is_file()]
    # Each node's actors copied to their own node's folder, and left nothing there.
    for node in ("head", "second"):
        scratch = cluster.node_dir(node) / "scratch"
        assert scratch.is_dir(), f"no actor on the {node} node used its own folder"
        assert not [p for p in scratch.rglob("*") if p.is_file()]


def test_bridge_joins_through_ray_client(cluster: TwoNodeCluster, tmp_path: Path) -> None:
    stack = _stack(
        cluster, tmp_path / "data", shared=True, address=f"ray://127.0.0.1:{cluster.client_port}"
    )
    try:
        with _serving(stack) as bridge:
            path = write_wav(tmp_path / "in.wav", sine(440.0, 1.0))
            events = asyncio.run(_run_jobs(stack.url, path, 2))
            assert [e["status"] for e in events] == ["SUCCEEDED"] * 2, bridge.log()[-4000:]
    except (AssertionError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\n{cluster.client_server_logs()}") from exc


JOIN_ONCE_REFUSED = """
import sys, ray
from actors import pool

real_init, calls = ray.init, []

def init(*args, **kwargs):
    calls.append(kwargs.get("address"))
    if len(calls) == 1:  # what a ray:// head answers when it fails to start a client server
        raise ConnectionAbortedError("Initialization failure from server")
    return real_init(*args, **kwargs)

ray.init = init
pool.JOIN_BACKOFF_S = 0.1
pool._join_ray(sys.argv[1])
print(len(calls), int(ray.cluster_resources()["CPU"]))
"""


def test_joining_through_ray_client_tries_again_after_a_failed_server_start(
    cluster: TwoNodeCluster,
) -> None:
    address = f"ray://127.0.0.1:{cluster.client_port}"
    done = subprocess.run(
        [sys.executable, "-c", JOIN_ONCE_REFUSED, address],
        env={**os.environ, **AUTH_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["2", "2"]  # second try joined both nodes' CPUs
    assert "trying again" in done.stderr
