"""One long file in parts: rendered apart and stitched, through the runner and through the
pool on a real local Ray (two actors), against `process_file` (the CLI's `process`).

Tolerance 1e-5 absolute: `dsp.segments` bounds each effect's pre-roll so that only rounding
separates a part from the unsplit render (see tests/dsp/test_dsp_segments.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import soundfile as sf

from actors.assembly import finish
from actors.impulses import uncached_impulses
from actors.parts import joined, measure_part, plan_parts, render_part, stitch
from actors.pool import ActorPool, _best_render
from actors.runner import measure_album, process_file, render_to_spec
from dsp.segments import merged
from jobs.effects import parse_chain
from jobs.errors import JobCancelled
from tests.actors.test_worker import _message

RATE = 16_000
SECONDS = 45.0
SEGMENT_S = 10.0
CHAIN: list[dict[str, Any]] = [
    {"eq": {"bands": [{"kind": "LOWSHELF", "frequency": 120, "gainDb": 3}]}},
    {"reverb": {"impulse": "hall", "mix": 0.3}},
    {"compressor": {"thresholdDb": -20, "ratio": 3, "attackMs": 10, "releaseMs": 120}},
    {"limiter": {"ceilingDb": -1, "releaseMs": 60}},
]


def _music(seconds: float = SECONDS, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(RATE * seconds)
    t = np.arange(n) / RATE
    env = 0.05 + 0.95 * np.abs(np.sin(2 * np.pi * 0.11 * t)) ** 3
    rows = [env * (0.5 * np.sin(2 * np.pi * (140 + 60 * c) * t) + 0.3 * rng.standard_normal(n))
            for c in range(2)]  # fmt: skip
    return np.array(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parts") / "long.wav"
    sf.write(str(path), _music().T, RATE, subtype="FLOAT")
    return path


def _unsplit(path: Path, out: Path) -> np.ndarray:
    process_file(
        path, out, parse_chain(CHAIN, RATE, SECONDS), "WAV", "FLOAT", 4096, uncached_impulses({})
    )
    return np.asarray(sf.read(str(out), dtype="float32")[0])


def test_parts_stitched_match_the_unsplit_render(long_wav: Path, tmp_path: Path) -> None:
    calls = parse_chain(CHAIN, RATE, SECONDS)
    impulses = uncached_impulses({})
    plan = plan_parts(long_wav, calls, impulses, "FLOAT", SEGMENT_S)
    assert len(plan.segments) == 4 and plan.reason == ""
    parts = [tmp_path / f"{i}.w64" for i in range(4)]
    rendered = [
        render_part(long_wav, part, calls, "PCM_16", 4096, impulses, plan, i)
        for i, part in reversed(list(enumerate(parts)))  # any order: parts are independent
    ][::-1]
    frames = stitch(parts, tmp_path / "out.wav", "WAV", "PCM_16", 4096)
    info = joined(rendered, "WAV", "PCM_16", frames)
    split = np.asarray(sf.read(str(tmp_path / "out.wav"), dtype="float32")[0])
    whole_info = process_file(
        long_wav, tmp_path / "whole.wav", calls, "WAV", "PCM_16", 4096, uncached_impulses({})
    )
    whole = np.asarray(sf.read(str(tmp_path / "whole.wav"), dtype="float32")[0])
    assert split.shape == whole.shape and info.frames == whole.shape[0]
    # 16-bit: a 1e-5 difference may round to the next step (3.05e-5) and no further.
    np.testing.assert_allclose(split, whole, rtol=0, atol=2**-15 + 1e-6)
    # The levels merged from the parts are the unsplit run's, to rounding in long sums.
    for name in ("input_analysis", "output_analysis"):
        mine, theirs = getattr(info, name), getattr(whole_info, name)
        assert mine is not None and theirs is not None
        for field, value in theirs.model_dump().items():
            assert getattr(mine, field) == pytest.approx(value, abs=1e-6), (name, field)


@pytest.mark.parametrize(
    ("container", "subtype", "part", "step"),
    [
        ("WAV", "PCM_16", "PCM_16", 2**-15),
        ("AIFF", "PCM_24", "PCM_24", 2**-23),
        ("W64", "FLOAT", "FLOAT", 0.0),
        ("FLAC", "PCM_16", "FLOAT", 2**-15),
    ],
)
def test_parts_are_encoded_where_the_stitch_can_copy_them(
    long_wav: Path, tmp_path: Path, container: str, subtype: str, part: str, step: float
) -> None:
    """PCM and float outputs of plain containers are encoded by the parts themselves (the
    stitch copies samples); FLAC's encoder rounds its own way, so its parts stay float."""
    calls = parse_chain(CHAIN[:1], RATE, SECONDS)  # the EQ alone: exact to float rounding
    impulses = uncached_impulses({})
    plan = plan_parts(long_wav, calls, impulses, subtype, SEGMENT_S)
    parts = [tmp_path / f"{i}.w64" for i in range(len(plan.segments))]
    for i, path in enumerate(parts):
        render_part(long_wav, path, calls, subtype, 4096, impulses, plan, i, out_format=container)
        assert sf.info(str(path)).subtype == part
    frames = stitch(parts, tmp_path / "out", container, subtype, 4096)
    process_file(long_wav, tmp_path / "whole", calls, container, subtype, 4096, impulses)
    split = sf.read(str(tmp_path / "out"), dtype="float64")[0]
    whole = sf.read(str(tmp_path / "whole"), dtype="float64")[0]
    assert sf.info(str(tmp_path / "out")).subtype == subtype and frames == whole.shape[0]
    assert split.shape == whole.shape
    # Samples differ by at most one step of the subtype where a 1e-6 difference of the
    # float render falls on a rounding edge.
    np.testing.assert_allclose(split, whole, rtol=0, atol=step + 1e-6)


