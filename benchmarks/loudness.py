"""Loudness: our full meter and our `loudness` effect vs pyloudnorm and ffmpeg's loudnorm.

Run: python benchmarks/loudness.py [--quick] [--smoke] [--repeats N]
Same 60 s stereo 48 kHz music-like signal for every row. The meter row is everything
`analysis` reports (integrated, LRA, momentary and short-term maxima, true peak at 4x) against
pyloudnorm's integrated loudness alone; the effect row is file to file: our two-pass render
to -16 LUFS / -1 dBTP plus the compliance measurement of the delivered file, against ffmpeg's
two-pass `loudnorm` (measure, then `linear=true` with the measured values, back to 48 kHz).
Compile time is excluded (one untimed call of every case); figures are medians.
"""

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyloudnorm  # noqa: E402
import soundfile as sf  # noqa: E402

from actors.impulses import uncached_impulses  # noqa: E402
from actors.runner import render_to_spec  # noqa: E402
from benchmarks.dsp import SR, machine, median_time, music_like  # noqa: E402
from dsp import warmup  # noqa: E402
from dsp.loudness import LoudnessMeter  # noqa: E402
from dsp.truepeak import TruePeakMeter  # noqa: E402
from jobs.effects import parse_chain  # noqa: E402

BLOCK = 65536


def full_meter(x: np.ndarray) -> tuple[float, ...]:
    loudness, peak = LoudnessMeter(SR, x.shape[0]), TruePeakMeter(SR, x.shape[0])
    for start in range(0, x.shape[1], BLOCK):
        block = x[:, start : start + BLOCK]
        loudness.add(block)
        peak.add(block)
    return (
        loudness.integrated(),
        loudness.loudness_range(),
        loudness.momentary_max(),
        loudness.short_term_max(),
        peak.true_peak_db(),
    )


def ffmpeg_loudnorm(ffmpeg: str, src: Path, dst: Path) -> None:
    spec = "loudnorm=I=-16:TP=-1:LRA=20"
    head = [ffmpeg, "-hide_banner", "-nostats", "-i", str(src)]
    first = subprocess.run(
        [*head, "-af", f"{spec}:print_format=json", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    m = json.loads(first[first.rindex("{") :])
    measured = (
        f"measured_I={m['input_i']}:measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}"
        f":measured_thresh={m['input_thresh']}:offset={m['target_offset']}:linear=true"
    )
    subprocess.run(
        [*head, "-af", f"{spec}:{measured}", "-ar", str(SR), "-c:a", "pcm_f32le", "-y", str(dst)],
        capture_output=True,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s signal, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="1 s signal, 1 repeat (CI)")
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else 10.0 if args.quick else 60.0
    repeats = args.repeats or (1 if args.smoke else 3 if args.quick else 5)
    ffmpeg = shutil.which("ffmpeg")

    print(f"machine: {machine()}")
    print(f"signal: {seconds:.0f} s stereo {SR} Hz float32, median of {repeats} runs, 1 thread")
    warmup()
    x = music_like(seconds)
    x64 = np.ascontiguousarray(x.T, dtype=np.float64)
    meter = pyloudnorm.Meter(SR)
    chain = parse_chain([{"loudness": {"standard": "PODCAST"}}])

    with tempfile.TemporaryDirectory() as tmp:
        src, ours_out, ffmpeg_out = Path(tmp, "in.wav"), Path(tmp, "ours.wav"), Path(tmp, "ff.wav")
        sf.write(src, x.T, SR, subtype="FLOAT")
        ours_meter = median_time(lambda: full_meter(x), repeats)
        reference_meter = median_time(lambda: meter.integrated_loudness(x64), repeats)
        ours_effect = median_time(
            lambda: render_to_spec(
                src, ours_out, chain, "WAV", "FLOAT", BLOCK, uncached_impulses({})
            ),
            repeats,
        )
        reference_effect = (
            median_time(lambda: ffmpeg_loudnorm(ffmpeg, src, ffmpeg_out), repeats)
            if ffmpeg
            else float("nan")
        )

    print(f"{'case':58} {'seconds':>8} {'x realtime':>11}")
    rows = [
        ("ours: full meter (I, LRA, M/S max, true peak 4x)", ours_meter),
        ("pyloudnorm: integrated loudness only", reference_meter),
        ("ours: loudness effect, two passes + compliance, file", ours_effect),
        ("ffmpeg: loudnorm two-pass (linear), file", reference_effect),
    ]
    for name, t in rows:
        print(f"{name:58} {t:8.3f} {seconds / t:11.1f}")
    print(f"meter vs pyloudnorm: {reference_meter / ours_meter:.2f}x (target >= 3)")
    print(
        f"effect vs ffmpeg loudnorm two-pass: {reference_effect / ours_effect:.2f}x (target >= 2)"
    )


if __name__ == "__main__":
    main()
