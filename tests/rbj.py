"""An independent RBJ Audio-EQ-Cookbook implementation, for references in tests."""

from __future__ import annotations

import math

import numpy as np


def rbj_sos(kind: str, f0: float, q: float, gain_db: float, fs: float) -> np.ndarray:
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2 * q)
    kind = kind.lower()
    if kind == "lowpass":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "bandpass":
        b = [alpha, 0.0, -alpha]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "notch":
        b = [1.0, -2 * cw, 1.0]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "peak":
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif kind in ("lowshelf", "highshelf"):
        sq = 2 * math.sqrt(a) * alpha
        s = 1 if kind == "lowshelf" else -1
        b = [
            a * ((a + 1) - s * (a - 1) * cw + sq),
            s * 2 * a * ((a - 1) - s * (a + 1) * cw),
            a * ((a + 1) - s * (a - 1) * cw - sq),
        ]
        den = [
            (a + 1) + s * (a - 1) * cw + sq,
            -s * 2 * ((a - 1) + s * (a + 1) * cw),
            (a + 1) + s * (a - 1) * cw - sq,
        ]
    else:
        raise ValueError(kind)
    return np.array([*(np.array(b) / den[0]), 1.0, den[1] / den[0], den[2] / den[0]])
