"""`python -m graph_api`: serve the API with settings from the environment."""

from __future__ import annotations

import uvicorn

from graph_api.app import create_app
from graph_api.serving import uvicorn_config
from jobs.logs import configure_logging
from jobs.settings import Settings


def main() -> None:
    configure_logging("INFO")
    settings = Settings()
    uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()


if __name__ == "__main__":
    main()
