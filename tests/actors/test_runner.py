"""`process_file` against an independent scipy reference, and its refusals."""

from __future__ import annotations

import math
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import sosfilt

from actors.impulses import uncached_impulses
from actors.runner import measure_album, measure_file, process_file, render_to_spec
from dsp.loudness import LoudnessMeter
from jobs.album import pooled_loudness
from jobs.effects import parse_chain
from jobs.errors import BadInput, JobCancelled, ProcessingFailed, UnsupportedAudio
from jobs.probe import inspect
from jobs.settings import Settings
from tests import ebur128
from tests.conftest import sine, write_wav
from tests.loudness_signals import music_like


def rbj(kind: str, f0: float, q: float, gain_db: float, fs: int) -> list[float]:
    """Audio-EQ-Cookbook biquad, normalised to a0 = 1, as one scipy SOS row."""
    w0 = 2 * math.pi * f0 / fs
    alpha = math.sin(w0) / (2 * q)
    a = 10 ** (gain_db / 40)
    cw = math.cos(w0)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif kind == "lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    else:
        raise ValueError(kind)
    return [v / den[0] for v in b] + [1.0] + [v / den[0] for v in den[1:]]


def test_gain_and_eq_match_scipy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = sine(440.0, 1.5, 48_000) + 0.1 * rng.standard_normal((2, 72_000)).astype(np.float32)
    src = write_wav(tmp_path / "in.wav", x)
    calls = parse_chain(
        [
            {"gain": {"db": -6}},
            {
                "eq": {
                    "bands": [
                        {"kind": "PEAK", "frequency": 1000, "q": 1.2, "gainDb": 5},
                        {"kind": "HIGHPASS", "frequency": 80},
                        {"kind": "LOWPASS", "frequency": 12000, "q": 0.9},
                    ]
                }
            },
        ],
        48_000,
    )
    out = tmp_path / "out.wav"
    info = process_file(src, out, calls, "WAV", "FLOAT", 1000, uncached_impulses({}))

    sos = np.array(
        [
            rbj("peak", 1000, 1.2, 5, 48_000),
            rbj("highpass", 80, 0.7071, 0, 48_000),
            rbj("lowpass", 12000, 0.9, 0, 48_000),
        ]
    )
    gained = (x.astype(np.float64) * 10 ** (-6 / 20)).astype(np.float32)
    expected = sosfilt(sos, gained.astype(np.float64), axis=1)
    got, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 48_000 and info.frames == x.shape[1] and info.channels == 2
    np.testing.assert_allclose(got.T, expected, atol=1e-6)


def test_undecodable_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEnot really audio at all" * 10)
    calls = parse_chain([{"gain": {"db": 0}}])
    with pytest.raises(UnsupportedAudio, match="not decodable audio"):
        process_file(bad, tmp_path / "o.wav", calls, "WAV", "FLOAT", 1024, uncached_impulses({}))


def test_should_stop_cancels_between_blocks(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "in.wav", sine(440.0, 1.0))
    seen: list[float] = []
    with pytest.raises(JobCancelled):
        process_file(
            src,
            tmp_path / "o.wav",
            parse_chain([{"gain": {"db": 0}}]),
            "WAV",
            "FLOAT",
            1024,
            uncached_impulses({}),
            progress=seen.append,
            should_stop=lambda: len(seen) >= 3,
        )
    assert len(seen) == 3


def test_pcm_output_is_clipped_not_wrapped(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "in.wav", sine(440.0, 0.5, level_db=0.0))
    out = tmp_path / "o.wav"
    calls = parse_chain([{"gain": {"db": 12}}])
    process_file(src, out, calls, "WAV", "PCM_16", 1024, uncached_impulses({}))
    got, _ = sf.read(out, dtype="float32")
    assert got.max() > 0.99 and got.min() < -0.99


# Every container and sample format a job may ask for (jobs.formats).
OUTPUTS = [
    ("WAV", "FLOAT"),
    ("WAV", "PCM_16"),
    ("WAV", "PCM_24"),
    ("WAV", "PCM_32"),
    ("FLAC", "PCM_16"),
    ("FLAC", "PCM_24"),
    ("OGG", "VORBIS"),
    ("MP3", "MPEG_LAYER_III"),
]


