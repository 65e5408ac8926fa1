"""Run every benchmark script on tiny inputs (`--smoke`), so none of them can rot unnoticed.

Run: python -m benchmarks.smoke (what `make bench-smoke` runs; a test runs it in CI).
It asserts only that each script exits 0 and prints its rows; the figures mean nothing at
this size. A new script in benchmarks/ takes part as soon as it accepts `--smoke`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Helpers a benchmark runs, not benchmarks of their own.
NOT_BENCHMARKS = {"__init__.py", "smoke.py", "sosfilt_script.py", "stack.py"}


def scripts() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name not in NOT_BENCHMARKS)


def run(script: Path) -> str:
    """The script's output; raises with its stderr when it fails or prints no row."""
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script.stem}", "--smoke"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} --smoke exited {result.returncode}:\n{result.stderr}")
    if len(result.stdout.strip().splitlines()) < 2:
        raise RuntimeError(f"{script.name} --smoke printed no rows:\n{result.stdout}")
    return result.stdout


def main() -> int:
    failed = 0
    for script in scripts():
        start = time.perf_counter()
        try:
            out = run(script)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed += 1
            print(f"FAIL {script.name}: {exc}")
            continue
        rows = len(out.strip().splitlines())
        print(f"ok   {script.name}: {rows} lines in {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
