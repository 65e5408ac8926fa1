"""ffmpeg's `ebur128` filter (libavfilter's own EBU R128 meter) as an independent reference."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FFMPEG = shutil.which("ffmpeg")
FILTER = ("-af", "ebur128=peak=true", "-f", "null", "-")


@dataclass(frozen=True)
class Ebur128:
    """ffmpeg's summary (printed to 0.1) and the highest per-100 ms momentary/short-term values."""

    integrated: float
    lra: float
    true_peak: float
    momentary_max: float
    short_term_max: float


def _number(text: str) -> float:
    return float("-inf") if text.strip() in ("-inf", "-nan", "nan") else float(text)


def measure(path: Path) -> Ebur128:
    assert FFMPEG, "ffmpeg is not installed (apt-get install ffmpeg; .ci/run does it)"
    run = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), *FILTER],
        capture_output=True,
        text=True,
        check=True,
    )
    log = run.stderr
    summary = log[log.rindex("Summary:") :]

    def field(name: str) -> float:
        found = re.search(rf"{name}:\s+(-?[\d.]+|-inf)", summary)
        assert found, f"no {name} in ffmpeg's summary:\n{summary}"
        return _number(found.group(1))

    frames = re.findall(
        r"M:\s*(-?[\d.]+|-inf)\s+S:\s*(-?[\d.]+|-inf)", log[: log.rindex("Summary:")]
    )
    momentary = [_number(m) for m, _ in frames]
    short_term = [_number(s) for _, s in frames]
    return Ebur128(
        integrated=field("I"),
        lra=field("LRA"),
        true_peak=field("Peak"),
        momentary_max=max(momentary, default=float("-inf")),
        short_term_max=max(short_term, default=float("-inf")),
    )
