"""Peak memory of a streaming chain does not grow with the input duration.

Run: python benchmarks/memory.py [--quick]
Writes 1 min and 60 min (--quick: 1 and 10 min) stereo 48 kHz PCM_16 WAV files block by block
into a temp dir, then for each runs EQ + Reverb (2.5 s hall IR) + Limiter in a fresh subprocess,
streaming from soundfile.SoundFile.blocks into a soundfile.SoundFile writer, and prints the
child's peak RSS (resource.getrusage ru_maxrss).
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

SR = 48000
BLOCK = 65536


def write_input(path: Path, minutes: float) -> None:
    """Seeded noise-and-tone test signal, written one block at a time (never held whole)."""
    rng = np.random.default_rng(99)
    total = int(minutes * 60 * SR)
    with sf.SoundFile(path, "w", SR, 2, subtype="PCM_16") as out:
        for start in range(0, total, 1 << 20):
            n = min(1 << 20, total - start)
            t = (start + np.arange(n)) / SR
            tone = 0.3 * np.sin(2 * np.pi * 220.0 * t)
            block = tone[:, None] + 0.1 * rng.standard_normal((n, 2))
            out.write(block.astype(np.float32))


def child(path: str, out_path: str) -> None:
    from dsp import EQ, Chain, EqBand, Limiter, PartitionedIR, Reverb, preset, warmup

    warmup()
    ir = preset("hall", SR)
    chain = Chain(
        [
            EQ([EqBand("lowshelf", 120.0, 0.7071, 3.0), EqBand("peak", 2500.0, 1.0, -2.0)]),
            Reverb(ir, mix=0.25, partitions=PartitionedIR.build(ir, 16384)),
            Limiter(ceiling_db=-1.0, release_ms=50.0),
        ]
    )
    with sf.SoundFile(path) as src_info:
        frames, channels, rate = src_info.frames, src_info.channels, src_info.samplerate

    def source() -> Iterator[np.ndarray]:
        with sf.SoundFile(path) as f:
            for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True):
                yield np.ascontiguousarray(block.T)

    start = time.perf_counter()
    with sf.SoundFile(out_path, "w", rate, channels, subtype="PCM_16") as out:
        chain.run(source, lambda b: out.write(b.T), rate, channels, frames)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{peak_kib} {elapsed:.2f} {sf.info(out_path).frames}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 min vs 10 min")
    parser.add_argument("--smoke", action="store_true", help="0.05 min vs 0.1 min (CI)")
    parser.add_argument("--child", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    durations = (0.05, 0.1) if args.smoke else (1.0, 10.0) if args.quick else (1.0, 60.0)
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    results = []
    with tempfile.TemporaryDirectory(prefix="dsp-memory-") as tmp:
        for minutes in durations:
            src = Path(tmp) / f"in_{minutes:g}min.wav"
            dst = Path(tmp) / f"out_{minutes:g}min.wav"
            t0 = time.perf_counter()
            write_input(src, minutes)
            made = time.perf_counter() - t0
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(src), str(dst)],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            )
            peak_kib, seconds, out_frames = proc.stdout.split()[-3:]
            size_mb = src.stat().st_size / 1e6
            results.append((minutes, int(peak_kib) / 1024, float(seconds), int(out_frames)))
            print(
                f"{minutes:5g} min input ({size_mb:7.1f} MB PCM_16, written in {made:.1f} s): "
                f"peak RSS {int(peak_kib) / 1024:7.1f} MiB, chain {float(seconds):6.1f} s, "
                f"{out_frames} frames out"
            )
            src.unlink()
            dst.unlink()
    (m1, r1, _, _), (m2, r2, _, _) = results
    print(f"peak RSS ratio {m2:g} min / {m1:g} min: {r2 / r1:.3f} (duration ratio {m2 / m1:g})")


if __name__ == "__main__":
    main()
