import numpy as np
import pytest
import scipy.signal as ss

from dsp.chain import Chain
from dsp.convolution import PartitionedIR, Reverb
from dsp.impulses import PRESETS, preset

SR = 16000


def _signal(channels: int, n: int, seed: int = 0) -> np.ndarray:
    return (0.5 * np.random.default_rng(seed).standard_normal((channels, n))).astype(np.float32)


@pytest.mark.parametrize("block_size,chain_block", [(256, 1000), (1024, 4096), (4096, 777)])
def test_full_convolution_matches_fftconvolve(block_size: int, chain_block: int) -> None:
    x = _signal(2, 20000)
    ir = preset("room", SR)
    parts = PartitionedIR.build(ir, block_size)
    fx = Reverb(ir, mix=1.0, partitions=parts)
    y, sr = Chain([fx]).process_array(x, SR, block_frames=chain_block)
    ref = np.stack(
        [ss.fftconvolve(x[c].astype(np.float64), ir[c].astype(np.float64)) for c in range(2)]
    )
    assert sr == SR
    assert y.shape == (2, x.shape[1] + ir.shape[1] - 1)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5 * np.max(np.abs(ref)))


def test_mono_ir_on_stereo_and_tail_off_and_mix() -> None:
    x = _signal(2, 5000, 1)
    ir = _signal(1, 700, 2)
    y, _ = Chain(
        [Reverb(ir, mix=0.25, tail=False, partitions=PartitionedIR.build(ir, 128))]
    ).process_array(x, SR, 512)
    assert y.shape == x.shape
    wet = np.stack([ss.fftconvolve(x[c].astype(np.float64), ir[0])[:5000] for c in range(2)])
    ref = 0.75 * x + 0.25 * wet
    np.testing.assert_allclose(y, ref, atol=1e-5 * np.max(np.abs(ref)))


def test_pre_delay() -> None:
    x = _signal(1, 3000, 3)
    ir = _signal(1, 500, 4)
    y, _ = Chain(
        [Reverb(ir, mix=1.0, pre_delay_ms=10.0, partitions=PartitionedIR.build(ir, 256))]
    ).process_array(x, SR, 700)
    ref = np.concatenate([np.zeros(160), ss.fftconvolve(x[0].astype(np.float64), ir[0])])
    assert y.shape == (1, 3000 + 160 + 499)
    np.testing.assert_allclose(y[0], ref, atol=1e-5 * np.max(np.abs(ref)))


def test_partitioned_ir_is_immutable_and_sized() -> None:
    ir = preset("plate", SR)
    parts = PartitionedIR.build(ir, 1024)
    assert parts.partitions == -(-ir.shape[1] // 1024)
    assert parts.nbytes == parts.partitions * 2 * 1025 * 8
    with pytest.raises(ValueError):
        parts.spectra[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        Reverb(ir[:, :100], mix=1.0, partitions=parts)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_deterministic_stereo_unit_energy(name: str) -> None:
    a = preset(name, 22050)
    b = preset(name, 22050)
    np.testing.assert_array_equal(a, b)
    assert a.shape[0] == 2 and a.dtype == np.float32
    np.testing.assert_allclose(np.sum(a.astype(np.float64) ** 2, axis=1), 1.0, rtol=1e-5)
    corr = np.corrcoef(a[0], a[1])[0, 1]
    assert abs(corr) < 0.5


def test_preset_lengths_and_unknown() -> None:
    assert preset("hall", 48000).shape[1] > preset("room", 48000).shape[1]
    with pytest.raises(ValueError):
        preset("cathedral", 48000)
