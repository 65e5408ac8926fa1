"""`python -m bridge`: run one bridge with settings from the environment."""

from __future__ import annotations

import asyncio

from bridge.service import Bridge
from jobs.logs import configure_logging
from jobs.settings import Settings


async def main() -> None:
    bridge = Bridge(Settings())
    await bridge.start()
    await bridge.run_until_stopped()


if __name__ == "__main__":
    configure_logging("INFO")
    asyncio.run(main())
