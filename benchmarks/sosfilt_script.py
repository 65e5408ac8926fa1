"""The reference a new user would write instead of `audio-engine process`: soundfile + scipy.

Run: python benchmarks/sosfilt_script.py IN.wav OUT.wav (4 PEAK bands, float WAV out)
"""

import sys

import numpy as np
import scipy.signal as ss
import soundfile as sf

BANDS = ((100.0, 3.0), (400.0, -4.0), (2000.0, 2.5), (8000.0, -3.0))  # (Hz, dB), Q = 1


def peak(f0: float, gain_db: float, q: float, rate: int) -> np.ndarray:
    a, w = 10 ** (gain_db / 40), 2 * np.pi * f0 / rate
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return np.concatenate([b, den]) / den[0]


audio, rate = sf.read(sys.argv[1], dtype="float32")
sos = np.stack([peak(f, g, 1.0, rate) for f, g in BANDS])
sf.write(sys.argv[2], ss.sosfilt(sos, audio, axis=0).astype(np.float32), rate, subtype="FLOAT")
