"""Every effect, declared once.

The GraphQL input types, submit-time validation, the `effects` catalog query and the CLI chain
files are all generated from or checked against these specs; nothing restates a range. A chain
is written the way GraphQL's `JobInput.effects` is: a list of one-key objects,
`[{"gain": {"db": -3}}, {"eq": {"bands": [{"kind": "PEAK", "frequency": 1000, "gainDb": 4}]}}]`,
with camelCase field names and enum values in upper case. `actors/` binds each spec to a kernel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jobs.errors import BadInput, MissingParam, ParamOutOfRange, UnknownEffect, UnknownParam

ParamKind = Literal["float", "int", "bool", "enum", "string", "records", "record"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

IR_PRESETS = ("room", "hall", "plate")
"""The reverb's built-in impulse responses: `dsp.impulses.PRESETS` makes them (a test checks
the two agree; `dsp` depends on nothing of ours), every description here names them."""
MAX_EFFECTS = 32


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter. Its unit is in its name (`time_ms`, `gain_db`); its GraphQL field is the
    camelCase of the name. `nullable` parameters may be null (meaning "not set"). A `record`
    with `span_s` set is a time range (`start_s`, `end_s` fields) at least that long."""

    name: str
    kind: ParamKind
    description: str
    unit: str = ""
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    below_nyquist: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    type_name: str = ""
    fields: tuple[Param, ...] = ()
    span_s: float | None = None

    @property
    def field_name(self) -> str:
        return camel(self.name)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def allowed(self, sample_rate: int | None) -> str:
        parts: list[str] = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        if self.below_nyquist:
            nyq = f"{sample_rate / 2:g} Hz" if sample_rate else "sampleRate/2"
            parts.append(f"< Nyquist ({nyq})")
        if self.choices:
            parts.append("one of " + ", ".join(self.choices))
        return " and ".join(parts) or "any"

    def check(self, effect: str, value: Any, sample_rate: int | None) -> Any:
        """Return the value coerced to its kind, or raise a `BadInput` naming the problem."""
        label = f"{effect}.{self.field_name}"
        if value is None:
            if self.nullable:
                return None
            raise MissingParam(effect, self.field_name)
        if self.kind == "records":
            return self._check_records(effect, value, sample_rate)
        if self.kind == "record":
            return self._check_record(effect, value, sample_rate)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise BadInput(f"{label} must be true or false")
            return value
        if self.kind == "enum":
            text = str(getattr(value, "value", value)).upper()
            if text not in self.choices:
                raise ParamOutOfRange(effect, self.field_name, value, self.allowed(sample_rate))
            return text
        if self.kind == "string":
            if not isinstance(value, str) or not value:
                raise BadInput(f"{label} must be a non-empty string")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"{label} must be a number")
        number: float | int = int(value) if self.kind == "int" else float(value)
        if self.kind == "int" and number != value:
            raise BadInput(f"{label} must be a whole number")
        if not math.isfinite(number) or not self._in_range(float(number), sample_rate):
            raise ParamOutOfRange(effect, self.field_name, value, self.allowed(sample_rate))
        return number

    def _in_range(self, x: float, sample_rate: int | None) -> bool:
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        if self.high is not None and (x >= self.high if self.high_open else x > self.high):
            return False
        return not (self.below_nyquist and sample_rate and x >= sample_rate / 2)

    def _check_record(self, effect: str, value: Any, sample_rate: int | None) -> Any:
        where = f"{effect}.{self.field_name}"
        values = _check_fields(where, self.fields, value, sample_rate)
        if self.span_s is not None and values["end_s"] - values["start_s"] < self.span_s:
            raise ParamOutOfRange(
                effect,
                f"{self.field_name}.endS",
                values["end_s"],
                f">= startS + {self.span_s:g} (a range of at least {self.span_s:g} s)",
            )
        return values

    def within(self, effect: str, value: Any, duration_s: float) -> None:
        """Refuse a time range that does not lie inside a signal `duration_s` long."""
        if self.span_s is None or value is None:
            return
        if value["end_s"] > duration_s:
            raise ParamOutOfRange(
                effect,
                f"{self.field_name}.endS",
                value["end_s"],
                f"<= {duration_s:g} (the input's duration in seconds)",
            )

    def _check_records(self, effect: str, value: Any, sample_rate: int | None) -> Any:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise BadInput(f"{effect}.{self.field_name} must be a list")
        count = len(value)
        if (self.low is not None and count < self.low) or (
            self.high is not None and count > self.high
        ):
            raise ParamOutOfRange(
                effect, self.field_name, f"{count} items", f"{self.low:g}..{self.high:g} items"
            )
        return tuple(
            _check_fields(f"{effect}.{self.field_name}[{i}]", self.fields, item, sample_rate)
            for i, item in enumerate(value)
        )


