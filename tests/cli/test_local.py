"""`audio-engine process` refuses bad inputs the way uploads do (same check, same message),
with a non-zero exit and no traceback; `audio-engine analyze`, and `process` with a
`loudness` chain, in process. Every container it offers, and the refusals of issue 13: each
exits non-zero with a message naming the problem and leaves nothing behind (no output, no
hidden `.part` file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from cli import exits
from cli.main import main
from cli.stack import ROOT
from tests import ebur128
from tests.conftest import sine, write_wav
from tests.loudness_signals import music_like


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


def test_analyze_prints_the_full_measurement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_wav(tmp_path / "music.wav", music_like(48_000, 8.0, 31))
    assert main(["analyze", str(path), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    ref = ebur128.measure(path)
    assert measured["loudness_lufs"] == pytest.approx(ref.integrated, abs=0.15)
    assert measured["true_peak_db"] == pytest.approx(ref.true_peak, abs=0.2)
    assert measured["loudness_range_lu"] == pytest.approx(ref.lra, abs=0.6)
    assert measured["short_term_max_lufs"] == pytest.approx(ref.short_term_max, abs=0.15)
    assert measured["momentary_max_lufs"] == pytest.approx(ref.momentary_max, abs=0.15)
    assert main(["analyze", str(path)]) == 0
    text = capsys.readouterr().out
    assert "true peak:" in text and "loudness range:" in text and "dBTP" in text
    assert main(["analyze", str(tmp_path / "missing.wav")]) == 3  # bad input


def test_process_delivers_to_a_standard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_wav(tmp_path / "music.wav", 0.2 * music_like(44_100, 6.0, 32), 44_100)
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps([{"loudness": {"standard": "ATSC_A85"}}]))
    out = tmp_path / "out.flac"
    assert main(["process", str(source), "-o", str(out), "--chain", str(chain)]) == 0
    assert "passed" in capsys.readouterr().out
    ref = ebur128.measure(out)
    assert ref.integrated == pytest.approx(-24.0, abs=0.2)
    assert ref.true_peak <= -2.0 + 0.2


def test_process_decodes_an_mp3_input_as_one_read_does(tmp_path: Path) -> None:
    """The CLI reads inputs as the actors do (`jobs.decoding`): a 0 dB gain on an MP3 gives
    the whole-file decode back exactly, not the block-boundary errors libsndfile's seeks made."""
    source = tmp_path / "in.mp3"
    sf.write(str(source), (0.5 * music_like(48_000, 8.0, 33)).T, 48_000, format="MP3")
    decoded, _ = sf.read(str(source), dtype="float32", always_2d=True)
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps([{"gain": {"db": 0}}]))
    out = tmp_path / "out.wav"
    assert main(["process", str(source), "-o", str(out), "--chain", str(chain), "--quiet"]) == 0
    got, rate = sf.read(str(out), dtype="float32", always_2d=True)
    assert rate == 48_000 and got.shape == decoded.shape
    assert np.array_equal(got, decoded)


def _run(
    tmp_path: Path, chain: list[dict[str, Any]], out_name: str, *extra: str, frames: int = 24_000
) -> tuple[int, Path]:
    src = tmp_path / "in.wav"
    if not src.exists():
        write_wav(src, sine(440.0, frames / 48_000))
    chain_file = tmp_path / "chain.json"
    chain_file.write_text(json.dumps(chain))
    out = tmp_path / out_name
    code = main(
        ["process", str(src), "-o", str(out), "--chain", str(chain_file), "--quiet", *extra]
    )
    return code, out


def _nothing_left(tmp_path: Path) -> None:
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("in.wav", "chain.json"))
    assert left == [], left


