"""Synthetic programme material for the loudness tests: music-like, speech-like, and material
whose MP3 encode overshoots the true-peak ceiling."""

from __future__ import annotations

import numpy as np


def music_like(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Chords with a beat, bass and noise, a quiet passage, stereo (LRA of a few LU)."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    beat = np.exp(-((t * 2.0) % 1.0) * 8.0)
    chords = sum(
        np.sin(2 * np.pi * f * t + k) / (k + 1) for k, f in enumerate([220, 277, 330, 440])
    )
    bass = np.sin(2 * np.pi * 55 * t) * beat
    section = np.where((t > seconds * 0.4) & (t < seconds * 0.6), 0.25, 1.0)
    left = section * (0.25 * chords + 0.4 * bass + 0.05 * rng.standard_normal(n) * beat)
    right = section * (0.2 * chords + 0.4 * bass + 0.05 * rng.standard_normal(n) * beat)
    return (0.5 * np.stack([left, right])).astype(np.float32)


def speech_like(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Voiced syllables (harmonics of a gliding 100-180 Hz f0, two formant bands) of random
    length and level, separated by pauses; mono copied to both channels."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(sr * rng.uniform(0.08, 0.35))
        t = np.arange(length) / sr
        f0 = rng.uniform(100, 180) * (1 + 0.1 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        syllable = sum(
            np.sin(h * phase)
            * (1.0 if 300 < h * f0[0] < 900 or 1800 < h * f0[0] < 2600 else 0.15)
            / h
            for h in range(1, 30)
        )
        env = np.sin(np.pi * np.arange(length) / length) ** 2 * 10 ** (rng.uniform(-12, 0) / 20)
        stop = min(n, pos + length)
        out[pos:stop] = (0.3 * syllable * env)[: stop - pos]
        pos = stop + int(sr * rng.choice([0.05, 0.1, 0.6], p=[0.6, 0.3, 0.1]))
    return np.stack([out, out]).astype(np.float32)


def mp3_overshoot(sr: int, seconds: float) -> np.ndarray:
    """Music with short bursts of a hard-clipped 110 Hz tone that set the peaks. An MP3 encoder
    drops the clipped tone's top harmonics, and the band-limited square rings over its flat top
    (Gibbs): the decoded true peak lands about 0.15 dB over what was encoded."""
    t = np.arange(int(sr * seconds)) / sr
    burst = ((t % 3.0) > 1.0) & ((t % 3.0) < 1.25)
    square = np.clip(3.0 * np.sin(2 * np.pi * 110 * t), -0.5, 0.5)
    return (0.6 * music_like(sr, seconds, 3) + burst * square).astype(np.float32)
