"""How long `audio-engine serve` takes from launch to `/readyz` 200, with numba's on-disk
cache cold (a fresh machine: the kernels compile) and then warm (every later start).

Run: python -m benchmarks.start [--smoke]
A cold start compiles once per node: the first actor compiles while the others wait for its
cache (actors.worker._one_compiler). Target: warm start within 20 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from cli.stack import Stack
from jobs.settings import Settings


def time_to_ready(data: Path, cache: Path | None, pool_size: int) -> float:
    """Seconds from launch to /readyz 200; `cache` None keeps numba's usual cache folders."""
    # The service's default dashboard, not the tests' (cli.stack.Stack).
    env = {
        "AUDIO_ENGINE_POOL_SIZE": str(pool_size),
        "AUDIO_ENGINE_RAY_DASHBOARD": str(Settings().ray_dashboard).lower(),
    }
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    stack = Stack(data, prefix=f"bench-{uuid.uuid4().hex[:8]}", extra_env=env)
    start = time.perf_counter()
    service = stack.start("serve", "--dev")
    try:
        while time.perf_counter() - start < 600:
            try:
                if httpx.get(f"{stack.url}/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(service.log()[-3000:])
    finally:
        service.stop()
        stack.delete_broker_objects()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool-size", type=int, default=0, help="actors (0: one per CPU)")
    parser.add_argument("--smoke", action="store_true", help="warm start only, 1 actor (CI)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; serve with pool size {args.pool_size or 'auto'}")
    with tempfile.TemporaryDirectory(prefix="ae-bench-start-") as tmp:
        cache = Path(tmp) / "numba-cache"
        if args.smoke:
            warm = time_to_ready(Path(tmp) / "warm", None, 1)
            print(f"start to /readyz 200 (smoke, cache as found): {warm:.1f} s")
            return
        cold = time_to_ready(Path(tmp) / "cold", cache, args.pool_size)
        warm = time_to_ready(Path(tmp) / "warm", cache, args.pool_size)
    print(f"cold numba cache (compiles): {cold:6.1f} s to /readyz 200")
    print(f"warm numba cache:            {warm:6.1f} s to /readyz 200 (target 20 s)")


if __name__ == "__main__":
    main()
