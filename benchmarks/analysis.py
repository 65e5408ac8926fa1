"""A file's analysis (what a job records for its input and its output) against a 4-band EQ.

Run: python benchmarks/analysis.py [--quick] [--smoke] [--repeats N]
Every row meters 60 s of stereo 48 kHz in 65536-frame blocks, as a job does: sample peak,
RMS, DC offset, clipping, integrated loudness, LRA, momentary and short-term maxima, true
peak at 4x. `FileMeter` is the one fused pass the runner uses; "separate meters" is what it
replaced (LevelMeter, LoudnessMeter, TruePeakMeter, one pass each). The reference is
Chain([EQ]) with 4 PEAK bands on the same audio (target: the analysis costs at most 25% of
it). Two signals: music-like (benchmarks.dsp) and the CLI benchmark's white noise, where
nearly every frame may hold the true peak, so the oversampling cannot be skipped.
Compile time is excluded (dsp.warmup() and one untimed call of every case); medians.
"""

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.dsp import SR, machine, median_time, music_like  # noqa: E402
from dsp import EQ, Chain, EqBand, LevelMeter, LoudnessMeter, TruePeakMeter, warmup  # noqa: E402
from dsp.meters import FileMeter  # noqa: E402

BLOCK = 65536
BANDS = [
    EqBand("peak", f, 1.0, g)
    for f, g in ((100.0, 3.0), (400.0, -4.0), (2000.0, 2.5), (8000.0, -3.0))
]


def fused(x: np.ndarray) -> tuple[float, ...]:
    meter = FileMeter(SR, x.shape[0])
    for start in range(0, x.shape[1], BLOCK):
        meter.add(x[:, start : start + BLOCK])
    return (
        meter.peak_db(), meter.rms_db(), meter.dc_offset(), meter.integrated(),
        meter.loudness_range(), meter.momentary_max(), meter.short_term_max(),
        meter.true_peak_db(),
    )  # fmt: skip


def separate(x: np.ndarray) -> tuple[float, ...]:
    levels = LevelMeter()
    loudness, peak = LoudnessMeter(SR, x.shape[0]), TruePeakMeter(SR, x.shape[0])
    for start in range(0, x.shape[1], BLOCK):
        block = x[:, start : start + BLOCK]
        levels.add(block)
        loudness.add(block)
        peak.add(block)
    return (
        levels.peak_db(), levels.rms_db(), levels.dc_offset(), loudness.integrated(),
        loudness.loudness_range(), loudness.momentary_max(), loudness.short_term_max(),
        peak.true_peak_db(),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s signal, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="1 s signal, 1 repeat (CI)")
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else 10.0 if args.quick else 60.0
    repeats = args.repeats or (1 if args.smoke else 3 if args.quick else 5)

    print(f"machine: {machine()}, load {os.getloadavg()[0]:.1f}")
    print(f"signal: {seconds:.0f} s stereo {SR} Hz float32, median of {repeats} runs, 1 thread")
    warmup()
    noise = (0.1 * np.random.default_rng(0).standard_normal((2, int(seconds * SR)))).astype(
        np.float32
    )
    print(f"{'case':<52} {'median s':>9} {'x realtime':>11} {'of EQ':>7}")
    for label, x in (("music-like", music_like(seconds)), ("white noise", noise)):
        rows = timings(label, x, repeats)
        eq = rows[0][1]
        for name, t in rows:
            print(f"{name:<52} {t:9.4f} {seconds / t:11.1f} {t / eq:6.0%}")
        print(f"{label}: the fused analysis costs {rows[1][1] / eq:.0%} of the EQ (target <= 25%)")


def timings(label: str, x: np.ndarray, repeats: int) -> list[tuple[str, float]]:
    # Same figures (RMS and DC offset are sums in another order): two timings of one thing.
    assert np.allclose(fused(x), separate(x), rtol=1e-9, atol=0.0, equal_nan=True)
    return [
        (f"{label}: Chain([EQ]), 4 PEAK bands (reference)",
         median_time(lambda: Chain([EQ(BANDS)]).process_array(x, SR), repeats)),
        (f"{label}: analysis, one fused pass (FileMeter)", median_time(lambda: fused(x), repeats)),
        (f"{label}: analysis, separate meters (before)",
         median_time(lambda: separate(x), repeats)),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