@pytest.mark.parametrize(
    ("container", "subtype"), [("WAV", "PCM_16"), ("AIFF", "PCM_24"), ("W64", "FLOAT")]
)
def test_parts_written_in_place_give_the_file_their_copies_stitch_into(
    long_wav: Path, tmp_path: Path, container: str, subtype: str
) -> None:
    calls = parse_chain(CHAIN, RATE, SECONDS)
    impulses = uncached_impulses({})
    plan = plan_parts(long_wav, calls, impulses, subtype, SEGMENT_S)
    indices = range(len(plan.segments))
    files = [tmp_path / f"{i}.w64" for i in indices]
    for i, path in enumerate(files):
        render_part(long_wav, path, calls, subtype, 4096, impulses, plan, i, out_format=container)
    stitched = tmp_path / "stitched"
    frames = stitch(files, stitched, container, subtype, 4096)
    assembled = tmp_path / "assembled"
    parts = [
        render_part(
            long_wav, assembled, calls, subtype, 4096, impulses, plan, i,
            out_format=container, assembled=True,
        )
        for i in reversed(indices)
    ]  # fmt: skip
    assert sum(p.frames for p in parts) == frames
    finish(assembled, container, subtype, RATE, 2, frames)
    assert assembled.read_bytes() == stitched.read_bytes()


def test_inputs_that_do_not_seek_exactly_run_unsplit(tmp_path: Path) -> None:
    path = tmp_path / "long.ogg"
    sf.write(str(path), _music(30.0).T, RATE, format="OGG", subtype="VORBIS")
    calls = parse_chain([{"gain": {"db": -3}}], RATE, 30.0)
    plan = plan_parts(path, calls, uncached_impulses({}), "FLOAT", 5.0)
    assert len(plan.segments) == 1
    assert "OGG decoder started mid-file" in plan.reason


def test_a_chain_that_cannot_split_says_why(long_wav: Path) -> None:
    calls = parse_chain([*CHAIN, {"gate": {"thresholdDb": -40}}], RATE, SECONDS)
    plan = plan_parts(long_wav, calls, uncached_impulses({}), "FLOAT", SEGMENT_S)
    assert len(plan.segments) == 1 and "the gate's open or closed state" in plan.reason


TWO_PASS: dict[str, list[dict[str, Any]]] = {
    "loudness": [*CHAIN[:3], {"loudness": {"target": -10, "truePeakDb": -1.5}}],
    "normalize then loudness": [
        {"normalize": {"mode": "PEAK", "target": -6}},
        CHAIN[0],
        {"normalize": {"mode": "LOUDNESS", "target": -30}},
        {"loudness": {"standard": "STREAMING"}},
    ],
}


