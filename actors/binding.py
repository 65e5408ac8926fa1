"""Binding of each effect spec (`jobs.effects.SPECS`) to its `dsp` class.

Specs are pure data; this module is the one place that knows which kernel implements which
name. A kernel whose keyword arguments are the spec's parameter names is bound by its class
alone (`_plain`): the values are converted by the spec's kinds (upper-case enums become the
kernels' lower-case strings), so no parameter name is written here a second time. Only
kernels that need more than their parameters (an impulse response, records) have a binder.
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
from jobs.effects import SPECS, EffectCall, Param, loudness_targets

Impulses = Callable[[str, int], tuple[NDArray[np.float32], PartitionedIR | None]]
"""(impulse name or uploaded file id, stream sample rate) -> (IR at that rate, its spectra)."""

Binder = Callable[[Mapping[str, Any], int, Impulses, float], Effect]
"""(parameters, stream sample rate, impulses, the output's sample step: 0.0 if none) -> effect."""


def _lower(value: Any) -> str:
    return str(value).lower()


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "float": float,
    "int": int,
    "bool": bool,
    "enum": _lower,
    "string": str,
}


def _value(param: Param, value: Any) -> Any:
    return None if value is None else _CONVERT[param.kind](value)


def _plain(kernel: Callable[..., Effect], effect: str, step: str = "") -> Binder:
    """`kernel(**params)`, each converted by its kind in the spec of `effect`; `step`: the
    keyword that takes the output's sample step, if the kernel wants it."""
    params = SPECS[effect].params

    def bind(p: Mapping[str, Any], _rate: int, _impulses: Impulses, sample_step: float) -> Effect:
        values = {q.name: _value(q, p[q.name]) for q in params}
        if step:
            values[step] = sample_step
        return kernel(**values)

    return bind


def _reverb(p: Mapping[str, Any], rate: int, impulses: Impulses, _step: float) -> Effect:
    ir, partitions = impulses(str(p["impulse"]), rate)
    rest = {q.name: _value(q, p[q.name]) for q in SPECS["reverb"].params if q.name != "impulse"}
    return Reverb(ir=ir, partitions=partitions, **rest)


def _eq(p: Mapping[str, Any], _rate: int, _impulses: Impulses, _step: float) -> Effect:
    bands = next(q for q in SPECS["eq"].params if q.kind == "records")
    return EQ(
        bands=[EqBand(**{f.name: _value(f, b[f.name]) for f in bands.fields}) for b in p["bands"]]
    )


def _loudness(p: Mapping[str, Any], _rate: int, _impulses: Impulses, _step: float) -> Effect:
    spec = loudness_targets(p)
    return LoudnessNormalize(target_lufs=spec.target_lufs, ceiling_dbtp=spec.true_peak_db)


def _denoise(p: Mapping[str, Any], _rate: int, _impulses: Impulses, _step: float) -> Effect:
    profile = p["profile"]
    return Denoise(
        reduction_db=float(p["reduction_db"]),
        sensitivity=float(p["sensitivity"]),
        profile=None if profile is None else (float(profile["start_s"]), float(profile["end_s"])),
    )


BINDINGS: dict[str, Binder] = {
    "gain": _plain(Gain, "gain"),
    "normalize": _plain(Normalize, "normalize"),
    "loudness": _loudness,
    "eq": _eq,
    "delay": _plain(Delay, "delay"),
    "reverb": _reverb,
    "compressor": _plain(Compressor, "compressor"),
    "limiter": _plain(Limiter, "limiter", step="sample_step"),
    "fade": _plain(Fade, "fade"),
    "trim": _plain(Trim, "trim"),
    "resample": _plain(Resample, "resample"),
    "channels": _plain(Channels, "channels"),
    "denoise": _denoise,
    "silence": _plain(Silence, "silence"),
    "gate": _plain(Gate, "gate"),
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
