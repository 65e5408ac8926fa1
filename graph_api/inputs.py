"""GraphQL input types, generated from `jobs.effects.SPECS` (never written by hand).

Each effect gets an input type (`GainInput { db: Float! }`), enums come from `Param.choices`
and `Param.type_name`, list parameters get an item type (`EqBandInput`), and `EffectInput` is
a oneOf with one nullable field per effect. Required parameters are non-null without default,
optional ones show their default in the schema, nullable ones are nullable.
`chain_of` turns parsed inputs back into the plain chain `jobs.effects.parse_chain` reads.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from graph_api.types import AudioFormat, JobStatus, SampleFormat
from jobs.effects import SPECS, Param

_SCALARS: dict[str, type] = {"float": float, "int": int, "bool": bool, "string": str}
_enums: dict[str, type[Enum]] = {}
_records: dict[str, type] = {}


def _enum(param: Param) -> type[Enum]:
    name = param.type_name or param.field_name[0].upper() + param.field_name[1:]
    if name not in _enums:
        members = Enum(name, {c: c for c in param.choices})  # type: ignore[misc]
        _enums[name] = strawberry.enum(members, description=param.description)
    return _enums[name]


def _python_type(param: Param) -> Any:
    if param.kind == "enum":
        kind: Any = _enum(param)
    elif param.kind == "records":
        kind = list[_record(param)]  # type: ignore[misc]
    elif param.kind == "record":
        kind = _record(param)
    else:
        kind = _SCALARS[param.kind]
    return kind | None if param.nullable else kind


def _describe(param: Param) -> str:
    unit = f" Unit: {param.unit}." if param.unit else ""
    allowed = param.allowed(None)
    if allowed == "any":
        return f"{param.description}{unit}"
    what = "Items" if param.kind == "records" else "Allowed"
    return f"{param.description}{unit} {what}: {allowed}."


def _input_type(name: str, description: str, params: tuple[Param, ...]) -> type:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    for p in params:
        annotations[p.name] = _python_type(p)
        options: dict[str, Any] = {"name": p.field_name, "description": _describe(p)}
        if not p.required:
            default = p.default
            if p.kind == "enum" and default is not None:
                default = _enum(p)[default]
            options["default"] = default
        namespace[p.name] = strawberry.field(**options)
    return strawberry.input(type(name, (), namespace), name=name, description=description)


def _record(param: Param) -> type:
    name = param.type_name or f"{param.field_name.capitalize()}ItemInput"
    if name not in _records:
        what = "One item of" if param.kind == "records" else "The value of"
        _records[name] = _input_type(name, f"{what} {param.field_name}.", param.fields)
    return _records[name]


EFFECT_INPUTS: dict[str, type] = {
    spec.name: _input_type(spec.type_name, spec.description, spec.params) for spec in SPECS.values()
}


def _effect_input() -> type:
    annotations = {name: cls | None for name, cls in EFFECT_INPUTS.items()}
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    namespace.update({name: strawberry.UNSET for name in EFFECT_INPUTS})
    return strawberry.input(
        type("EffectInput", (), namespace),
        name="EffectInput",
        description="One step of a chain: set exactly one field (the effect to apply).",
        one_of=True,
    )


EffectInput: Any = _effect_input()


@strawberry.input(description="How the output is written.")
class OutputInput:
    format: AudioFormat = AudioFormat.WAV
    subtype: SampleFormat | None = strawberry.field(
        default=None,
        description="Default: FLOAT for WAV, CAF and W64; PCM_24 for FLAC (which has no float "
        "samples) and AIFF. OGG and MP3 ignore it.",
    )
    url: str | None = strawberry.field(
        default=None,
        description="After the job SUCCEEDED, PUT the output here (e.g. a presigned S3 URL); "
        "failed PUTs are retried, then `Job.export` says why. The output stays downloadable. "
        "The job's webhook waits until the PUT ended and carries `export` in its data.",
    )


@strawberry.input(
    description="An effect chain to run over an uploaded file: give exactly one of `effects` "
    "and `preset`."
)
class JobInput:
    file_id: strawberry.ID
    effects: list[EffectInput] | None = strawberry.field(
        default=None, description="The chain, first effect first."
    )
    preset: str | None = strawberry.field(
        default=None, description="The name of one of your saved presets."
    )
    output: OutputInput | None = None
    webhook_url: str | None = strawberry.field(
        default=None,
        description="POSTed a signed Standard Webhooks message when the job ends "
        "(job.succeeded, job.failed, job.cancelled); needs rotateWebhookSecret first. "
        'Null: your key\'s default (setDefaultWebhookUrl), if any; "": no webhook.',
    )


@strawberry.input(
    description="One effect chain over several uploaded files, one job each: give exactly one "
    "of `effects` and `preset`."
)
class BatchInput:
    file_ids: list[strawberry.ID] = strawberry.field(
        description="The input files, one job each (at most `max_batch_files`, no repeats)."
    )
    effects: list[EffectInput] | None = strawberry.field(
        default=None, description="The chain, first effect first."
    )
    preset: str | None = strawberry.field(
        default=None, description="The name of one of your saved presets."
    )
    output: OutputInput | None = None
    album: bool = strawberry.field(
        default=False,
        description="Album mode: the chain's last `loudness` or `normalize LOUDNESS` step "
        "applies one gain to every file, from the loudness of all of them together "
        "(ReplayGain album mode): the files keep their relative levels and the album as a "
        "whole meets the target.",
    )
    webhook_url: str | None = strawberry.field(
        default=None,
        description="Receives a POST when the batch ends (`batch.completed`). Null: your "
        'key\'s default (setDefaultWebhookUrl), if any; "": no webhook.',
    )


@strawberry.input(description="Which jobs to list.")
class JobFilter:
    status: JobStatus | None = None


def _plain(value: Any, param: Param) -> Any:
    if param.kind == "records" and isinstance(value, list):
        return [_fields(item, param.fields) for item in value]
    if param.kind == "record" and value is not None:
        return _fields(value, param.fields)
    return getattr(value, "value", value)


def _fields(obj: Any, params: tuple[Param, ...]) -> dict[str, Any]:
    return {
        p.field_name: _plain(getattr(obj, p.name), p)
        for p in params
        if getattr(obj, p.name, strawberry.UNSET) is not strawberry.UNSET
    }


def chain_of(effects: list[Any]) -> list[dict[str, Any]]:
    """The chain as `parse_chain` reads it: camelCase keys, enum values, nulls for the
    effects a step does not select (so a step naming two effects is still refused)."""
    chain: list[dict[str, Any]] = []
    for step in effects:
        plain: dict[str, Any] = {}
        for name, spec in SPECS.items():
            value = getattr(step, name, strawberry.UNSET)
            if value is not strawberry.UNSET and value is not None:
                plain[name] = _fields(value, spec.params)
        chain.append(plain)
    return chain
