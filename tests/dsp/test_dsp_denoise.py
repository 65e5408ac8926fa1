"""Denoise against noisereduce on espeak-ng speech, and its streaming contract."""

from __future__ import annotations

import noisereduce
import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.chain import Chain
from dsp.denoise import (
    _DD_ALPHA,
    _INIT_FRAMES,
    _NOISE_SMOOTH,
    _RUN_ABOVE,
    _RUN_SPREAD,
    _SPP_HIGH,
    _TABLE_SIZE,
    _XI_H1_DB,
    _XI_MIN_DB,
    Denoise,
    denoise_gains,
    frame_size,
    overlap_add,
    presence_table,
)
from tests.speech import CLEANER_SNRS, NOISES, SNRS, espeak, mix, noise, padded, si_sdr


@pytest.fixture(scope="module")
def speech() -> tuple[NDArray[np.float64], int]:
    x, rate = espeak()
    return padded(x, rate), rate


def _ours(y: NDArray[np.float64], rate: int, **params: object) -> NDArray[np.float64]:
    out, _ = Chain([Denoise(**params)]).process_array(  # type: ignore[arg-type]
        y[np.newaxis].astype(np.float32), rate, block_frames=4096
    )
    return out[0].astype(np.float64)


@pytest.mark.parametrize("snr", SNRS)
@pytest.mark.parametrize("kind", NOISES)
def test_beats_noisereduce_and_the_input_by_a_decibel(
    speech: tuple[NDArray[np.float64], int], kind: str, snr: float
) -> None:
    """The issue's table: SI-SDR of ours (defaults) >= max(input, noisereduce stationary) + 1."""
    clean, rate = speech
    noisy = 0.5 * mix(clean, noise(kind, clean.shape[0], rate), snr)
    theirs = noisereduce.reduce_noise(y=noisy.astype(np.float32), sr=rate, stationary=True)
    before, anchor = si_sdr(clean, noisy), si_sdr(clean, theirs)
    ours = si_sdr(clean, _ours(noisy, rate))
    assert ours >= max(before, anchor) + 1.0, (before, anchor, ours)


@pytest.mark.parametrize("snr", CLEANER_SNRS)
@pytest.mark.parametrize("kind", NOISES)
def test_cleaner_input_is_not_made_worse(
    speech: tuple[NDArray[np.float64], int], kind: str, snr: float
) -> None:
    """The gain reaches 1 where the SNR is high: no input SI-SDR is a ceiling (the noise
    tracker once crept up under loud speech and held every output near 38 dB). The figures of
    the benchmark's cleaner rows; noisereduce makes all of them worse."""
    clean, rate = speech
    noisy = 0.5 * mix(clean, noise(kind, clean.shape[0], rate), snr)
    theirs = noisereduce.reduce_noise(y=noisy.astype(np.float32), sr=rate, stationary=True)
    before, anchor = si_sdr(clean, noisy), si_sdr(clean, theirs)
    ours = si_sdr(clean, _ours(noisy, rate))
    assert ours >= before + 0.5 and ours > anchor, (before, anchor, ours)


def test_clean_speech_comes_out_as_it_went_in(speech: tuple[NDArray[np.float64], int]) -> None:
    clean, rate = speech
    x = 0.5 * clean  # exact in float32: the input's own SI-SDR is infinite
    assert si_sdr(clean, _ours(x, rate)) > 120.0
    # With no reduction the STFT analysis and synthesis give back the input.
    np.testing.assert_allclose(_ours(x, rate, reduction_db=0.0), x, rtol=0, atol=1e-7)


def test_a_louder_noise_is_followed_within_seconds() -> None:
    """White noise that jumps 20 dB (or starts after digital silence) is attenuated by the
    full reduction again within 7 s: a steady rise is told from speech by staying steady."""
    rate = 16_000
    rng = np.random.default_rng(5)
    for before, after in ((1e-3, 1e-2), (0.0, 1e-3)):
        x = rng.standard_normal(rate * 12) * np.where(
            np.arange(rate * 12) < 3 * rate, before, after
        )
        y = _ours(x, rate)
        late = slice(10 * rate, 12 * rate)
        assert 10 * np.log10(np.mean(x[late] ** 2) / np.mean(y[late] ** 2)) > 11.0, before