def _run(src: Path, out: Path, chain: list[dict[str, object]], fmt: str, subtype: str) -> object:
    return process_file(
        src, out, parse_chain(chain, 48_000), fmt, subtype, 4096, uncached_impulses({})
    )


@pytest.mark.parametrize(("fmt", "subtype"), OUTPUTS)
@pytest.mark.parametrize("fill", ["nan", "huge", "mixed"])
def test_crafted_float_input_in_storage_is_refused_before_any_encoder_sees_it(
    tmp_path: Path, fmt: str, subtype: str, fill: str
) -> None:
    """A file that reached storage around the upload check (stored before it existed, copied
    in by hand). LAME aborted the whole process on NaN or 3e38: this runs in the test's own
    process, so a sample reaching the encoder would kill pytest, not fail a test."""
    rng = np.random.default_rng(1)
    audio = {
        "nan": np.full((2, 9000), np.nan, dtype=np.float32),
        "huge": np.full((2, 9000), 3e38, dtype=np.float32),
        "mixed": (0.1 * rng.standard_normal((2, 9000))).astype(np.float32),
    }[fill]
    if fill == "mixed":
        audio[1, 5000], audio[0, 6000], audio[1, 7000] = np.inf, np.nan, -3e38
    src = write_wav(tmp_path / "crafted.wav", audio)
    with pytest.raises(UnsupportedAudio) as caught:
        _run(src, tmp_path / "out", [{"gain": {"db": 0}}], fmt, subtype)
    where = "frame 5000, channel 1" if fill == "mixed" else "frame 0, channel 0"
    assert caught.value.code == "UNSUPPORTED_AUDIO" and where in caught.value.message


@pytest.mark.parametrize(("fmt", "subtype"), OUTPUTS)
def test_a_chain_that_blows_samples_up_never_hands_them_to_an_encoder(
    tmp_path: Path, fmt: str, subtype: str
) -> None:
    """+120 dB on a -6 dBFS tone gives 5e5: PCM clips it to full scale (a legitimate, if
    loud, result); float and lossy outputs refuse it, as LAME would abort on it."""
    src = write_wav(tmp_path / "tone.wav", sine(440.0, 0.5))
    chain: list[dict[str, object]] = [{"gain": {"db": 60}}, {"gain": {"db": 60}}]
    out = tmp_path / "out"
    if subtype.startswith("PCM"):
        _run(src, out, chain, fmt, subtype)
        y, _ = sf.read(str(out), dtype="float32")
        assert np.all(np.isfinite(y)) and float(np.max(np.abs(y))) <= 1.0
        return
    with pytest.raises(ProcessingFailed) as caught:
        _run(src, out, chain, fmt, subtype)
    message = caught.value.message
    assert "the effect chain's output has a sample of" in message
    assert "frame" in message and "channel" in message and "discarded" in message


def test_a_truncated_input_in_storage_is_refused(tmp_path: Path) -> None:
    whole = write_wav(tmp_path / "whole.wav", sine(440.0, 1.0))
    data = whole.read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedAudio, match="truncated") as caught:
        _run(half, tmp_path / "out.wav", [{"gain": {"db": 0}}], "WAV", "FLOAT")
    assert str(tmp_path) not in caught.value.message


def test_a_truncated_flac_is_refused_by_the_render_alone(tmp_path: Path) -> None:
    """The CLI no longer decodes a file before rendering it: the render itself refuses a file
    that decodes to fewer frames than its header declares (FLAC has no data-chunk size)."""
    whole = tmp_path / "whole.flac"
    sf.write(whole, sine(440.0, 3.0).T, 48_000, format="FLAC", subtype="PCM_16")
    half = tmp_path / "half.flac"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(UnsupportedAudio, match="truncated"):
        _run(half, tmp_path / "out.wav", [{"gain": {"db": 0}}], "WAV", "FLOAT")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_24")])
