"""numba's start-up trim in `dsp.jit`: no scipy.linalg import, and BLAS still there."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import numpy as np
from numba import njit
import dsp.jit
dsp.jit.start()
skipped = "scipy.linalg" not in sys.modules
from numba.np import arraymath
dot = njit(lambda a, b: np.dot(a, b))
print(json.dumps({"skipped": skipped, "have_blas": arraymath._HAVE_BLAS,
                  "dot": float(dot(np.ones(3), np.arange(3.0)))}))
"""


def test_numba_starts_without_importing_scipy_linalg_and_blas_kernels_still_compile() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, check=True
    )
    seen = json.loads(result.stdout)
    assert seen["skipped"], "numba's BLAS probe imported scipy.linalg again"
    assert seen["have_blas"] is True  # the probe's answer, as when it runs
    assert seen["dot"] == 3.0  # a BLAS kernel compiles: the real probe runs when it is needed
