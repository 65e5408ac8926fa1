"""`audio-engine process` as a whole process against the 12-line soundfile + scipy script a
user would write instead (benchmarks/sosfilt_script.py), on the same file and EQ.

Run: python benchmarks/cli_process.py [--seconds 300] [--repeats 5] [--smoke]
Each figure is the median wall time of whole processes (interpreter start, imports, reading,
the EQ, writing), which is what a user waits for; the commands run in turn, so a change of
the machine's load hits each alike. numba's cache is warm (an untimed run first).

The floor rows bound what any change to our processing could reach: a bare copy of the file
(numpy + soundfile, blocks read and written, no EQ), and the fixed start-up cost of each
tool (the same commands on a 1 s file). Our best case is our start-up plus the bare copy.
"""

from __future__ import annotations

import argparse
import json
import os
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


def walls(commands: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """Median wall time of each command, run in turn (round robin), so that a change in the
    machine's load hits every command alike."""
    for argv in commands.values():
        # Untimed: the page cache and numba's cache are warm for every timed run alike.
        subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


COPY = """
import sys, numpy as np, soundfile as sf
with sf.SoundFile(sys.argv[1]) as r, sf.SoundFile(sys.argv[2], "w", r.samplerate, r.channels,
                                                 subtype="FLOAT") as w:
    buf = np.empty((65536, r.channels), np.float32)
    while len(block := r.read(out=buf)):
        w.write(block)
"""


def write_input(path: Path, seconds: float) -> None:
    rng = np.random.default_rng(0)
    audio = 0.1 * rng.standard_normal((int(seconds * 48_000), 2)).astype(np.float32)
    sf.write(path, audio, 48_000, subtype="FLOAT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="5 s input, 1 repeat (CI)")
    args = parser.parse_args()
    seconds, repeats = (5.0, 1) if args.smoke else (args.seconds, args.repeats)
    with tempfile.TemporaryDirectory(prefix="ae-cli-bench-") as tmp:
        src, short, chain = Path(tmp) / "in.wav", Path(tmp) / "short.wav", Path(tmp) / "c.json"
        write_input(src, seconds)
        write_input(short, 1.0)
        chain.write_text(json.dumps(CHAIN))

        def ours(path: Path) -> list[str]:
            return [sys.executable, "-m", "cli.main", "process", str(path), "-o",
                    str(Path(tmp) / "a.wav"), "--chain", str(chain), "--quiet"]  # fmt: skip

        def ref(path: Path) -> list[str]:
            return [sys.executable, str(SCRIPT), str(path), str(Path(tmp) / "b.wav")]

        rows = walls(
            {
                "audio-engine process": ours(src),
                "soundfile + scipy sosfilt": ref(src),
                "floor: bare copy, numpy + soundfile, no EQ": [
                    sys.executable, "-c", COPY, str(src), str(Path(tmp) / "c.wav")
                ],
                "start-up: audio-engine process, 1 s file": ours(short),
                "start-up: sosfilt script, 1 s file": ref(short),
                "start-up: python -c 'import numpy, soundfile'": [
                    sys.executable, "-c", "import numpy, soundfile"
                ],
            },
            repeats,
        )  # fmt: skip
    print(f"input: {seconds:g} s stereo 48 kHz float WAV, 4 PEAK bands, float WAV out; warm cache")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, t in rows.items():
        print(f"{name:<46} {t:7.3f} s")
    ours_t, ref_t = rows["audio-engine process"], rows["soundfile + scipy sosfilt"]
    best = (
        rows["start-up: audio-engine process, 1 s file"]
        - rows["start-up: python -c 'import numpy, soundfile'"]
        + rows["floor: bare copy, numpy + soundfile, no EQ"]
    )
    print(f"ours is {ref_t / ours_t:.2f}x faster (target 1.5x)")
    print(
        f"bound: our start-up + a bare copy = {best:.3f} s, at most {ref_t / best:.2f}x "
        "whatever the EQ and checks cost"
    )


if __name__ == "__main__":
    main()
