"""Probes, error masking, OpenAPI and GraphiQL."""

from __future__ import annotations

import logging

import httpx
import pytest
from graphql import GraphQLError

from graph_api.errors import INTERNAL_CODE, INTERNAL_MESSAGE, report
from jobs.errors import JobNotFound


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_everything_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok"},
    }


async def test_openapi_lists_the_file_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/files", "/files/{file_id}", "/healthz", "/readyz"} <= set(paths)


async def test_graphiql_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_engine_errors_keep_their_code() -> None:
    error = report(GraphQLError("x", original_error=JobNotFound("j1")))
    assert error.message == "no job with id 'j1'"
    assert error.extensions == {"code": "NOT_FOUND"}


def test_other_errors_are_masked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="graph_api.errors"):
        error = report(GraphQLError("secret path /etc/x", original_error=KeyError("secret")))
    assert error.message == INTERNAL_MESSAGE
    assert error.extensions == {"code": INTERNAL_CODE}
    assert "secret" not in str(error.formatted)
    assert caplog.records and caplog.records[0].exc_info is not None
