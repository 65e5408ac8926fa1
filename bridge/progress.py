"""Progress throttling: a job reports every block, subscribers want a few updates a second."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ProgressThrottle:
    """Forwards at most one progress value per `interval_s`; failures to forward are logged,
    never raised, because a lost progress event must not fail the job."""

    def __init__(self, interval_s: float, forward: Callable[[float], Awaitable[None]]) -> None:
        self.interval_s = interval_s
        self.forward = forward
        self._last = float("-inf")

    def mark(self) -> None:
        """Count another event of the job (its RUNNING event) as the last one forwarded."""
        self._last = asyncio.get_running_loop().time()

    async def update(self, progress: float) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last < self.interval_s:
            return
        self._last = now
        try:
            await self.forward(progress)
        except Exception as exc:
            log.warning("progress update dropped: %s", exc)
