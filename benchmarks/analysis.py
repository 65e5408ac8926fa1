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
from numba import njit  # noqa: E402

from benchmarks.dsp import SR, machine, median_time, music_like  # noqa: E402
from dsp import EQ, Chain, EqBand, LevelMeter, LoudnessMeter, TruePeakMeter, warmup  # noqa: E402
from dsp.loudness import k_weighting_sos  # noqa: E402
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


@njit(cache=True, fastmath=False)
def _k_weighted_energy(x: np.ndarray, sos: np.ndarray) -> float:
    """The least any BS.1770 meter must do: the K-weighting's two biquads per channel (two
    channels side by side, direct form I, as the meter runs them) and the sum of squares;
    no levels, no steps, no true peak. A floor, not a meter."""
    b0, b1, b2, a1, a2 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    c0, c1, c2, d1, d2 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    total = 0.0
    for first in range(0, x.shape[0], 2):
        a, b = x[first], x[min(first + 1, x.shape[0] - 1)]
        x1 = x2 = y1 = y2 = z1 = z2 = u1 = u2 = v1 = v2 = w1 = w2 = 0.0
        for i in range(x.shape[1]):
            xa, xb = np.float64(a[i]), np.float64(b[i])
            y = (((b0 * xa + b1 * x1) + b2 * x2) - a2 * y2) - a1 * y1
            z = (((c0 * y + c1 * y1) + c2 * y2) - d2 * z2) - d1 * z1
            v = (((b0 * xb + b1 * u1) + b2 * u2) - a2 * v2) - a1 * v1
            w = (((c0 * v + c1 * v1) + c2 * v2) - d2 * w2) - d1 * w1
            x2, x1, y2, y1, z2, z1 = x1, xa, y1, y, z1, z
            u2, u1, v2, v1, w2, w1 = u1, xb, v1, v, w1, w
            total += z * z + w * w
    return total


def k_floor(x: np.ndarray) -> float:
    sos = k_weighting_sos(SR)
    total = 0.0
    for start in range(0, x.shape[1], BLOCK):
        total += _k_weighted_energy(np.ascontiguousarray(x[:, start : start + BLOCK]), sos)
    return total


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
        print(
            f"{label}: K-weighting and its squares alone cost {rows[3][1] / eq:.0%} of the EQ: "
            "the floor of any BS.1770 meter in this style"
        )


def timings(label: str, x: np.ndarray, repeats: int) -> list[tuple[str, float]]:
    # Same figures (RMS and DC offset are sums in another order): two timings of one thing.
    assert np.allclose(fused(x), separate(x), rtol=1e-9, atol=0.0, equal_nan=True)
    return [
        (f"{label}: Chain([EQ]), 4 PEAK bands (reference)",
         median_time(lambda: Chain([EQ(BANDS)]).process_array(x, SR), repeats)),
        (f"{label}: analysis, one fused pass (FileMeter)", median_time(lambda: fused(x), repeats)),
        (f"{label}: analysis, separate meters (before)",
         median_time(lambda: separate(x), repeats)),
        (f"{label}: floor: K-weighting + squares only",
         median_time(lambda: k_floor(x), repeats)),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
