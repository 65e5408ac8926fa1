"""Album loudness (ReplayGain album mode): one gain for every file of a batch.

Each file's job first measures the signal reaching its album step (`jobs.effects.album_step`)
as BS.1770 gating-block powers (400 ms blocks, 100 ms hop: `dsp.loudness.LoudnessMeter.
block_powers`); blocks pool exactly, so gating the pool gives the loudness of the files as
one programme. That loudness goes to every job's render, whose album step applies
`target - album loudness` to its file: the files keep their relative levels, and the album
as a whole meets the target.

>>> round(pooled_loudness([[0.001] * 10, [0.01] * 10]), 2)  # two files, 10 dB apart
-17.1
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


def pooled_loudness(files: Iterable[Sequence[float]]) -> float:
    """Integrated loudness (LUFS) of the gating-block powers of all `files` together (BS.1770-4:
    the blocks above -70 LUFS and above their mean - 10 LU); -inf when none pass."""
    powers = np.concatenate([np.asarray(f, dtype=np.float64) for f in files] or [np.zeros(0)])
    above = powers[powers > 10.0 ** ((ABSOLUTE_GATE_LUFS + 0.691) / 10.0)]
    if above.size == 0:
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(float(above.mean())) + RELATIVE_GATE_LU
    gated = above[above > 10.0 ** ((relative + 0.691) / 10.0)]
    return -0.691 + 10.0 * math.log10(float(gated.mean()))
