"""Speech from Debian's espeak-ng (never downloaded data), noises to mix it with, and SI-SDR.

Shared by the speech effect tests and `benchmarks/speech.py`. espeak-ng speaks at 22.05 kHz;
`.ci/run` installs it, and a missing binary fails the tests instead of skipping them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from numpy.typing import NDArray

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Audio engines clean up speech for podcasts, interviews and lectures."
)
NOISES = ("white", "pink", "hum")
SNRS = (0.0, 5.0, 10.0)
CLEANER_SNRS = (20.0, 30.0, 40.0, 60.0)
"""Cleaner input, which noise reduction must not make worse (and clean speech, no noise)."""


def espeak(text: str = TEXT, rate: int | None = None) -> tuple[NDArray[np.float64], int]:
    """Mono speech in -1..1 and its sample rate (espeak's 22050 Hz unless `rate` is given)."""
    binary = shutil.which("espeak-ng")
    assert binary, "espeak-ng is not installed (apt-get install espeak-ng; .ci/run does it)"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run([binary, "-w", str(path), text], check=True, capture_output=True)
        x, native = sf.read(path, dtype="float64")
    if rate is not None and rate != native:
        return np.asarray(soxr.resample(x, native, rate), dtype=np.float64), rate
    return x, int(native)


def padded(
    x: NDArray[np.float64], rate: int, before_s: float = 0.5, after_s: float = 0.25
) -> NDArray[np.float64]:
    """Speech with quiet lead-in and tail, as a recording has."""
    return np.concatenate([np.zeros(round(before_s * rate)), x, np.zeros(round(after_s * rate))])


def noise(kind: str, n: int, rate: int, seed: int = 1) -> NDArray[np.float64]:
    """white: Gaussian; pink: 1/f power from 20 Hz to Nyquist (audio-band pink noise);
    hum: 50 Hz mains with 7 harmonics falling 4.4 dB each, random phases."""
    rng = np.random.default_rng(seed)
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        k = np.arange(spectrum.shape[0], dtype=np.float64)
        k[: max(1, int(20.0 * n / rate))] = np.inf
        return np.fft.irfft(spectrum / np.sqrt(k), n)
    if kind == "hum":
        t = np.arange(n) / rate
        return np.sum(
            [
                0.6**h * np.sin(2 * np.pi * 50.0 * (h + 1) * t + rng.uniform(0, 2 * np.pi))
                for h in range(8)
            ],
            axis=0,
        )
    raise ValueError(kind)


def mix(
    clean: NDArray[np.float64], other: NDArray[np.float64], snr_db: float
) -> NDArray[np.float64]:
    """clean + other scaled to `snr_db` below it (powers over the whole signal)."""
    scale = np.sqrt(np.sum(clean**2) / np.sum(other**2) / 10 ** (snr_db / 10))
    return clean + scale * other


def si_sdr(reference: NDArray[np.floating], estimate: NDArray[np.floating]) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), both signals made zero-mean."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    est = np.asarray(estimate, dtype=np.float64).ravel()
    ref = ref - ref.mean()
    est = est - est.mean()
    target = np.dot(est, ref) / np.dot(ref, ref) * ref
    error = est - target
    return float(10 * np.log10(np.dot(target, target) / np.dot(error, error)))