def _split(
    path: Path,
    calls: Any,
    subtype: str,
    tmp_path: Path,
    measures: int,
    album_lufs: float | None = None,
) -> tuple[np.ndarray, Any]:
    """The job rendered as the pool runs it: `measures` phases of measuring every part (in
    any order), merged in order, then the parts rendered and stitched."""
    impulses = uncached_impulses({})
    plan = plan_parts(path, calls, impulses, subtype, SEGMENT_S, album_lufs)
    assert len(plan.segments) == 4 and plan.reason == "" and plan.measures == measures
    levels: list[Any] = []
    for _ in range(plan.measures):
        found = [
            measure_part(path, calls, subtype, 4096, impulses, plan, i, list(levels))
            for i in reversed(range(4))
        ][::-1]
        levels.append(merged(found))
    parts = [tmp_path / f"{i}.w64" for i in range(4)]
    rendered = [
        render_part(path, part, calls, subtype, 4096, impulses, plan, i, None, None,
                    levels=levels, album_lufs=album_lufs)
        for i, part in enumerate(parts)
    ]  # fmt: skip
    frames = stitch(parts, tmp_path / "out.wav", "WAV", subtype, 4096)
    info = joined(rendered, "WAV", subtype, frames)
    return np.asarray(sf.read(str(tmp_path / "out.wav"), dtype="float32")[0]), info


@pytest.mark.parametrize("name", TWO_PASS)
def test_two_pass_chains_measure_in_parts_and_match_the_unsplit_render(
    name: str, long_wav: Path, tmp_path: Path
) -> None:
    calls = parse_chain(TWO_PASS[name], RATE, SECONDS)
    measures = {"loudness": 1, "normalize then loudness": 3}[name]
    split, info = _split(long_wav, calls, "FLOAT", tmp_path, measures)
    whole_info = process_file(
        long_wav, tmp_path / "whole.wav", calls, "WAV", "FLOAT", 4096, uncached_impulses({})
    )
    whole = np.asarray(sf.read(str(tmp_path / "whole.wav"), dtype="float32")[0])
    assert split.shape == whole.shape
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-5)
    assert info.loudness_reason == whole_info.loudness_reason == ""
    mine, theirs = info.output_analysis, whole_info.output_analysis
    assert mine is not None and theirs is not None
    assert mine.loudness_lufs == pytest.approx(theirs.loudness_lufs, abs=1e-6)
    assert mine.true_peak_db == pytest.approx(theirs.true_peak_db, abs=1e-6)
    target = -10.0 if name == "loudness" else -14.0
    assert theirs.loudness_lufs == pytest.approx(target, abs=0.5)  # the effect did its work


def test_an_album_part_takes_the_album_loudness(long_wav: Path, tmp_path: Path) -> None:
    calls = parse_chain(TWO_PASS["loudness"], RATE, SECONDS)
    split, _ = _split(long_wav, calls, "FLOAT", tmp_path, 0, album_lufs=-30.0)
    process_file(
        long_wav, tmp_path / "whole.wav", calls, "WAV", "FLOAT", 4096, uncached_impulses({}),
        album_lufs=-30.0,
    )  # fmt: skip
    whole = np.asarray(sf.read(str(tmp_path / "whole.wav"), dtype="float32")[0])
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-5)


@pytest.fixture
def split_pool(pool: ActorPool) -> Iterator[ActorPool]:
    """The session's pool, splitting at SEGMENT_S for one test."""
    before = pool.settings
    pool.settings = before.model_copy(update={"segment_seconds": SEGMENT_S})
    yield pool
    pool.settings = before


async def test_pool_renders_parts_on_several_actors_and_stitches(
    split_pool: ActorPool, storage_root: Path, long_wav: Path, tmp_path: Path
) -> None:
    (storage_root / "in/long16k.wav").write_bytes(long_wav.read_bytes())
    message = _message("in/long16k.wav", CHAIN)
    progress: list[float] = []
    plans: list[tuple[int, str]] = []

    async def on_progress(value: float) -> None:
        progress.append(value)

    async def on_plan(segments: int, reason: str) -> None:
        plans.append((segments, reason))

    started = split_pool.parts_started
    result = await split_pool.run(message, on_progress, on_plan=on_plan, input_seconds=SECONDS)
    assert plans == [(4, "")] and result.segments == 4
    assert split_pool.parts_started - started == 4
    out = np.asarray(sf.read(str(storage_root / result.output_key), dtype="float32")[0])
    np.testing.assert_allclose(out, _unsplit(long_wav, tmp_path / "w.wav"), rtol=0, atol=1e-5)
    assert result.input_analysis is not None and result.input_analysis.duration_seconds == SECONDS
    # Parts this short may all end before the first progress poll (0.1 s): that progress
    # arrives at all is what the 240 s tests below wait for.
    assert progress == sorted(progress)
    assert not list((storage_root / "parts").rglob("*.w64"))  # the stitch removed them


