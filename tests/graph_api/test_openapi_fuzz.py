"""Schemathesis against the REST routes of a real server: no 5xx, and every response
conforms to what `/openapi.json` declares (status codes, content types, bodies)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from api_client import free_port, make_key, publish_heartbeat
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from graph_api.app import create_app
from jobs.settings import Settings

PATHS = r"^/(files|files/\{file_id\}|healthz|readyz|metrics)$"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25


@pytest.fixture
def server(secure_settings: Settings) -> Iterator[tuple[str, str]]:
    """A uvicorn server in its own thread and loop, ready (one heartbeat that stays fresh for
    the whole test stands in for a bridge); yields its URL and an API key."""
    secure_settings = secure_settings.model_copy(update={"heartbeat_interval_s": 3600.0})
    key = asyncio.run(make_key(secure_settings, "fuzzer"))
    port = free_port()
    config = uvicorn.Config(
        create_app(secure_settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        threading.Event().wait(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            asyncio.run(publish_heartbeat(secure_settings))
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail(f"{url}/readyz never became ready")
        yield url, key
    finally:
        server.should_exit = True
        thread.join(15)


def test_rest_routes_conform_to_their_openapi_schema(server: tuple[str, str]) -> None:
    base, key = server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json").include(path_regex=PATHS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {
        "/files",
        "/files/{file_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    for operation in operations:
        for headers in ({"Authorization": f"Bearer {key}"}, {}):
            _fuzz(operation.as_strategy(), base, headers)


def _fuzz(strategy: object, base: str, headers: dict[str, str]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: Case) -> None:
        case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

    check()