def test_a_chain_that_overflows_to_infinity_is_refused_even_for_pcm(
    tmp_path: Path, fmt: str, subtype: str
) -> None:
    """13 x +60 dB passes float32's 3.4e38: infinity, which PCM would write as full-scale DC."""
    src = write_wav(tmp_path / "tone.wav", sine(440.0, 0.2))
    with pytest.raises(ProcessingFailed, match=r"an infinite sample \(inf\) at frame \d+"):
        _run(src, tmp_path / "out", [{"gain": {"db": 60}}] * 13, fmt, subtype)


def test_an_ogg_delivery_is_measured_after_encoding(tmp_path: Path) -> None:
    """Vorbis moves loudness and peaks: the report is what ffmpeg reads in the delivered file."""
    src = write_wav(tmp_path / "in.wav", 0.3 * music_like(48_000, 6.0, 41))
    out = tmp_path / "out.ogg"
    calls = parse_chain([{"loudness": {"standard": "STREAMING"}}], 48_000)
    info = render_to_spec(src, out, calls, "OGG", "VORBIS", 65536, uncached_impulses({}))
    report = info.compliance
    assert report is not None and report.passed, report
    ref = ebur128.measure(out)
    assert abs(ref.integrated - -14.0) <= 0.5 and ref.true_peak <= -1.0 + 0.2
    assert report.integrated_lufs == pytest.approx(ref.integrated, abs=0.2)
    assert report.true_peak_db == pytest.approx(ref.true_peak, abs=0.2)
    assert not list(tmp_path.glob("out.ogg.*"))  # no render left behind


def _mp3(path: Path, rate: int, channels: int, seconds: float) -> Path:
    sf.write(str(path), (0.5 * music_like(rate, seconds, 3)[:channels]).T, rate, format="MP3")
    return path


def _one_call(path: Path) -> np.ndarray:
    """The whole file in one libsndfile read: what ffmpeg decodes too (tests/jobs/test_decoding)."""
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return data