async def test_pool_assembles_a_pcm_output_in_place(
    split_pool: ActorPool, storage_root: Path, long_wav: Path, tmp_path: Path
) -> None:
    """A 16-bit WAV: the parts write their samples into the output itself, no part files."""
    (storage_root / "in/long16k-pcm.wav").write_bytes(long_wav.read_bytes())
    message = _message("in/long16k-pcm.wav", CHAIN).model_copy(update={"output_subtype": "PCM_16"})

    async def ignore(_value: float) -> None:
        return None

    result = await split_pool.run(message, ignore, input_seconds=SECONDS)
    assert result.segments == 4
    out = storage_root / result.output_key
    assert sf.info(str(out)).subtype == "PCM_16"
    whole = tmp_path / "w.wav"
    calls = parse_chain(CHAIN, RATE, SECONDS)
    process_file(long_wav, whole, calls, "WAV", "PCM_16", 4096, uncached_impulses({}))
    split, reference = (
        sf.read(str(out), dtype="float32")[0],
        sf.read(str(whole), dtype="float32")[0],
    )
    assert split.shape == reference.shape
    np.testing.assert_allclose(split, reference, rtol=0, atol=2**-15 + 1e-6)
    assert not list(storage_root.rglob("*.part"))
    assert not (storage_root / "parts" / message.job_id).exists()


async def test_pool_measures_loudness_in_parts_and_delivers_to_spec(
    split_pool: ActorPool, storage_root: Path, long_wav: Path, tmp_path: Path
) -> None:
    """A loudness job on two actors: the parts measure, then render with the merged gain,
    and the stitched file carries the unsplit render's samples and compliance."""
    (storage_root / "in/long16k-loud.wav").write_bytes(long_wav.read_bytes())
    effects = TWO_PASS["loudness"]
    message = _message("in/long16k-loud.wav", effects)
    progress: list[float] = []

    async def on_progress(value: float) -> None:
        progress.append(value)

    started = split_pool.parts_started
    result = await split_pool.run(message, on_progress, input_seconds=SECONDS)
    assert result.segments == 4
    out = np.asarray(sf.read(str(storage_root / result.output_key), dtype="float32")[0])
    calls = parse_chain(effects, RATE, SECONDS)
    whole_info = render_to_spec(
        long_wav, tmp_path / "w.wav", calls, "WAV", "FLOAT", 4096, uncached_impulses({})
    )
    whole = np.asarray(sf.read(str(tmp_path / "w.wav"), dtype="float32")[0])
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-5)
    assert result.compliance is not None and whole_info.compliance is not None
    assert result.compliance.passed and whole_info.compliance.passed
    # The limiter takes loudness at -10 LUFS: both render again with the same correction.
    renders = whole_info.compliance.renders
    assert result.compliance.renders == renders > 1
    assert split_pool.parts_started - started == 4 + 4 * renders  # measures, then renders
    assert result.compliance.integrated_lufs == pytest.approx(
        whole_info.compliance.integrated_lufs, abs=1e-6
    )
    assert progress == sorted(progress)  # may be empty, as above
    assert not list((storage_root / "parts").rglob("*.w64"))


async def test_pool_renders_an_album_job_in_parts_with_the_album_gain(
    split_pool: ActorPool, storage_root: Path, long_wav: Path, tmp_path: Path
) -> None:
    (storage_root / "in/long16k-album.wav").write_bytes(long_wav.read_bytes())
    effects = TWO_PASS["loudness"]
    message = _message("in/long16k-album.wav", effects, album_lufs=-30.0)

    async def on_progress(value: float) -> None:
        pass

    started = split_pool.parts_started
    result = await split_pool.run(message, on_progress, input_seconds=SECONDS)
    assert result.segments == 4 and split_pool.parts_started - started == 4  # no measures
    out = np.asarray(sf.read(str(storage_root / result.output_key), dtype="float32")[0])
    calls = parse_chain(effects, RATE, SECONDS)
    whole_info = render_to_spec(
        long_wav, tmp_path / "w.wav", calls, "WAV", "FLOAT", 4096, uncached_impulses({}),
        album_lufs=-30.0,
    )  # fmt: skip
    whole = np.asarray(sf.read(str(tmp_path / "w.wav"), dtype="float32")[0])
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-5)
    assert result.compliance is not None and whole_info.compliance is not None
    assert result.compliance.model_dump() == pytest.approx(whole_info.compliance.model_dump())


