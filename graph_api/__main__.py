"""`python -m graph_api`: serve the API with settings from the environment."""

from __future__ import annotations

import uvicorn

from graph_api.app import create_app
from graph_api.logging import configure_logging
from jobs.settings import Settings


def main() -> None:
    configure_logging("INFO")
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port)


if __name__ == "__main__":
    main()