def test_a_profile_learns_the_noise_from_its_range(speech: tuple[NDArray[np.float64], int]) -> None:
    clean, rate = speech
    noisy = 0.5 * mix(clean, noise("white", clean.shape[0], rate), 5.0)
    learned = _ours(noisy, rate, profile=(0.0, 0.45))  # the lead-in holds only noise
    assert si_sdr(clean, learned) > si_sdr(clean, noisy) + 5.0
    with pytest.raises(ValueError, match="profile"):
        _ours(noisy, rate, profile=(100.0, 101.0))


def test_streaming_is_block_size_independent_aligned_and_same_length() -> None:
    rate = 16_000
    rng = np.random.default_rng(2)
    t = np.arange(rate * 2) / rate
    # A loud chirp (200 Hz -> 4 kHz) after half a second of faint noise: 40 dB above the floor.
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 950 * t**2)) * (t > 0.5)
    x = np.stack([chirp, 0.5 * chirp, -chirp]) + 0.003 * rng.standard_normal((3, t.shape[0]))
    x = x.astype(np.float32)
    outs = [Chain([Denoise()]).process_array(x, rate, block_frames=b)[0] for b in (1, 333, 1 << 20)]
    assert outs[0].shape == x.shape
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    learned = [
        Chain([Denoise(profile=(0.1, 0.4))]).process_array(x, rate, block_frames=b)[0]
        for b in (7, 4096)
    ]
    assert learned[0].shape == x.shape and np.array_equal(*learned)
    # Once the gain settled, the chirp comes out sample for sample where it went in: a lag of
    # one sample would leave an error of the order of the signal at 4 kHz.
    settled = slice(rate, 2 * rate)
    for channel in range(3):
        assert si_sdr(x[channel, settled], outs[0][channel, settled]) > 25.0
    # Channels share one gain: the second stays half the first.
    assert si_sdr(outs[0][0, settled], 2 * outs[0][1, settled]) > 25.0


def test_silence_stays_silent_and_short_streams_keep_their_length() -> None:
    zeros = np.zeros((2, 48_000), dtype=np.float32)
    out, _ = Chain([Denoise()]).process_array(zeros, 48_000, block_frames=1000)
    assert out.shape == zeros.shape and not np.any(out)
    short = np.ones((1, 5), dtype=np.float32)
    assert Chain([Denoise()]).process_array(short, 48_000)[0].shape == (1, 5)


def _gains_reference(power, noise0, floor_gain, sensitivity, run_frames, run_smooth):  # type: ignore[no-untyped-def]
    """`denoise_gains` (tracking mode) written out with numpy, one frame at a time."""
    spp = presence_table(_TABLE_SIZE, _SPP_HIGH)
    grid = np.linspace(0.0, _SPP_HIGH, _TABLE_SIZE)
    xi_min = 10 ** (_XI_MIN_DB / 10)
    ratio_h1 = 10 ** (_XI_H1_DB / 10) / (1 + 10 ** (_XI_H1_DB / 10))
    noise_est, prior = noise0.copy(), np.zeros_like(noise0)
    smooth, least, most, length = (np.zeros_like(noise0) for _ in range(4))
    out = []
    for f, frame in enumerate(power):
        if f < _INIT_FRAMES:
            noise_est = (noise_est * f + frame) / (f + 1)
        else:
            p = np.interp(frame / np.maximum(noise_est, 1e-30) * ratio_h1, grid, spp)
            expected = (1 - p) * frame + p * noise_est
            noise_est = _NOISE_SMOOTH * noise_est + (1 - _NOISE_SMOOTH) * expected
            smooth = run_smooth * smooth + (1 - run_smooth) * frame
            above = smooth > _RUN_ABOVE * noise_est
            steady = np.maximum(most, smooth) <= _RUN_SPREAD * np.minimum(least, smooth)
            going = above & (length > 0) & steady
            least = np.where(going, np.minimum(least, smooth), smooth)
            most = np.where(going, np.maximum(most, smooth), smooth)
            length = np.where(going, length + 1, np.where(above, 1.0, 0.0))
            done = length >= run_frames
            noise_est = np.where(done, np.maximum(noise_est, least), noise_est)
            length = np.where(done, 0.0, length)
        gamma = np.minimum(frame / np.maximum(sensitivity * noise_est, 1e-30), 1e6)
        ml = np.maximum(gamma - 1, 0)
        xi = _DD_ALPHA * prior + (1 - _DD_ALPHA) * ml if f > 0 else ml
        padded_xi = np.concatenate([xi[:1], xi, xi[-1:]])
        s = np.maximum(0.25 * padded_xi[:-2] + 0.5 * xi + 0.25 * padded_xi[2:], xi_min)
        first = s / (1 + s)
        refined = np.maximum(first**2 * gamma, xi_min)
        g = refined / (1 + refined)
        prior = g * g * gamma
        out.append(np.maximum(g, floor_gain))
    return np.array(out)


