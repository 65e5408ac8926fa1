"""The per-actor IR cache: bounded in bytes, counts hits and misses, resamples uploads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actors.impulses import IRCache
from jobs.errors import BadInput, UnsupportedAudio
from tests.conftest import write_wav


def test_hits_misses_and_eviction_by_bytes() -> None:
    cache = IRCache(max_bytes=10**9, block_size=1024)
    room = cache.get("room", 8000, {})
    assert (cache.hits, cache.misses) == (0, 1)
    assert cache.get("room", 8000, {}) is room
    assert (cache.hits, cache.misses) == (1, 1)
    plate_bytes = IRCache(max_bytes=10**9, block_size=1024).get("plate", 8000, {}).nbytes
    cache.max_bytes = plate_bytes  # the plate fits only alone: adding it evicts the room
    cache.get("plate", 8000, {})
    assert cache.nbytes <= cache.max_bytes
    assert cache.ids() == {"plate"}


def test_uploaded_ir_is_resampled_to_the_stream_rate(tmp_path: Path) -> None:
    ir = np.zeros((1, 4800), dtype=np.float32)
    ir[0, 0] = 1.0
    path = write_wav(tmp_path / "ir.wav", ir, rate=48_000)
    entry = IRCache(max_bytes=10**9, block_size=512).get("f1", 24_000, {"f1": path})
    assert entry.ir.shape[0] == 1
    assert abs(entry.ir.shape[1] - 2400) <= 2


def test_unknown_ir_is_bad_input() -> None:
    with pytest.raises(BadInput, match="neither a preset") as caught:
        IRCache(max_bytes=0).get("nope", 48_000, {})
    assert caught.value.code == "BAD_INPUT"


def test_an_ir_with_a_nan_is_refused_naming_the_sample(tmp_path: Path) -> None:
    """An IR reaching storage (or the CLI) around the upload check: one NaN would turn every
    output sample after it into NaN."""
    ir = np.zeros((2, 4800), dtype=np.float32)
    ir[:, 0], ir[1, 77] = 1.0, np.nan
    path = write_wav(tmp_path / "ir.wav", ir)
    with pytest.raises(
        UnsupportedAudio, match=r"impulse response ir\.wav has a NaN sample at frame 77, channel 1"
    ):
        IRCache(max_bytes=10**9).get("f1", 48_000, {"f1": path})


def test_the_presets_the_specs_offer_are_the_ones_dsp_makes() -> None:
    from dsp.impulses import PRESETS
    from jobs.effects import IR_PRESETS

    assert IR_PRESETS == PRESETS
