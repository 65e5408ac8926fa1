"""Built-in reverb impulse responses, generated (no files): exponentially decaying noise."""

import math

import numpy as np
from numpy.typing import NDArray

PRESETS = ("room", "hall", "plate")

# name: (rt60 seconds, seed, early reflections (delay ms, gain), one-pole damping cutoff Hz)
_SPECS: dict[str, tuple[float, int, tuple[tuple[float, float], ...], float]] = {
    "room": (0.6, 1, ((7.0, 0.7), (11.0, -0.5), (17.0, 0.4), (23.0, -0.3)), 6000.0),
    "hall": (2.5, 2, ((19.0, 0.6), (31.0, -0.45), (43.0, 0.35), (61.0, -0.25)), 4500.0),
    "plate": (1.8, 3, (), 12000.0),
}


def preset(name: str, sample_rate: int) -> NDArray[np.float32]:
    """A deterministic stereo IR (2, n), n = rt60 * sample_rate, each channel of unit energy.

    Each channel is Gaussian noise (fixed seed, different per channel so the two are
    decorrelated) times exp(-6.91 t / rt60) (-60 dB at rt60), low-passed by a one-pole filter
    y[n] = (1 - a) x[n] + a y[n-1], plus a few sparse early reflection taps
    (2 gain max|noise|, opposite sign on the right). A unit direct-path tap is not
    included (the dry path of Reverb provides it). Unit energy (sum of squares = 1) means
    white noise keeps its power through the reverb.
    """
    if name not in _SPECS:
        raise ValueError(f"unknown reverb preset {name!r}; expected one of {', '.join(PRESETS)}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    rt60, seed, early, cutoff = _SPECS[name]
    n = max(1, round(rt60 * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    envelope = np.exp(-math.log(1000.0) * t / rt60)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((2, n)) * envelope
    a = math.exp(-2.0 * math.pi * min(cutoff, 0.45 * sample_rate) / sample_rate)
    # Imported here: scipy.signal costs ~0.4 s to import, and only preset synthesis needs it.
    from scipy.signal import lfilter

    damped = np.asarray(lfilter([1.0 - a], [1.0, -a], noise, axis=1), dtype=np.float64)
    level = float(np.max(np.abs(damped)))
    for delay_ms, gain in early:
        k = round(delay_ms * sample_rate / 1000.0)
        if k < n:
            damped[0, k] += 2.0 * gain * level
            damped[1, k] -= 2.0 * gain * level
    energy = np.sqrt(np.sum(damped * damped, axis=1, keepdims=True))
    ir: NDArray[np.float32] = (damped / energy).astype(np.float32)
    return ir