async def test_pool_measures_an_album_job_in_parts(
    split_pool: ActorPool, storage_root: Path, long_wav: Path
) -> None:
    """An album batch's measure job of a long file: every part measures the signal reaching
    the album step (a normalize in front settled first), the gating blocks merge in order."""
    (storage_root / "in/long16k-measure.wav").write_bytes(long_wav.read_bytes())
    effects = [*TWO_PASS["normalize then loudness"], {"gate": {}}]  # the gate is after it
    message = _message("in/long16k-measure.wav", effects, phase="measure")

    async def on_progress(value: float) -> None:
        pass

    started = split_pool.parts_started
    result = await split_pool.run(message, on_progress, input_seconds=SECONDS)
    assert result.segments == 4 and split_pool.parts_started - started == 12  # three phases
    calls = parse_chain(effects, RATE, SECONDS)
    expected = measure_album(long_wav, calls, 4096, uncached_impulses({}))
    assert result.album_blocks is not None and len(result.album_blocks) == len(expected)
    np.testing.assert_allclose(result.album_blocks, expected, rtol=1e-9, atol=0)
    assert not (storage_root / result.output_key).exists()


def test_a_split_loudness_job_delivers_the_render_render_to_spec_would() -> None:
    """A passing render nearest the target, else the last (the pool renders it again)."""

    def tried(passed: bool, lufs: float) -> dict[str, Any]:
        return {"compliance": {"passed": passed, "integrated_lufs": lufs, "target": -14.0}}

    first, second, third = tried(True, -14.3), tried(False, -14.0), tried(True, -13.8)
    assert _best_render([(None, first), (None, second)])[1] is first
    assert _best_render([(None, first), (None, second), (None, third)])[1] is third
    assert _best_render([(None, second), (None, second | {})])[1] is not second
    assert _best_render([(None, {"compliance": None})])[1] == {"compliance": None}


async def test_a_dead_actor_reruns_only_its_part(
    split_pool: ActorPool, storage_root: Path, tmp_path: Path
) -> None:
    """Parts long enough (4 x 60 s) to be caught running: one actor is killed under its part."""
    seconds = 240.0
    path = storage_root / "in/long16k-kill.wav"
    sf.write(str(path), _music(seconds, seed=9).T, RATE, subtype="FLOAT")
    split_pool.settings = split_pool.settings.model_copy(update={"segment_seconds": 60.0})
    message = _message("in/long16k-kill.wav", CHAIN)
    seen = asyncio.Event()

    async def on_progress(value: float) -> None:
        if value > 0:
            seen.set()

    started = split_pool.parts_started
    job = asyncio.create_task(
        split_pool.run(message, on_progress, input_seconds=seconds), name="split-job"
    )
    await asyncio.wait_for(seen.wait(), 120)
    victim = next(s for s in split_pool._slots if s.job_id == message.job_id)
    await asyncio.to_thread(ray.kill, victim.handle)
    result = await asyncio.wait_for(job, 300)
    assert result.segments == 4
    assert split_pool.parts_started - started == 5  # four parts, one of them twice
    out = np.asarray(sf.read(str(storage_root / result.output_key), dtype="float32")[0])
    whole = tmp_path / "w.wav"
    calls = parse_chain(CHAIN, RATE, seconds)
    process_file(path, whole, calls, "WAV", "FLOAT", 4096, uncached_impulses({}))
    reference = np.asarray(sf.read(str(whole), dtype="float32")[0])
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_16"])  # part files; assembled in place
async def test_cancelling_a_split_job_stops_every_part_and_leaves_none(
    split_pool: ActorPool, storage_root: Path, subtype: str
) -> None:
    seconds = 240.0
    path = storage_root / "in/long16k-cancel.wav"
    sf.write(str(path), _music(seconds, seed=11).T, RATE, subtype="FLOAT")
    split_pool.settings = split_pool.settings.model_copy(update={"segment_seconds": 60.0})
    message = _message("in/long16k-cancel.wav", CHAIN).model_copy(
        update={"output_subtype": subtype}
    )
    seen = asyncio.Event()

    async def on_progress(value: float) -> None:
        if value > 0:
            seen.set()

    job = asyncio.create_task(split_pool.run(message, on_progress, input_seconds=seconds))
    await asyncio.wait_for(seen.wait(), 120)
    assert await split_pool.cancel(message.job_id)
    with pytest.raises(JobCancelled):
        await asyncio.wait_for(job, 120)
    assert not list((storage_root / "parts" / message.job_id).rglob("*.w64"))
    assert not (storage_root / message.output_key).exists()
    assert not list((storage_root / "out").glob(f".{message.job_id}*"))
    assert message.job_id not in split_pool.running_jobs()
