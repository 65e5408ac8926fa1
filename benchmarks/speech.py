"""Denoise vs noisereduce (stationary): speed on 60 s mono 48 kHz, and the SI-SDR table.

Run: python benchmarks/speech.py [--quick | --smoke] [--repeats N]
Speech comes from Debian's espeak-ng (the tests' `tests/speech.py`), mixed with white noise,
pink noise and 50 Hz hum with harmonics at 0, 5 and 10 dB SNR, then the cleaner rows (20, 30,
40 and 60 dB SNR, and the clean speech itself), which ours must not make worse. SI-SDR is
against the clean speech; "ours" uses the defaults. Speed: median of N runs after an untimed
one (numba compilation and FFT plans excluded), our Chain streaming in 65536-frame blocks.
"""

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import noisereduce  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.dsp import machine, median_time  # noqa: E402
from dsp.chain import Chain  # noqa: E402
from dsp.denoise import Denoise  # noqa: E402
from tests.speech import CLEANER_SNRS, NOISES, SNRS, espeak, mix, noise, padded, si_sdr  # noqa: E402

RATE = 48_000


def ours(y: np.ndarray, rate: int) -> np.ndarray:
    out, _ = Chain([Denoise()]).process_array(y[np.newaxis].astype(np.float32), rate)
    return out[0]


def theirs(y: np.ndarray, rate: int) -> np.ndarray:
    return np.asarray(noisereduce.reduce_noise(y=y.astype(np.float32), sr=rate, stationary=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s signal, 1 repeat")
    parser.add_argument("--smoke", action="store_true", help="1 s signal, 0 and 60 dB rows (CI)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else 10.0 if args.quick else 60.0
    repeats = args.repeats or (1 if args.smoke or args.quick else 5)
    snrs = (SNRS[0], CLEANER_SNRS[-1]) if args.smoke else SNRS + CLEANER_SNRS
    print(f"machine: {machine()}")

    clean, native = espeak()
    print("\nSI-SDR (dB) against the clean speech, espeak-ng at", native, "Hz:")
    print(f"{'noise':<6} {'SNR':>4} {'input':>7} {'ours':>7} {'noisereduce':>12} {'margin':>7}")
    x = padded(clean, native)
    for kind in NOISES:
        for snr in snrs:
            y = 0.5 * mix(x, noise(kind, x.shape[0], native), snr)
            before, mine, anchor = (
                si_sdr(x, y),
                si_sdr(x, ours(y, native)),
                si_sdr(x, theirs(y, native)),
            )
            margin = mine - max(before, anchor)
            print(f"{kind:<6} {snr:4.0f} {before:7.2f} {mine:7.2f} {anchor:12.2f} {margin:+7.2f}")
    y = 0.5 * x  # no noise at all: exact in float32, so the input's SI-SDR is infinite
    mine, anchor = si_sdr(x, ours(y, native)), si_sdr(x, theirs(y, native))
    print(f"{'clean':<6} {'-':>4} {'inf':>7} {mine:7.2f} {anchor:12.2f} {'':>7}")

    speech, _ = espeak(rate=RATE)
    reps = int(np.ceil(seconds * RATE / speech.shape[0]))
    long = np.tile(speech, reps)[: int(seconds * RATE)]
    y = 0.5 * mix(long, noise("white", long.shape[0], RATE), 5.0)
    print(f"\nspeed: {seconds:.0f} s mono {RATE} Hz, white noise at 5 dB, median of {repeats}")
    t_ours = median_time(lambda: ours(y, RATE), repeats)
    t_theirs = median_time(lambda: theirs(y, RATE), repeats)
    print(f"{'ours: Chain([Denoise()])':<40} {t_ours:8.3f} s {seconds / t_ours:8.1f}x realtime")
    print(
        f"{'noisereduce stationary':<40} {t_theirs:8.3f} s {seconds / t_theirs:8.1f}x realtime"
        f"   ours is {t_theirs / t_ours:.2f}x faster"
    )


if __name__ == "__main__":
    main()
