"""`audio-engine process` refuses bad inputs the way uploads do (same check, same message),
with a non-zero exit and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli import exits
from tests.conftest import sine, write_wav
from tests.processes import ROOT


def _process(src: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps([{"normalize": {"mode": "PEAK", "target": -1.0}}]))
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "process", str(src), "-o", str(tmp_path / "out.wav"),
         "--chain", str(chain), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fill", "said"), [(np.nan, "a NaN sample"), (np.inf, "an infinite sample (inf)")]
)
def test_non_finite_input_exits_non_zero_naming_the_sample(
    tmp_path: Path, fill: float, said: str
) -> None:
    audio = sine(440.0, 1.0)
    audio[1, 30_000] = fill
    result = _process(write_wav(tmp_path / "bad.wav", audio), tmp_path)
    assert result.returncode == exits.BAD_INPUT
    assert result.stderr.startswith("audio-engine process: UNSUPPORTED_AUDIO: the file has")
    assert f"{said} at frame 30000, channel 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*out.wav*"))


def test_truncated_input_exits_non_zero_and_reports_no_declared_length(tmp_path: Path) -> None:
    whole = write_wav(tmp_path / "whole.wav", sine(440.0, 1.0))
    data = whole.read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(data[: len(data) // 2])
    result = _process(half, tmp_path)
    assert result.returncode == exits.BAD_INPUT
    assert "UNSUPPORTED_AUDIO" in result.stderr and "truncated" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.wav").exists()
