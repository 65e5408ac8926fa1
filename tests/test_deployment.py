"""The files users deploy with: validated by the tools that will read them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_docker_compose_file_is_valid() -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (.ci/run installs Debian's package)")
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_has_the_full_stack() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"rabbitmq", "postgres", "ray-head", "ray-worker", "api", "bridge"} <= set(services)
    assert "15672:15672" in services["rabbitmq"]["ports"]
    assert "8265:8265" in services["ray-head"]["ports"]
    for name in ("rabbitmq", "postgres", "ray-head", "api"):
        assert "healthcheck" in services[name], name


def test_ray_cluster_config_passes_rays_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))
    head_cmds = " ".join(config["head_start_ray_commands"])
    assert "audio-engine bridge --ray-address auto" in head_cmds
    assert "audio-engine api" in head_cmds


def test_image_installs_like_a_developer() -> None:
    """Dockerfile and README's set-up share one install command and one lock."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"RUN make install\b", dockerfile)
    assert "-c requirements.lock" in makefile
    assert (ROOT / "requirements.lock").is_file()


def test_docker_compose_keeps_audio_in_minio() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"9000:9000", "9001:9001"} <= set(services["minio"]["ports"])  # S3 API, console
    assert "mc mb --ignore-existing local/audio" in services["minio-init"]["entrypoint"]
    for name in ("api", "bridge", "ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["AUDIO_ENGINE_STORAGE_URL"] == "s3://audio/engine", name
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
        assert "AUDIO_ENGINE_STORAGE_SHARED" not in env, name
        assert "volumes" not in services[name], name  # no shared mount
    for name in ("api", "bridge"):
        condition = services[name]["depends_on"]["minio-init"]["condition"]
        assert condition == "service_completed_successfully"


def test_ray_cluster_uses_object_storage() -> None:
    text = (ROOT / "ray_cluster.yaml").read_text()
    assert "AUDIO_ENGINE_STORAGE_URL=s3://" in text
    assert "nfs" not in text.lower()
