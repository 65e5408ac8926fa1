"""Typed wrapper around ``numba.njit`` so kernels keep their signatures for mypy.

Importing this module also trims numba's first-kernel start-up (see `_skip_blas_probe`): a
short `audio-engine process` spends most of its time starting numba, not filtering.
"""

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def kernel(fn: F) -> F:
    """Compile ``fn`` with ``njit(cache=True)``.

    fastmath stays off: no reassociation or FMA contraction, so a kernel gives the same bits for
    the same input whatever the block size, and on every run.
    """
    return cast(F, njit(cache=True)(fn))


def start() -> None:
    """Do now what the first kernel call of a process does anyway: load numba's typing and
    lowering registries (its implementation modules, about 0.3 s). For a caller that wants this
    start-up done at a moment it chooses; calling it again costs nothing."""
    from numba.core.registry import cpu_target

    cpu_target.target_context.refresh()


def _skip_blas_probe() -> None:
    """Import numba's array implementations without their BLAS probe.

    The first kernel a process calls, even one loaded from the cache, makes numba import all its
    implementation modules; `numba.np.arraymath` then imports `scipy.linalg` only to learn
    whether BLAS is present (about 0.3 s of a 1.5 s start). scipy is one of our dependencies, so
    the answer is known: the probe is answered "present", as it would be, without the import.
    Only the import-time probe is skipped: a kernel that uses BLAS (`np.dot`, `np.linalg`) still
    imports scipy's BLAS when it is compiled. If numba's layout changes, the probe simply runs.
    """
    try:
        from numba.np import linalg
    except ImportError:  # pragma: no cover - another numba layout: keep its probe
        return
    probe = getattr(linalg, "ensure_blas", None)
    if probe is None:  # pragma: no cover
        return
    linalg.ensure_blas = lambda: None
    try:
        import numba.np.arraymath  # noqa: F401  (imported now, with the probe answered)
    finally:
        linalg.ensure_blas = probe


_skip_blas_probe()
