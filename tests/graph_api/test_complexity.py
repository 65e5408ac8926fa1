"""The fragment bomb: refused before validation, with or without a key, while `/healthz`
keeps answering; anonymous callers cannot reach the parser at all."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from api_client import auth, codes, make_key, serving
from graphql import get_introspection_query, parse

from graph_api.complexity import _Refused, budget_error, expanded_size
from graph_api.limits import MAX_EXPANDED_SELECTIONS, MAX_FRAGMENTS
from jobs.settings import Settings

# Generous: the point is "seconds, not minutes", on a loaded 2-core machine.
ANSWER_WITHIN_S = 20.0


def bomb(levels: int) -> str:
    """Each fragment spreads the previous one twice: 2^levels `__typename`s written out."""
    doubling = (
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 1 + levels)
    )
    return f"{{ ...F{levels} }} fragment F0 on Query {{ __typename }} " + " ".join(doubling)


def test_expanded_size_counts_spreads_without_expanding() -> None:
    assert expanded_size(parse("{ __typename }")) == 1
    assert expanded_size(parse("{ a: __typename ... on Query { __typename } }")) == 3
    # The spread itself, and what it brings: 1 + 1 per level, doubled per level.
    assert expanded_size(parse(bomb(2))) == 1 + (2 + 2 * (2 + 2 * 1))
    started = time.perf_counter()
    assert expanded_size(parse(bomb(MAX_FRAGMENTS - 1))) > 2 ** (MAX_FRAGMENTS - 1)
    assert time.perf_counter() - started < 1.0  # linear in the text, not in the expansion


def test_cycles_duplicates_and_fragment_count_are_refused() -> None:
    for document, words in (
        ("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", "A -> B -> A"),
        ("{ ...A } fragment A on Query { ... on Query { ...A } }", "spreads itself"),
        ("{ ...A } fragment A on Query { a } fragment A on Query { b }", "only one fragment"),
        # The parser accepts empty selection sets; Strawberry's depth limiter crashed on them.
        ("{ }", "at least one field"),
        ("{ effects { } }", "at least one field"),
        ("{ ...A } fragment A on Query { }", "at least one field"),
    ):
        with pytest.raises(_Refused) as refused:
            expanded_size(parse(document))
        assert words in refused.value.error.message
        assert refused.value.error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
    many = " ".join(f"fragment F{i} on Query {{ __typename }}" for i in range(MAX_FRAGMENTS + 1))
    error = budget_error(parse("{ ...F0 } " + many))
    assert error is not None and f"more than {MAX_FRAGMENTS} fragments" in error.message


def test_introspection_fits_the_budget() -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    assert budget_error(parse(query)) is None
    assert expanded_size(parse(query)) < MAX_EXPANDED_SELECTIONS / 2


async def _healthy_meanwhile(base: str, work: asyncio.Task[None]) -> int:
    """Probe /healthz until `work` is done; the number of answers (each within 5 s)."""
    answered = 0
    async with httpx.AsyncClient(base_url=f"http://{base}", timeout=5) as probe:
        while not work.done() or answered == 0:
            assert (await probe.get("/healthz")).status_code == 200
            answered += 1
            await asyncio.sleep(0.05)
    return answered


async def test_fragment_bomb_is_refused_quickly_and_healthz_answers(
    secure_settings: Settings,
) -> None:
    key = await make_key(secure_settings, "alice")
    async with serving(secure_settings) as base:
        results: list[tuple[str, int, list[str], float]] = []

        async def send_bombs() -> None:
            async with httpx.AsyncClient(base_url=f"http://{base}", timeout=60) as client:
                for levels in (22, 29):
                    for who, headers in (("anonymous", {}), ("alice", auth(key))):
                        query = bomb(levels)
                        for method in ("GET", "POST"):
                            started = time.monotonic()
                            if method == "GET":
                                response = await client.get(
                                    "/graphql", params={"query": query}, headers=headers
                                )
                            else:
                                response = await client.post(
                                    "/graphql", json={"query": query}, headers=headers
                                )
                            took = time.monotonic() - started
                            results.append(
                                (who, response.status_code, codes(response.json()), took)
                            )

        work = asyncio.create_task(send_bombs())
        assert await _healthy_meanwhile(base, work) >= 1
        await work
    assert len(results) == 8
    for who, status, found, took in results:
        assert status < 500
        expected = "UNAUTHENTICATED" if who == "anonymous" else "QUERY_TOO_COMPLEX"
        assert found == [expected], (who, found)
        assert took < ANSWER_WITHIN_S, (who, took)


async def test_anonymous_callers_cannot_reach_the_parser(secure_settings: Settings) -> None:
    key = await make_key(secure_settings, "alice")
    async with (
        serving(secure_settings) as base,
        httpx.AsyncClient(base_url=f"http://{base}", timeout=30) as client,
    ):
        for query in ("{ __typename }", "{ __schema { types { name } } }", "{ {{{ garbage"):
            for response in (
                await client.get("/graphql", params={"query": query}),
                await client.post("/graphql", json={"query": query}),
                await client.post("/graphql", json={"query": query}, headers=auth("ae_wrong")),
            ):
                assert codes(response.json()) == ["UNAUTHENTICATED"], (query, response.text)
        # With a key, the same documents are parsed and answered.
        ok = await client.post("/graphql", json={"query": "{ __typename }"}, headers=auth(key))
        assert ok.json() == {"data": {"__typename": "Query"}}
        schema = await client.get(
            "/graphql", params={"query": "{ __schema { queryType { name } } }"}, headers=auth(key)
        )
        assert schema.json()["data"]["__schema"]["queryType"]["name"] == "Query"
        # GraphiQL's page itself needs no key: it sends the key from its Headers pane.
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_dev_mode_answers_without_a_key(settings: Settings) -> None:
    async with serving(settings) as base, httpx.AsyncClient(base_url=f"http://{base}") as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"})
        assert response.json() == {"data": {"__typename": "Query"}}
        response = await client.post("/graphql", json={"query": bomb(22)})
        assert codes(response.json()) == ["QUERY_TOO_COMPLEX"]
        response = await client.post("/graphql", json={"query": "{ }"})
        assert codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"]
