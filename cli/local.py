"""`audio-engine process`: the service's chain on a local file, without broker or Ray.

It calls the same `actors.runner.render_to_spec` the Ray actors call, so for the same input and
chain the output is bit-identical to the service's. A reverb `impulse` may name a preset or a
local audio file path.

The input is decoded once: its header is checked up front (`jobs.probe.probe` and the limits),
and the render checks every block it reads and the count it decodes (a MP3, whose header only
estimates its length, is decoded once more first, as uploads are). The analyses a job records
are not measured unless the chain delivers to a loudness standard: this command prints none.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actors.impulses import uncached_impulses
from actors.runner import measure_file, render_to_spec
from cli import exits
from cli.progress import progress_bar
from jobs.effects import IR_PRESETS, parse_chain, referenced_files
from jobs.errors import BadInput, EngineError
from jobs.formats import format_for_extension, output_format
from jobs.probe import ESTIMATED_LENGTH, check_limits, inspect, probe
from jobs.settings import Settings


def load_chain(path: Path) -> Any:
    """A chain file holds GraphQL's `effects` list, or an object with an `effects` key."""
    data = json.loads(path.read_text())
    return data["effects"] if isinstance(data, dict) and "effects" in data else data


def write_edits(path: Path, edits: Sequence[tuple[float, float]]) -> None:
    """The edit list as `Job.edits` gives it: `[{"startS": 1.2, "endS": 3.4}, ...]`."""
    path.write_text(json.dumps([{"startS": start, "endS": end} for start, end in edits]) + "\n")


def process(
    input_path: Path,
    output_path: Path,
    chain_path: Path,
    fmt: str | None,
    subtype: str | None,
    settings: Settings,
    quiet: bool = False,
    edits_path: Path | None = None,
) -> int:
    tmp = output_path.with_name(f".{output_path.name}.part")
    try:
        info = probe(input_path)
        check_limits(info, settings)
        if info.format in ESTIMATED_LENGTH:
            info = inspect(input_path, settings)
        calls = parse_chain(
            load_chain(chain_path), info.sample_rate, info.frames / info.sample_rate
        )
        out = output_format(fmt or format_for_extension(output_path.suffix), subtype)
        uploads = {ir: Path(ir) for ir in referenced_files(calls) if ir not in IR_PRESETS}
        for ir, path in uploads.items():
            if not path.is_file():
                raise BadInput(
                    f"reverb.impulse {ir!r} is neither a preset ({', '.join(IR_PRESETS)}) "
                    "nor an audio file"
                )
        with progress_bar(quiet) as progress:
            result = render_to_spec(
                input_path,
                tmp,
                calls,
                out.format,
                out.subtype,
                settings.block_frames,
                uncached_impulses(uploads),
                progress=progress,
                max_sample_abs=settings.max_sample_abs,
                meter=False,
            )
        os.replace(tmp, output_path)
        if edits_path is not None:
            write_edits(edits_path, result.edits)
    except (EngineError, OSError, json.JSONDecodeError) as exc:
        code = getattr(exc, "code", type(exc).__name__)
        print(f"audio-engine process: {code}: {exc}", file=sys.stderr)
        return exits.for_error(exc)
    finally:
        # A failed or interrupted run leaves nothing beside the output.
        tmp.unlink(missing_ok=True)
    if not quiet:
        seconds = result.frames / result.sample_rate
        print(
            f"{output_path}: {out.format}/{out.subtype} {result.sample_rate} Hz, "
            f"{result.channels} ch, {seconds:.2f} s"
        )
        if result.compliance is not None:
            c = result.compliance
            verdict = "passed" if c.passed else f"FAILED: {c.reason}"
            print(
                f"loudness {_level(c.integrated_lufs)} LUFS (target {c.target:g}), true peak "
                f"{_level(c.true_peak_db)} dBTP (limit {c.true_peak_limit:g}), "
                f"{c.renders} render(s): {verdict}"
            )
    return 0


def _level(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.2f}"


_ANALYSIS_LINES = (
    ("integrated loudness", "loudness_lufs", "LUFS"),
    ("loudness range", "loudness_range_lu", "LU"),
    ("short-term max", "short_term_max_lufs", "LUFS"),
    ("momentary max", "momentary_max_lufs", "LUFS"),
    ("true peak", "true_peak_db", "dBTP"),
    ("sample peak", "peak_db", "dBFS"),
    ("RMS", "rms_db", "dBFS"),
)


def analyze(input_path: Path, as_json: bool, settings: Settings) -> int:
    """Print the full measurement of a file (the `analysis` a job records), or JSON."""
    try:
        analysis = measure_file(input_path, settings.block_frames)
    except (EngineError, OSError) as exc:
        code = getattr(exc, "code", type(exc).__name__)
        print(f"audio-engine analyze: {code}: {exc}", file=sys.stderr)
        return exits.for_error(exc)
    if as_json:
        print(json.dumps(analysis.model_dump(mode="json")))
        return 0
    print(f"{input_path}: {analysis.duration_seconds:.3f} s")
    for label, name, unit in _ANALYSIS_LINES:
        print(f"  {label + ':':22}{_level(getattr(analysis, name)):>8} {unit}")
    print(f"  {'clipping:':22}{'yes' if analysis.clipping else 'no':>8}")
    if analysis.dc_offset is not None:
        print(f"  {'DC offset:':22}{100 * analysis.dc_offset:>8.3f} %")
    return 0