def test_gain_kernel_matches_a_numpy_reference() -> None:
    rng = np.random.default_rng(9)
    bins = 33
    power = rng.exponential(1.0, (60, bins)) * np.linspace(1, 4, bins)
    power[30:40, 5:12] *= 30  # a burst of "speech"
    power[45:, 20:] *= 100  # a louder noise, steady long enough to be followed
    state = [np.zeros(bins), np.zeros(bins), np.zeros((4, bins)), np.zeros(1)]
    spp = presence_table(_TABLE_SIZE, _SPP_HIGH)
    halves = [
        denoise_gains(np.ascontiguousarray(part), *state, spp, 0.25, 1.5, True, 12.0, 0.7)
        for part in (power[:25], power[25:])
    ]
    expected = _gains_reference(power, np.zeros(bins), 0.25, 1.5, 12.0, 0.7)
    np.testing.assert_allclose(np.concatenate(halves), expected, rtol=1e-9, atol=1e-12)
    # The louder noise was followed (SPP alone holds still where presence is near certain).
    assert np.median(state[0][20:] / np.linspace(1, 4, bins)[20:]) > 20.0


def test_overlap_add_matches_a_numpy_reference() -> None:
    rng = np.random.default_rng(4)
    frames = rng.standard_normal((2, 5, 8))
    carry = rng.standard_normal((2, 4))
    expected = np.zeros((2, 5 * 4 + 4))
    expected[:, :4] += carry
    for f in range(5):
        expected[:, f * 4 : f * 4 + 8] += frames[:, f]
    out = overlap_add(frames, carry, 4)
    np.testing.assert_allclose(out, expected[:, :20], rtol=1e-12)
    np.testing.assert_allclose(carry, expected[:, 20:], rtol=1e-12)


def test_frame_size_is_about_forty_milliseconds() -> None:
    assert frame_size(22_050) == 1024
    assert frame_size(48_000) == 2048
    assert frame_size(8_000) == 256


def test_the_residual_of_noise_stays_noise_not_musical_tones() -> None:
    """Musical noise is isolated time-frequency peaks left in the residual: they raise the
    normalised second moment E[P^2]/E[P]^2 of its STFT power above the 2 of Gaussian noise.
    At the default reduction the residual keeps that statistic within 15 % of the input's
    (it measures 2.24 vs 1.99 here) while 12 dB quieter."""
    rate = 16_000
    x = (0.05 * np.random.default_rng(0).standard_normal(rate * 4)).astype(np.float32)
    y = _ours(x.astype(np.float64), rate)

    def moment(s: NDArray[np.floating]) -> float:
        frames = np.lib.stride_tricks.sliding_window_view(s, 512)[::256] * np.hanning(512)
        p = (np.abs(np.fft.rfft(frames)) ** 2)[20:, 5:-5]  # after the start-up, inner bins
        return float(np.mean(p**2) / np.mean(p) ** 2)

    assert moment(y) < 1.15 * moment(x)
    assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(y**2)) > 11.0
