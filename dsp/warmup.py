"""Compile every numba kernel at actor start so no job pays for compilation."""

import numpy as np

from dsp.chain import Chain, Effect
from dsp.convolution import PartitionedIR, Reverb
from dsp.delay import Delay
from dsp.denoise import Denoise
from dsp.dynamics import Compressor, Limiter
from dsp.filters import EQ, EqBand
from dsp.gate import Gate
from dsp.loudness import LoudnessMeter
from dsp.meters import FileMeter
from dsp.normalize import LoudnessNormalize, Normalize
from dsp.silence import Silence
from dsp.truepeak import TruePeakLimiter, TruePeakMeter


def warmup() -> None:
    """Run each kernel once on tiny inputs, mono and stereo, with the argument types jobs use.

    With cache=True the machine code is then loaded from (or written to) numba's on-disk cache.
    """
    sample_rate = 8000
    for channels in (1, 2):
        # 400 ms: loudness normalisation needs one BS.1770 gating block.
        x = np.random.default_rng(0).standard_normal((channels, 3200)).astype(np.float32) * 0.5
        ir = np.zeros((2, 64), dtype=np.float32)
        ir[:, 0] = 1.0
        effects: list[Effect] = [
            EQ([EqBand("peak", 1000.0, 1.0, 3.0)]),
            EQ([EqBand("peak", 200.0 * (i + 1), 1.0, 1.0) for i in range(9)]),
            Compressor(-20.0, 4.0, 5.0, 50.0, knee_db=6.0),
            Delay(5.0, 0.3, 0.5),
            Delay(5.0, 0.3, 0.5, ping_pong=True),
            Reverb(ir, 0.5, partitions=PartitionedIR.build(ir, 64)),
            Limiter(-1.0, 50.0, 1.0),
            Normalize("loudness", -23.0),
            LoudnessNormalize(-23.0, -1.0),
            TruePeakLimiter(6.0, -1.0),
            Denoise(),
            Gate(),
            Silence(min_silence_ms=10.0, keep_ms=5.0),
        ]
        Chain(effects).process_array(x, sample_rate)
        meter = LoudnessMeter(sample_rate, channels)
        meter.add(x)
        meter.add(x.astype(np.float64))
        meter.integrated()
        meter.loudness_range()
        for rate in (sample_rate, 44_100, 48_000, 96_000):
            TruePeakMeter(rate, channels).add(x)
        FileMeter(sample_rate, channels).add(x)
