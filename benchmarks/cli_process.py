"""`audio-engine process` as a whole process against the 12-line soundfile + scipy script a
user would write instead (benchmarks/sosfilt_script.py), on the same file and EQ.

Run: python benchmarks/cli_process.py [--seconds 300] [--repeats 3] [--smoke]
Each figure is the median wall time of whole processes (interpreter start, imports, reading,
the EQ, the analysis, writing), which is what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("sosfilt_script.py")
CHAIN = [
    {"eq": {"bands": [{"kind": "PEAK", "frequency": f, "q": 1.0, "gainDb": g}
                      for f, g in ((100.0, 3.0), (400.0, -4.0), (2000.0, 2.5), (8000.0, -3.0))]}}
]  # fmt: skip


def wall(argv: list[str], repeats: int) -> float:
    # Untimed: the page cache and numba's cache are warm for every timed run alike.
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="5 s input, 1 repeat (CI)")
    args = parser.parse_args()
    seconds, repeats = (5.0, 1) if args.smoke else (args.seconds, args.repeats)
    with tempfile.TemporaryDirectory(prefix="ae-cli-bench-") as tmp:
        src, chain = Path(tmp) / "in.wav", Path(tmp) / "chain.json"
        rng = np.random.default_rng(0)
        audio = 0.1 * rng.standard_normal((int(seconds * 48_000), 2)).astype(np.float32)
        sf.write(src, audio, 48_000, subtype="FLOAT")
        chain.write_text(json.dumps(CHAIN))
        ours = wall(
            [sys.executable, "-m", "cli.main", "process", str(src), "-o", str(Path(tmp) / "a.wav"),
             "--chain", str(chain), "--quiet"],
            repeats,
        )  # fmt: skip
        ref = wall([sys.executable, str(SCRIPT), str(src), str(Path(tmp) / "b.wav")], repeats)
    print(f"input: {seconds:g} s stereo 48 kHz float WAV, 4 PEAK bands, float WAV out")
    print(f"audio-engine process      {ours:7.3f} s")
    print(f"soundfile + scipy sosfilt {ref:7.3f} s")
    print(f"ours is {ref / ours:.2f}x faster (target 1.5x)")


if __name__ == "__main__":
    main()