def _ffmpeg(path: Path, channels: int) -> np.ndarray:
    raw = subprocess.run(
        [ebur128.FFMPEG, "-v", "error", "-i", str(path), "-f", "f32le", "-c:a", "pcm_f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, channels)


@pytest.mark.parametrize(("rate", "channels"), [(44_100, 1), (48_000, 2)])
@pytest.mark.parametrize("block_frames", [4096, 65536])
def test_an_mp3_input_is_processed_as_one_call_decodes_it(
    tmp_path: Path, rate: int, channels: int, block_frames: int
) -> None:
    """libsndfile decoded MP3s read in blocks with runs of wrong frames from some block
    boundaries (4214 of a 20 s file with 65536-frame blocks): a 0 dB gain must return the
    decode exactly, and that is ffmpeg's decode, and what is checked and measured."""
    src = _mp3(tmp_path / "in.mp3", rate, channels, 10.0)
    whole = _one_call(src)
    assert whole.shape[0] > 6 * 65536  # many blocks of either size
    out = tmp_path / "out.wav"
    info = process_file(
        src, out, parse_chain([{"gain": {"db": 0}}]), "WAV", "FLOAT", block_frames,
        uncached_impulses({}),
    )  # fmt: skip
    got = _one_call(out)
    assert info.frames == whole.shape[0] and got.shape == whole.shape
    bad = np.flatnonzero(np.any(got != whole, axis=1))
    assert bad.size == 0, f"{bad.size} wrong frames from frame {bad[:1]}"
    assert float(np.abs(got - _ffmpeg(src, channels)).max()) <= 1e-5
    # The upload check counts the same frames, and the measurement is that of the decode.
    assert inspect(src, Settings()).frames == whole.shape[0]
    decoded = write_wav(tmp_path / "decoded.wav", np.ascontiguousarray(whole.T), rate)
    assert measure_file(src, block_frames) == measure_file(decoded, block_frames)
    assert info.input_analysis == measure_file(decoded, block_frames)


def test_an_opus_input_read_in_small_blocks_is_processed_as_decoded(tmp_path: Path) -> None:
    """Opus too came out wrong from libsndfile after python-soundfile's seek around a read
    (one 100-frame block off by up to 0.07 in a 6 s file)."""
    src = tmp_path / "in.ogg"
    sf.write(str(src), (0.5 * music_like(48_000, 6.0, 3)).T, 48_000, format="OGG", subtype="OPUS")
    whole = _one_call(src)
    out = tmp_path / "out.wav"
    chain = parse_chain([{"gain": {"db": 0}}])
    process_file(src, out, chain, "WAV", "FLOAT", 100, uncached_impulses({}))
    got = _one_call(out)
    assert got.shape == whole.shape and np.array_equal(got, whole)


def test_an_mp3_normalized_in_two_passes_reads_the_same_samples_twice(tmp_path: Path) -> None:
    """`normalize` reads the input twice: both reads are the decode (a seek back would change
    MP3 samples in the last bit), so the output is that of the decoded WAV, bit for bit."""
    src = _mp3(tmp_path / "in.mp3", 44_100, 2, 4.0)
    decoded = write_wav(tmp_path / "decoded.wav", np.ascontiguousarray(_one_call(src).T), 44_100)
    chain = parse_chain([{"normalize": {"mode": "LOUDNESS", "target": -20}}, {"gain": {"db": -1}}])
    outs = []
    for name, path in (("from_mp3", src), ("from_wav", decoded)):
        out = tmp_path / f"{name}.wav"
        process_file(path, out, chain, "WAV", "FLOAT", 4096, uncached_impulses({}))
        outs.append(_one_call(out))
    assert outs[0].shape == outs[1].shape and np.array_equal(outs[0], outs[1])


def test_a_cancelled_mp3_run_leaves_nothing_behind(tmp_path: Path) -> None:
    """No scratch file: blocks come straight from the decoder."""
    src = _mp3(tmp_path / "in.mp3", 48_000, 2, 3.0)
    seen: list[float] = []
    with pytest.raises(JobCancelled):
        process_file(
            src, tmp_path / "out.wav", parse_chain([{"gain": {"db": 0}}]), "WAV", "FLOAT", 4096,
            uncached_impulses({}), progress=seen.append, should_stop=lambda: len(seen) >= 3,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp3", "out.wav"]


def test_an_mp3_is_processed_and_measured_in_bounded_memory(tmp_path: Path) -> None:
    """Blocks, not the whole decode, live in memory: measuring used to read an MP3 in one call
    (up to 128 MB) to dodge the block-boundary errors."""
    src = _mp3(tmp_path / "long.mp3", 44_100, 1, 30.0)
    decoded_bytes = 30 * 44_100 * 4
    chain = parse_chain([{"gain": {"db": 0}}])
    warm = _mp3(tmp_path / "warm.mp3", 44_100, 1, 0.5)  # compile the kernels outside the trace
    process_file(warm, tmp_path / "w.flac", chain, "FLAC", "PCM_24", 4096, uncached_impulses({}))
    measure_file(warm, 4096)
    for run in (
        lambda: process_file(
            src, tmp_path / "o.flac", chain, "FLAC", "PCM_24", 4096, uncached_impulses({})
        ),
        lambda: measure_file(src, 4096),
    ):
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            run()
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert peak < decoded_bytes / 4, (peak, decoded_bytes)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("container", ["WAV", "FLAC"])
def test_limiter_ceiling_holds_after_quantisation(
    tmp_path: Path, container: str, subtype: str
) -> None:
    """Issue 13, defect 4: rounding to the nearest PCM code went up to 6e-6 over the ceiling.
    What is read back from the file, not what the limiter computed, must stay under it."""
    if container == "FLAC" and subtype == "FLOAT":
        return
    rng = np.random.default_rng(13)
    hot = (0.9 * sine(997.0, 0.5, channels=2, level_db=6.0)).astype(np.float32)
    hot += rng.standard_normal(hot.shape).astype(np.float32)
    src = write_wav(tmp_path / "in.wav", hot)
    for ceiling_db in (-0.1, -0.3, -1.0, -2.5, -6.0, -17.3):
        calls = parse_chain([{"limiter": {"ceilingDb": ceiling_db, "releaseMs": 20}}])
        out = tmp_path / f"o.{container.lower()}"
        process_file(src, out, calls, container, subtype, 4096, uncached_impulses({}))
        got, _ = sf.read(out, dtype="float64")
        ceiling = 10 ** (ceiling_db / 20)
        assert np.max(np.abs(got)) <= ceiling, (ceiling_db, np.max(np.abs(got)) - ceiling)
        assert np.max(np.abs(got)) > ceiling - 2.0**-14  # it still reaches the ceiling


def test_a_wav_output_stops_at_its_size_limit_instead_of_writing_a_bad_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libsndfile writes a WAV past 4 GiB with sizes that wrapped around. Writing 4 GiB here
    would take minutes, so the table's limit is lowered to 40 kB for this test."""
    from dataclasses import replace

    from jobs.formats import CONTAINERS, AudioFormat

    small = replace(CONTAINERS[AudioFormat.WAV], max_data_bytes=40_000)
    monkeypatch.setitem(CONTAINERS, AudioFormat.WAV, small)
    src = write_wav(tmp_path / "in.wav", sine(440.0, 0.5))  # 24 000 frames, 192 kB as float
    calls = parse_chain([{"gain": {"db": -1}}])
    with pytest.raises(BadInput, match="4 GiB size limit after 4096 frames: ask for W64"):
        process_file(src, tmp_path / "o.wav", calls, "WAV", "FLOAT", 4096, uncached_impulses({}))
    info = process_file(src, tmp_path / "o.w64", calls, "W64", "FLOAT", 4096, uncached_impulses({}))
    assert info.frames == 24_000


def test_an_album_measure_sees_the_signal_arriving_at_its_step(tmp_path: Path) -> None:
    """The measure phase runs the chain up to the album step: a -6 dB gain in front moves
    the pooled loudness by exactly -6 LU; the render then applies target - that loudness."""
    audio = 0.5 * music_like(48_000, 4.0, 7)
    path = write_wav(tmp_path / "in.wav", audio)
    calls = parse_chain(
        [{"gain": {"db": -6.0}}, {"normalize": {"mode": "LOUDNESS", "target": -20.0}}]
    )
    blocks = measure_album(path, calls, 4096, uncached_impulses)
    meter = LoudnessMeter(48_000, 2)
    meter.add(audio)
    assert pooled_loudness([blocks]) == pytest.approx(meter.integrated() - 6.0, abs=1e-4)
    # The render takes a given album loudness instead of measuring: gain = -20 - (-30).
    out = tmp_path / "out.wav"
    process_file(path, out, calls, "WAV", "FLOAT", 4096, uncached_impulses, album_lufs=-30.0)
    rendered, _ = sf.read(str(out), dtype="float32", always_2d=True)
    np.testing.assert_allclose(rendered.T, audio * 10 ** ((-6.0 + 10.0) / 20), rtol=1e-5, atol=1e-7)
    with pytest.raises(BadInput, match="album"):
        measure_album(path, parse_chain([{"gain": {"db": 1.0}}]), 4096, uncached_impulses)


def test_a_denoise_profile_past_what_a_silence_cut_left_is_bad_input(tmp_path: Path) -> None:
    """Validation cannot foresee a silence cut's length: the run finds the profile outside
    the shortened signal and refuses it as BAD_INPUT naming the field, not as a failure."""
    x = np.zeros((2, 48_000), dtype=np.float32)
    x[:, :4_800] = sine(440.0, 0.1)  # 0.1 s of tone, then 0.9 s of silence cut to 0.1 s
    src = write_wav(tmp_path / "in.wav", x)
    calls = parse_chain(
        [
            {"silence": {"minSilenceMs": 100, "keepMs": 100}},
            {"denoise": {"profile": {"startS": 0.6, "endS": 0.9}}},
        ],
        48_000,
        1.0,
    )
    with pytest.raises(BadInput, match=r"denoise.profile 0.6..0.9 s .* reaching it, 0.2\d* s long"):
        process_file(src, tmp_path / "o.wav", calls, "WAV", "FLOAT", 4096, uncached_impulses({}))
