"""The `effects` query: the catalog, generated from `jobs.effects.SPECS`."""

from __future__ import annotations

from graph_api.types import EffectDescription, ParamDescription, ParamType
from jobs.effects import SPECS, EffectSpec, Param


def describe_param(param: Param) -> ParamDescription:
    return ParamDescription(
        name=param.field_name,
        description=param.description,
        type=ParamType(param.kind),
        unit=param.unit,
        min=param.low,
        max=param.high,
        min_exclusive=param.low_open,
        max_exclusive=param.high_open,
        below_nyquist=param.below_nyquist,
        allowed=param.allowed(None),
        default=None if param.required else param.default,
        required=param.required,
        nullable=param.nullable,
        choices=list(param.choices),
        type_name=param.type_name or None,
        fields=[describe_param(f) for f in param.fields],
    )


def describe_effect(spec: EffectSpec) -> EffectDescription:
    return EffectDescription(
        name=spec.name,
        description=spec.description,
        input_type=spec.type_name,
        changes_sample_rate=spec.changes_rate,
        params=[describe_param(p) for p in spec.params],
    )


CATALOG: tuple[EffectDescription, ...] = tuple(describe_effect(s) for s in SPECS.values())