def _check_fields(
    where: str, params: Sequence[Param], given: Any, sample_rate: int | None
) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise BadInput(f"{where} must be an object")
    names = {p.field_name: p for p in params}
    if unknown := sorted(set(given) - set(names)):
        raise UnknownParam(where, unknown)
    values: dict[str, Any] = {}
    for p in params:
        raw = given.get(p.field_name, p.default)
        if raw is REQUIRED:
            raise MissingParam(where, p.field_name)
        values[p.name] = p.check(where, raw, sample_rate)
    return values


@dataclass(frozen=True, slots=True)
class EffectSpec:
    name: str
    description: str
    params: tuple[Param, ...]
    changes_rate: bool = False
    one_of: tuple[str, ...] = ()
    """Nullable parameters of which at least one must be given."""

    @property
    def type_name(self) -> str:
        return self.name[0].upper() + self.name[1:] + "Input"

    def resolve(self, given: Any, sample_rate: int | None = None) -> dict[str, Any]:
        """Validated parameters by snake_case name, defaults filled in."""
        values = _check_fields(self.name, self.params, given, sample_rate)
        if self.one_of and all(values[name] is None for name in self.one_of):
            fields = " or ".join(camel(name) for name in self.one_of)
            raise BadInput(f"{self.name} needs {fields}")
        return values


