"""Audio DSP kernels and streaming effects: (channels, frames) float32 blocks in and out."""

from dsp.chain import Analyzer, Chain, Cutter, Effect, Retimer, Stopped
from dsp.channels import Channels
from dsp.convolution import PartitionedIR, Reverb
from dsp.delay import Delay
from dsp.denoise import Denoise
from dsp.dynamics import Compressor, Limiter
from dsp.edits import Fade, Trim
from dsp.filters import EQ, EqBand, biquad_cascade, rbj_sos
from dsp.gain import Gain
from dsp.gate import Gate
from dsp.impulses import PRESETS, preset
from dsp.loudness import LevelMeter, LoudnessMeter, peak_db, rms_db
from dsp.normalize import LoudnessNormalize, Normalize
from dsp.resample import Resample
from dsp.silence import Silence
from dsp.truepeak import TruePeakLimiter, TruePeakMeter
from dsp.warmup import warmup

__all__ = [
    "EQ",
    "PRESETS",
    "Analyzer",
    "Chain",
    "Channels",
    "Compressor",
    "Cutter",
    "Delay",
    "Denoise",
    "Effect",
    "EqBand",
    "Fade",
    "Gain",
    "Gate",
    "LevelMeter",
    "Limiter",
    "LoudnessMeter",
    "LoudnessNormalize",
    "Normalize",
    "PartitionedIR",
    "Resample",
    "Retimer",
    "Reverb",
    "Silence",
    "Stopped",
    "Trim",
    "TruePeakLimiter",
    "TruePeakMeter",
    "biquad_cascade",
    "peak_db",
    "preset",
    "rbj_sos",
    "rms_db",
    "warmup",
]
