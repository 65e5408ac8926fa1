"""README's commands are run here, so the tour cannot rot.

Every ```sh block runs, in order, in one bash script against a real `serve` stack, unless an
HTML comment `<!-- readme-test: skip (why) -->` right above it says why it is covered
elsewhere. The address in the README is rewritten to the stack's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from cli.stack import ROOT, Stack
from tests.conftest import TOOLS, pytest_report_header

FENCE = re.compile(
    r"(<!-- readme-test: skip \((?P<why>[^)]*)\) -->\s*)?```sh\n(?P<body>.*?)```", re.S
)


def blocks() -> list[tuple[str, str | None]]:
    text = (ROOT / "README.md").read_text()
    return [(m["body"], m["why"]) for m in FENCE.finditer(text)]


def test_every_skipped_block_says_why() -> None:
    found = blocks()
    assert len(found) >= 3
    assert all(why is None or why.strip() for _, why in found)


def test_make_run_and_make_test_are_what_ci_and_tests_run() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: install\n\t\$\(BIN\)/audio-engine serve$", makefile, re.M)
    assert re.search(r"^test: install\n\t\$\(BIN\)/python -m pytest$", makefile, re.M)
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_a_missing_tool_is_named_at_the_top_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    """`make test` on a machine without the Debian packages says which and how to get them,
    and `.ci/run` installs each of them."""
    monkeypatch.setenv("PATH", str(tmp_path))  # none of the tools
    header = pytest_report_header(pytestconfig)
    assert header is not None and header.startswith("MISSING TOOLS")
    assert "apt-get install ffmpeg espeak-ng chromium docker-compose" in header
    ci = (ROOT / ".ci" / "run").read_text()
    assert all(f"install -y -qq {tool}" in ci for tool in TOOLS)


def test_readme_tour_runs(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "data", extra_env={"AUDIO_ENGINE_POOL_SIZE": "1"})
    key = stack.create_key("readme", admin=False)
    service = stack.start("serve")
    try:
        service.wait_http(f"{stack.url}/readyz")
        service.wait_log("bridge consuming")
        script = "\n".join(body for body, why in blocks() if why is None)
        script = script.replace("http://127.0.0.1:8000", stack.url)
        work = tmp_path / "tour"
        work.mkdir()
        (work / ".venv").symlink_to(ROOT / ".venv")
        env = {**stack.env(), "AUDIO_ENGINE_API_KEY": key}
        env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "identical" in result.stdout
        for name in ("tone.processed.wav", "tone.local.wav", "out.wav"):
            info = sf.info(str(work / name))
            assert info.samplerate == 48_000 and info.frames > 0, name
    finally:
        service.stop()
