"""Binding of each effect spec (`jobs.effects.SPECS`) to its `dsp` class.

Specs are pure data; this module is the one place that knows which kernel implements which
name and how spec values (upper-case enums, snake_case names) become keyword arguments.
No Ray here: the CLI builds the same chains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp.chain import Chain, Effect
from dsp.channels import Channels
from dsp.convolution import PartitionedIR, Reverb
from dsp.delay import Delay
from dsp.denoise import Denoise
from dsp.dynamics import Compressor, Limiter
from dsp.edits import Fade, Trim
from dsp.filters import EQ, EqBand
from dsp.gain import Gain
from dsp.gate import Gate
from dsp.normalize import LoudnessNormalize, Normalize
from dsp.resample import Resample
from dsp.silence import Silence
from jobs.effects import EffectCall, loudness_targets

Impulses = Callable[[str, int], tuple[NDArray[np.float32], PartitionedIR | None]]
"""(impulse name or uploaded file id, stream sample rate) -> (IR at that rate, its spectra)."""

Binder = Callable[[Mapping[str, Any], int, Impulses, float], Effect]
"""(parameters, stream sample rate, impulses, the output's sample step: 0.0 if none) -> effect."""


def _lower(value: Any) -> str:
    return str(value).lower()


def _reverb(p: Mapping[str, Any], rate: int, impulses: Impulses, _step: float) -> Effect:
    ir, partitions = impulses(str(p["impulse"]), rate)
    return Reverb(
        ir=ir,
        mix=float(p["mix"]),
        pre_delay_ms=float(p["pre_delay_ms"]),
        tail=bool(p["tail"]),
        partitions=partitions,
    )


def _eq(p: Mapping[str, Any], _rate: int, _impulses: Impulses, _step: float) -> Effect:
    bands = [
        EqBand(
            kind=_lower(b["kind"]),
            frequency=float(b["frequency"]),
            q=float(b["q"]),
            gain_db=float(b["gain_db"]),
        )
        for b in p["bands"]
    ]
    return EQ(bands=bands)


def _loudness(p: Mapping[str, Any], _rate: int, _impulses: Impulses, _step: float) -> Effect:
    spec = loudness_targets(p)
    return LoudnessNormalize(target_lufs=spec.target_lufs, ceiling_dbtp=spec.true_peak_db)


def _trim(p: Mapping[str, Any], _rate: int, _impulses: Impulses, _step: float) -> Effect:
    end = p["end_s"]
    return Trim(start_s=float(p["start_s"]), end_s=None if end is None else float(end))


def _denoise(p: Mapping[str, Any], _rate: int, _impulses: Impulses, _step: float) -> Effect:
    profile = p["profile"]
    return Denoise(
        reduction_db=float(p["reduction_db"]),
        sensitivity=float(p["sensitivity"]),
        profile=None if profile is None else (float(profile["start_s"]), float(profile["end_s"])),
    )


BINDINGS: dict[str, Binder] = {
    "gain": lambda p, _r, _i, _s: Gain(db=float(p["db"])),
    "normalize": lambda p, _r, _i, _s: Normalize(mode=_lower(p["mode"]), target=float(p["target"])),
    "loudness": _loudness,
    "eq": _eq,
    "delay": lambda p, _r, _i, _s: Delay(
        time_ms=float(p["time_ms"]),
        feedback=float(p["feedback"]),
        mix=float(p["mix"]),
        ping_pong=bool(p["ping_pong"]),
    ),
    "reverb": _reverb,
    "compressor": lambda p, _r, _i, _s: Compressor(
        threshold_db=float(p["threshold_db"]),
        ratio=float(p["ratio"]),
        attack_ms=float(p["attack_ms"]),
        release_ms=float(p["release_ms"]),
        makeup_db=float(p["makeup_db"]),
        knee_db=float(p["knee_db"]),
    ),
    "limiter": lambda p, _r, _i, step: Limiter(
        ceiling_db=float(p["ceiling_db"]), release_ms=float(p["release_ms"]), sample_step=step
    ),
    "fade": lambda p, _r, _i, _s: Fade(
        in_ms=float(p["in_ms"]), out_ms=float(p["out_ms"]), curve=_lower(p["curve"])
    ),
    "trim": _trim,
    "resample": lambda p, _r, _i, _s: Resample(rate=int(p["rate"])),
    "channels": lambda p, _r, _i, _s: Channels(mode=_lower(p["mode"])),
    "denoise": _denoise,
    "silence": lambda p, _r, _i, _s: Silence(
        threshold_db=float(p["threshold_db"]),
        min_silence_ms=float(p["min_silence_ms"]),
        keep_ms=float(p["keep_ms"]),
    ),
    "gate": lambda p, _r, _i, _s: Gate(
        threshold_db=float(p["threshold_db"]),
        range_db=float(p["range_db"]),
        attack_ms=float(p["attack_ms"]),
        hold_ms=float(p["hold_ms"]),
        release_ms=float(p["release_ms"]),
    ),
}


def build_chain(
    calls: Sequence[EffectCall], sample_rate: int, impulses: Impulses, sample_step: float = 0.0
) -> Chain:
    """Instantiate the kernels of a validated chain for a stream starting at `sample_rate`.

    The rate each effect sees is tracked through `resample`, so a reverb after a resample gets
    its impulse response at the new rate. `sample_step` is the spacing of the output's PCM
    values (`jobs.formats.sample_step`): a limiter then keeps its ceiling after rounding too.

    >>> from jobs.effects import parse_chain
    >>> chain = build_chain(parse_chain([{"gain": {"db": -6}}]), 48_000, impulses=None)
    """
    effects: list[Effect] = []
    rate = sample_rate
    for call in calls:
        effects.append(BINDINGS[call.name](call.params, rate, impulses, sample_step))
        if call.name == "resample":
            rate = int(call.params["rate"])
    return Chain(effects)
