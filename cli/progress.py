"""A progress bar for a person at a terminal, and nothing at all for a pipe or a log file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Update(Protocol):
    def __call__(self, fraction: float, status: str = "") -> None: ...


def _nothing(fraction: float, status: str = "") -> None:
    pass


@contextmanager
def progress_bar(quiet: bool, desc: str = "") -> Iterator[Update]:
    """Yield `update(fraction, status)`; draws on stderr only when stderr is a terminal, so
    redirected output and CI logs get no stream of carriage-return frames."""
    if quiet or not sys.stderr.isatty():
        yield _nothing
        return
    from tqdm import tqdm

    with tqdm(
        total=100, desc=desc or None, unit="%", bar_format="{l_bar}{bar}| {elapsed}{postfix}"
    ) as bar:

        def update(fraction: float, status: str = "") -> None:
            bar.n = round(100 * fraction)
            if status:
                bar.set_postfix_str(status, refresh=False)
            bar.refresh()

        yield update
