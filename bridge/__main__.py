"""`python -m bridge`: run one bridge with settings from the environment."""

from __future__ import annotations

import asyncio
import logging

from bridge.service import Bridge
from jobs.settings import Settings


async def main() -> None:
    bridge = Bridge(Settings())
    await bridge.start()
    await bridge.run_until_stopped()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