@dataclass(frozen=True, slots=True)
class EffectCall:
    """One validated step of a chain: parameters by snake_case name, defaults filled in."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        spec = SPECS[self.name]
        return {self.name: _fields_json(spec.params, self.params)}


def _fields_json(params: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in params:
        v = values[p.name]
        if p.kind == "records":
            v = [_fields_json(p.fields, item) for item in v]
        elif p.kind == "record" and v is not None:
            v = _fields_json(p.fields, v)
        out[p.field_name] = v
    return out


def _float(
    name: str, description: str, unit: str, default: Any, low: float, high: float | None, **kw: Any
) -> Param:
    return Param(name, "float", description, unit, default, low, high, **kw)


@dataclass(frozen=True, slots=True)
class LoudnessStandard:
    """A delivery spec: integrated loudness target (LUFS) and true-peak ceiling (dBTP)."""

    target_lufs: float
    true_peak_db: float


LOUDNESS_STANDARDS: dict[str, LoudnessStandard] = {
    "EBU_R128": LoudnessStandard(-23.0, -1.0),
    "ATSC_A85": LoudnessStandard(-24.0, -2.0),
    "PODCAST": LoudnessStandard(-16.0, -1.0),
    "STREAMING": LoudnessStandard(-14.0, -1.0),
}
DEFAULT_TRUE_PEAK_DB = -1.0


def loudness_targets(params: Mapping[str, Any]) -> LoudnessStandard:
    """Target and ceiling of a validated `loudness` step: explicit values win over the
    standard's; without a standard the ceiling defaults to -1 dBTP.

    >>> loudness_targets({"standard": "ATSC_A85", "target": None, "true_peak_db": None})
    LoudnessStandard(target_lufs=-24.0, true_peak_db=-2.0)
    """
    standard = LOUDNESS_STANDARDS.get(str(params.get("standard")))
    target = params.get("target")
    ceiling = params.get("true_peak_db")
    if target is None:
        if standard is None:
            raise BadInput("loudness needs standard or target")
        target = standard.target_lufs
    if ceiling is None:
        ceiling = standard.true_peak_db if standard else DEFAULT_TRUE_PEAK_DB
    return LoudnessStandard(float(target), float(ceiling))


def album_step(calls: Sequence[EffectCall]) -> int | None:
    """Index of the step an album batch applies one gain with: the last `loudness` or
    `normalize` LOUDNESS step; None when the chain has none.

    >>> album_step(parse_chain([{"normalize": {"mode": "LOUDNESS", "target": -16}}]))
    0
    """
    found = [
        i
        for i, call in enumerate(calls)
        if call.name == "loudness"
        or (call.name == "normalize" and call.params.get("mode") == "LOUDNESS")
    ]
    return found[-1] if found else None


TIME_RANGE = (
    _float("start_s", "Start of the range.", "s", REQUIRED, 0.0, 86_400.0),
    _float("end_s", "End of the range.", "s", REQUIRED, 0.0, 86_400.0, low_open=True),
)

EQ_KINDS = ("LOWPASS", "HIGHPASS", "BANDPASS", "NOTCH", "PEAK", "LOWSHELF", "HIGHSHELF")

SPECS: dict[str, EffectSpec] = {
    spec.name: spec
    for spec in (
        EffectSpec(
            "gain",
            "Multiply by a constant gain: y = x * 10^(db/20).",
            (_float("db", "Gain in decibels.", "dB", REQUIRED, -120.0, 60.0),),
        ),
        EffectSpec(
            "normalize",
            "Scale the whole signal so its sample peak (dBFS) or integrated loudness "
            "(LUFS, ITU-R BS.1770-4) reaches the target. Reads the input twice.",
            (
                Param(
                    "mode",
                    "enum",
                    "What is measured.",
                    "",
                    "PEAK",
                    choices=("PEAK", "LOUDNESS"),
                    type_name="NormalizeMode",
                ),
                _float(
                    "target",
                    "Target peak (dBFS) or loudness (LUFS).",
                    "dBFS|LUFS",
                    REQUIRED,
                    -70.0,
                    0.0,
                ),
            ),
        ),
        EffectSpec(
            "loudness",
            "Deliver to a loudness spec: measure the integrated loudness (ITU-R BS.1770-4), "
            "apply a static gain to the target, then an oversampled true-peak limiter holding "
            "the ceiling. Give standard or target; an explicit target or truePeakDb overrides "
            "the standard's (EBU_R128 -23/-1, ATSC_A85 -24/-2, PODCAST -16/-1, STREAMING "
            "-14/-1). Reads the input twice; the job reports compliance measured on the "
            "delivered file.",
            (
                Param(
                    "standard",
                    "enum",
                    "Named delivery spec.",
                    "",
                    None,
                    nullable=True,
                    choices=tuple(LOUDNESS_STANDARDS),
                    type_name="LoudnessStandard",
                ),
                _float(
                    "target",
                    "Integrated loudness target; null takes the standard's.",
                    "LUFS",
                    None,
                    -70.0,
                    0.0,
                    nullable=True,
                ),
                _float(
                    "true_peak_db",
                    "True-peak ceiling; null takes the standard's, else -1.",
                    "dBTP",
                    None,
                    -20.0,
                    0.0,
                    nullable=True,
                ),
            ),
            one_of=("standard", "target"),
        ),
        EffectSpec(
            "eq",
            "Cascade of RBJ Audio-EQ-Cookbook biquads, one per band. For shelves q is the "
            "cookbook's Q; the default 0.7071 equals shelf slope S = 1.",
            (
                Param(
                    "bands",
                    "records",
                    "Filter bands, applied in order.",
                    "",
                    REQUIRED,
                    1,
                    64,
                    type_name="EqBandInput",
                    fields=(
                        Param(
                            "kind",
                            "enum",
                            "Filter shape.",
                            "",
                            REQUIRED,
                            choices=EQ_KINDS,
                            type_name="EqKind",
                        ),
                        _float(
                            "frequency",
                            "Centre or corner frequency.",
                            "Hz",
                            REQUIRED,
                            0.0,
                            None,
                            low_open=True,
                            below_nyquist=True,
                        ),
                        _float(
                            "q",
                            "Quality factor (bandwidth); for shelves the cookbook Q.",
                            "",
                            0.7071,
                            0.01,
                            100.0,
                        ),
                        _float("gain_db", "Gain of PEAK and shelf bands.", "dB", 0.0, -48.0, 48.0),
                    ),
                ),
            ),
        ),
        EffectSpec(
            "delay",
            "Feedback delay: d[n] = x[n-D] + feedback*d[n-D]; y = (1-mix)*x + mix*d. After the "
            "input, the echoes run on until they fall below -90 dBFS, for at most 60 s (a tail "
            "cut there is faded out over its last second).",
            (
                _float("time_ms", "Delay time D.", "ms", 250.0, 0.0, 10_000.0, low_open=True),
                _float("feedback", "Share of the delayed signal fed back.", "", 0.3, 0.0, 0.99),
                _float("mix", "Wet share of the output.", "", 0.5, 0.0, 1.0),
                Param(
                    "ping_pong", "bool", "Alternate the echoes between left and right.", "", False
                ),
            ),
        ),
        EffectSpec(
            "reverb",
            f"Convolution reverb with a built-in impulse response ({', '.join(IR_PRESETS)}) or an "
            "uploaded audio file used as one. With mix 1, preDelayMs 0 and tail true the output "
            "is exactly x convolved with the IR, which is not rescaled.",
            (
                Param(
                    "impulse",
                    "string",
                    f"Preset name ({', '.join(IR_PRESETS)}) or an audio file id.",
                    "",
                    IR_PRESETS[0],
                ),
                _float("mix", "Wet share of the output.", "", 0.3, 0.0, 1.0),
                _float("pre_delay_ms", "Delay before the wet signal.", "ms", 0.0, 0.0, 1000.0),
                Param("tail", "bool", "Keep the reverb tail after the input ends.", "", True),
            ),
        ),
        EffectSpec(
            "compressor",
            "Feed-forward compressor, stereo linked, soft knee.",
            (
                _float(
                    "threshold_db", "Level above which gain is reduced.", "dBFS", -18.0, -80.0, 0.0
                ),
                _float("ratio", "Input/output slope above the threshold.", "", 4.0, 1.0, 100.0),
                _float("attack_ms", "Attack time constant.", "ms", 10.0, 0.01, 1000.0),
                _float("release_ms", "Release time constant.", "ms", 100.0, 1.0, 5000.0),
                _float("makeup_db", "Gain after compression.", "dB", 0.0, -24.0, 48.0),
                _float("knee_db", "Width of the soft knee.", "dB", 0.0, 0.0, 48.0),
            ),
        ),
        EffectSpec(
            "limiter",
            "Lookahead brick-wall limiter: no output sample exceeds the ceiling, also after "
            "rounding to a PCM output's sample format (OGG and MP3 cannot promise it).",
            (
                _float("ceiling_db", "Highest output sample level.", "dBFS", -1.0, -60.0, 0.0),
                _float("release_ms", "Release time constant.", "ms", 50.0, 1.0, 5000.0),
            ),
        ),
        EffectSpec(
            "fade",
            "Fade in at the start and out at the end.",
            (
                _float("in_ms", "Fade-in length.", "ms", 0.0, 0.0, 3_600_000.0),
                _float("out_ms", "Fade-out length.", "ms", 0.0, 0.0, 3_600_000.0),
                Param(
                    "curve",
                    "enum",
                    "Shape of the gain ramp.",
                    "",
                    "LINEAR",
                    choices=("LINEAR", "SINE", "EXPONENTIAL"),
                    type_name="FadeCurve",
                ),
            ),
        ),
        EffectSpec(
            "trim",
            "Keep only the part between startS and endS (seconds of the signal reaching it).",
            (
                _float("start_s", "Start of the kept part.", "s", 0.0, 0.0, 86_400.0),
                _float(
                    "end_s",
                    "End of the kept part; null keeps to the end.",
                    "s",
                    None,
                    0.0,
                    86_400.0,
                    low_open=True,
                    nullable=True,
                ),
            ),
        ),
        EffectSpec(
            "resample",
            "Polyphase (soxr) sample-rate conversion.",
            (Param("rate", "int", "Output sample rate.", "Hz", REQUIRED, 8000, 192_000),),
            changes_rate=True,
        ),
        EffectSpec(
            "channels",
            "Channel layout: MONO averages channels, STEREO duplicates mono, SWAP swaps L/R.",
            (
                Param(
                    "mode",
                    "enum",
                    "Target layout.",
                    "",
                    REQUIRED,
                    choices=("MONO", "STEREO", "SWAP"),
                    type_name="ChannelMode",
                ),
            ),
        ),
        EffectSpec(
            "denoise",
            "Speech noise reduction: a short-time spectral (decision-directed Wiener) estimator "
            "against a noise floor tracked continuously, or learned from a noise-only profile "
            "range. Output aligned with the input, same length.",
            (
                _float(
                    "reduction_db",
                    "Most attenuation of a noise-only bin.",
                    "dB",
                    12.0,
                    0.0,
                    40.0,
                ),
                _float(
                    "sensitivity",
                    "Scales the noise estimate: above 1 removes more (and more speech).",
                    "",
                    1.0,
                    0.1,
                    10.0,
                ),
                Param(
                    "profile",
                    "record",
                    "A noise-only range to learn the noise from (at least 0.1 s), in seconds "
                    "of the signal reaching this step; null tracks the noise floor continuously.",
                    "s",
                    None,
                    nullable=True,
                    type_name="TimeRangeInput",
                    fields=TIME_RANGE,
                    span_s=0.1,
                ),
            ),
        ),
        EffectSpec(
            "silence",
            "Shorten every pause longer than minSilenceMs to keepMs, cut in its middle with a "
            "short equal-power crossfade. The job's `edits` list what was cut.",
            (
                _float(
                    "threshold_db",
                    "Short-term (20 ms) level under which it is silence.",
                    "dBFS",
                    -50.0,
                    -120.0,
                    0.0,
                ),
                _float(
                    "min_silence_ms",
                    "Pauses longer than this are cut.",
                    "ms",
                    1000.0,
                    10.0,
                    60_000.0,
                ),
                _float("keep_ms", "What is left of a cut pause.", "ms", 300.0, 0.0, 60_000.0),
            ),
        ),
        EffectSpec(
            "gate",
            "Noise gate with hysteresis (closes 6 dB under the threshold), hold and lookahead.",
            (
                _float(
                    "threshold_db", "Level above which the gate opens.", "dBFS", -50.0, -120.0, 0.0
                ),
                _float("range_db", "Attenuation when closed.", "dB", 60.0, 0.0, 120.0),
                _float("attack_ms", "Time to open fully.", "ms", 1.0, 0.0, 1000.0),
                _float("hold_ms", "Time kept open after the level fell.", "ms", 50.0, 0.0, 5000.0),
                _float("release_ms", "Time to close fully.", "ms", 100.0, 0.0, 10_000.0),
            ),
        ),
    )
}


@dataclass(slots=True)
class _Signal:
    """What is known of the signal reaching an effect while a chain is validated: its rate,
    and its length in frames once the input's is given (None after an effect that adds a
    signal-dependent tail). `slack` frames of doubt accumulate through resampling."""

    rate: int | None
    frames: int | None
    slack: int = 0

    def seconds(self) -> str:
        assert self.rate and self.frames is not None
        return f"{self.frames / self.rate:.6g} s ({self.frames} frames at {self.rate} Hz)"


def _follow(where: str, call: EffectCall, signal: _Signal) -> None:
    """Refuse a step that would silently do nothing or leave an empty file, and update what
    is known of the signal after it."""
    p = call.params
    if call.name == "trim" and p["end_s"] is not None and p["end_s"] <= p["start_s"]:
        raise BadInput(
            f"{where} trim.endS = {p['end_s']:g} must be greater than startS = {p['start_s']:g}"
        )
    if SPECS[call.name].changes_rate:
        old_rate, signal.rate = signal.rate, int(p["rate"])
        if signal.frames is None or old_rate is None or old_rate == signal.rate:
            return
        exact = signal.frames * signal.rate / old_rate
        if 2 * (signal.frames + signal.slack) * signal.rate < old_rate:
            raise BadInput(
                f"{where} resample to {signal.rate} Hz of a signal of {signal.frames} frames at "
                f"{old_rate} Hz gives no frames at all: the output would be empty"
            )
        signal.frames, signal.slack = math.floor(exact + 0.5), signal.slack + 2
        return
    if signal.rate is None or signal.frames is None:
        return
    rate, frames = signal.rate, signal.frames
    profile = p["profile"] if call.name == "denoise" else None
    if profile is not None and profile["end_s"] * rate > frames + signal.slack:
        raise ParamOutOfRange(
            "denoise",
            "profile.endS",
            profile["end_s"],
            f"<= the length of the signal reaching {where}, {signal.seconds()}",
        )
    if call.name in ("delay", "silence") or (call.name == "reverb" and p["tail"]):
        signal.frames = None  # a tail or cuts of a length only the signal (or the IR) decides
    elif call.name == "trim":
        start = round(p["start_s"] * rate)
        end = frames if p["end_s"] is None else min(round(p["end_s"] * rate), frames)
        if start >= frames + signal.slack:
            raise BadInput(
                f"{where} trim.startS = {p['start_s']:g} s starts at or past the end of the "
                f"signal reaching it, {signal.seconds()}: the output would be empty"
            )
        if end <= start and not signal.slack:
            raise BadInput(
                f"{where} trim from {p['start_s']:g} s to {p['end_s']:g} s keeps no frame of "
                f"the signal reaching it, {signal.seconds()}: the output would be empty"
            )
        signal.frames = max(end - start, 1)
    elif call.name == "normalize" and p["mode"] == "LOUDNESS":
        gating_block = 4 * rate // 10  # BS.1770: loudness is measured over 400 ms blocks
        if frames + signal.slack < gating_block:
            raise BadInput(
                f"{where} normalize LOUDNESS needs at least 400 ms of signal (one BS.1770 gating "
                f"block) to measure; the signal reaching it lasts {signal.seconds()}"
            )


def parse_chain(
    effects: Any, sample_rate: int | None = None, duration_s: float | None = None
) -> tuple[EffectCall, ...]:
    """Validate a chain written as GraphQL's `effects` list.

    Frequencies are checked against the Nyquist rate of the signal reaching each effect, so
    an EQ after `resample` is checked against the new rate; time ranges (a denoise profile)
    against the input's `duration_s` when it is known. Given that duration and the rate,
    steps that would leave nothing are refused here too, before anything is queued: a trim
    starting past the end, a resample of too few frames, a LOUDNESS normalisation of less
    than 400 ms.

    >>> parse_chain([{"gain": {"db": -6}}])[0].params["db"]
    -6.0
    """
    if not isinstance(effects, Sequence) or isinstance(effects, str | bytes):
        raise BadInput("effects must be a list")
    if len(effects) > MAX_EFFECTS:
        raise BadInput(f"a chain holds at most {MAX_EFFECTS} effects, got {len(effects)}")
    calls: list[EffectCall] = []
    frames = None
    if duration_s is not None and sample_rate is not None:
        frames = round(duration_s * sample_rate)  # what the input's duration was made of
    signal = _Signal(sample_rate, frames)
    for i, step in enumerate(effects):
        if not isinstance(step, Mapping):
            raise BadInput(f"effects[{i}] must be an object with exactly one effect")
        present = [k for k, v in step.items() if v is not None]
        if len(present) != 1:
            raise BadInput(
                f"effects[{i}] must name exactly one effect, got {len(present)}: "
                + ", ".join(present)
            )
        name = present[0]
        spec = SPECS.get(name)
        if spec is None:
            raise UnknownEffect(name)
        params = spec.resolve(step[name], signal.rate)
        if duration_s is not None:
            for p in spec.params:
                p.within(name, params[p.name], duration_s)
        call = EffectCall(name, params)
        _follow(f"effects[{i}]", call, signal)
        calls.append(call)
    return tuple(calls)


def chain_json(calls: Sequence[EffectCall]) -> list[dict[str, Any]]:
    """The canonical form of a chain: GraphQL names, every default written out."""
    return [call.to_json() for call in calls]


def referenced_files(calls: Sequence[EffectCall]) -> list[str]:
    """Ids of uploaded files a chain uses (impulse responses), so the API can check them."""
    return [
        str(c.params["impulse"])
        for c in calls
        if c.name == "reverb" and c.params["impulse"] not in IR_PRESETS
    ]
