"""Typed wrapper around ``numba.njit`` so kernels keep their signatures for mypy."""

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