@pytest.mark.parametrize(
    ("name", "args", "container", "subtype"),
    [
        ("out.aiff", (), "AIFF", "PCM_24"),
        ("out.aif", ("--subtype", "FLOAT"), "AIFF", "FLOAT"),
        ("out.caf", (), "CAF", "FLOAT"),
        ("out.caf", ("--subtype", "pcm_16"), "CAF", "PCM_16"),
        ("out.w64", (), "W64", "FLOAT"),
        ("out.w64", ("--subtype", "PCM_32"), "W64", "PCM_32"),
        ("out.bin", ("--format", "aiff"), "AIFF", "PCM_24"),
    ],
)
def test_new_containers_are_written_and_read_back(
    tmp_path: Path, name: str, args: tuple[str, ...], container: str, subtype: str
) -> None:
    code, out = _run(tmp_path, [{"gain": {"db": -3}}], name, *args)
    assert code == 0
    info = sf.info(str(out))
    assert (info.format, info.subtype) == (container, subtype)
    assert (info.frames, info.samplerate, info.channels) == (24_000, 48_000, 2)
    data, _ = sf.read(str(out), dtype="float64", always_2d=True)
    expected = sine(440.0, 0.5).T.astype(np.float64) * 10 ** (-3 / 20)
    tolerance = 2.0**-15 if subtype == "PCM_16" else 1e-6  # one 16-bit step, else float32
    np.testing.assert_allclose(data, expected, atol=tolerance)
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("name", ["out.wav", "out.flac", "out.mp3", "out.ogg", "out.aiff"])
def test_an_all_silent_input_cut_to_keep_ms_zero_is_a_readable_file(
    tmp_path: Path, name: str
) -> None:
    """`silence` with keepMs=0 on an input that is all pause: exit 0, a file every reader
    opens (one frame: FLAC and MP3 cannot hold none) and the one cut in `--edits`."""
    src = write_wav(tmp_path / "in.wav", np.zeros((2, 48_000 * 2), dtype=np.float32))
    edits = tmp_path / "edits.json"
    code, out = _run(tmp_path, [{"silence": {"keepMs": 0}}], name, "--edits", str(edits))
    assert src.exists() and code == 0
    data, rate = sf.read(str(out), dtype="float32", always_2d=True)
    assert rate == 48_000 and data.shape[1] == 2 and 1 <= data.shape[0] <= 2_048
    assert not np.any(np.abs(data) > 1e-3)
    assert json.loads(edits.read_text()) == [{"startS": 1 / 48_000, "endS": 2.0}]


@pytest.mark.parametrize(
    ("chain", "name", "args", "words"),
    [
        ([{"gain": {"db": 1}}], "out.wav", ("--format", "AIFC"), "use one of WAV, FLAC"),
        ([{"gain": {"db": 1}}], "out.aiff", ("--subtype", "PCM_8"), "AIFF cannot hold PCM_8"),
        ([{"gain": {"db": 1}}], "out.xyz", (), "cannot tell the output format"),
        ([{"gain": {"db": 1}}], "out", (), "no extension"),
        ([{"trim": {"startS": 2.0}}], "out.wav", (), "past the end"),
        ([{"resample": {"rate": 8000}}], "out.wav", (), "gives no frames"),
        ([{"normalize": {"mode": "LOUDNESS", "target": -14}}], "out.wav", (), "400 ms"),
        ([{"reverb": {"impulse": "cathedral"}}], "out.wav", (), "neither a preset"),
    ],
)
def test_refusals_exit_non_zero_with_a_message_and_leave_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    chain: list[dict[str, Any]],
    name: str,
    args: tuple[str, ...],
    words: str,
) -> None:
    frames = 2 if "resample" in json.dumps(chain) else 9_600  # 2 samples; 200 ms
    code, _ = _run(tmp_path, chain, name, *args, frames=frames)
    err = capsys.readouterr().err
    assert code == exits.BAD_INPUT
    assert words in err, err
    assert "Traceback" not in err
    _nothing_left(tmp_path)


def test_a_run_failing_midway_leaves_no_part_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failure found only after the output was opened: validation cannot know the reverb
    tail's length, so a trim past it fails at the end of the run, with the `.part` written."""
    chain = [{"reverb": {"impulse": "room"}}, {"trim": {"startS": 2.0}}]
    code, _ = _run(tmp_path, chain, "out.wav", frames=9_600)
    err = capsys.readouterr().err
    assert code == exits.BAD_INPUT
    assert "BAD_INPUT" in err and "no audio frames" in err, err
    _nothing_left(tmp_path)


def test_the_program_prints_what_main_prints_before_its_quick_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`audio-engine analyze` and `process` leave by `os._exit` (`cli.main.run`): their output,
    block-buffered on a pipe, is flushed first, and the output file is complete."""
    path = write_wav(tmp_path / "music.wav", music_like(48_000, 3.0, 7))
    assert main(["analyze", str(path), "--json"]) == 0
    in_python = capsys.readouterr().out
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    program = subprocess.run(
        [sys.executable, "-m", "cli.main", "analyze", str(path), "--json"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=env,
    )  # fmt: skip
    assert program.returncode == 0, program.stderr
    assert json.loads(program.stdout) == json.loads(in_python)
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps([{"gain": {"db": -6.0}}]))
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "process", str(path), "-o", str(tmp_path / "o.wav"),
         "--chain", str(chain)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{tmp_path / 'o.wav'}: WAV/")
    out, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    src, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(out, src * np.float32(10 ** (-6 / 20)), rtol=1e-6, atol=1e-7)
