"""`make bench-smoke` in CI: every benchmark script runs on tiny inputs and prints its rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import smoke


def test_every_benchmark_script_is_in_the_smoke_run() -> None:
    names = {p.name for p in smoke.scripts()}
    assert {
        "dsp.py",
        "cli_process.py",
        "memory.py",
        "throughput.py",
        "speech.py",
        "traces.py",
    } <= names
    for script in smoke.scripts():
        assert "--smoke" in script.read_text(), f"{script.name} takes no --smoke flag"


@pytest.mark.slow
@pytest.mark.parametrize("script", smoke.scripts(), ids=lambda p: p.name)
def test_benchmark_runs_on_tiny_inputs(script: Path) -> None:
    out = smoke.run(script)
    assert out.strip()
