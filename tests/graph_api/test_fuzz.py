"""Seeded fuzzing of the public surface: hundreds of random and corrupted uploads, random
GraphQL documents and inputs, and Hypothesis-built documents full of fragments. The API never
answers 5xx, never raises, and every GraphQL refusal carries an `extensions.code` (every REST
refusal a `code`)."""

from __future__ import annotations

import io
import json
import random
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from api_client import PREFLIGHT, UPLOAD, as_key, gql, heartbeat, make_key, running, uploaded
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jobs.effects import SPECS
from jobs.settings import Settings

SEED = 20240611
UPLOADS = 300
QUERIES = 300


def _wav(rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    rate = rng.choice([8_000, 22_050, 44_100, 48_000])
    channels = rng.choice([1, 2, 3])
    audio = np.zeros((rng.randint(1, 2_000), channels), dtype=np.float32)
    fmt, subtype = rng.choice([("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")])
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def corrupt(rng: random.Random) -> tuple[bytes, str]:
    base = _wav(rng)
    kind = rng.randrange(9)
    name = rng.choice(["a.wav", "a.flac", "a.mp3", "a.ogg", "noext", "../x.wav", "a\x00.wav"])
    if kind == 0:
        return b"", name
    if kind == 1:  # truncated header
        return base[: rng.randrange(0, 44)], name
    if kind == 2:  # huge sizes declared in the RIFF header
        data = bytearray(base)
        if data[:4] == b"RIFF":
            data[4:8] = struct.pack("<I", 0xFFFFFFFF)
            at = data.find(b"data")
            if at >= 0:
                data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFF0)
        return bytes(data), name
    if kind == 3:  # random bytes
        return rng.randbytes(rng.randrange(1, 4096)), name
    if kind == 4:  # flipped bytes anywhere in the first 64
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(min(64, len(data)))] = rng.randrange(256)
        return bytes(data), name
    if kind == 5:  # a valid file under the wrong name
        return base, rng.choice(["a.mp3", "a.txt", "a.exe", ""])
    if kind == 6:  # header of one file, body of random noise
        return base[:44] + rng.randbytes(rng.randrange(0, 2048)), name
    if kind == 7:  # truncated mid-data
        return base[: rng.randrange(44, max(45, len(base)))], name
    return base, name


def check_graphql(body: dict[str, Any]) -> None:
    for error in body.get("errors") or []:
        assert error.get("extensions", {}).get("code"), body
        assert "Traceback" not in json.dumps(error)


async def test_random_and_corrupted_uploads(client: httpx.AsyncClient) -> None:
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    for i in range(UPLOADS):
        content, name = corrupt(rng)
        if i % 2:
            response = await client.post(
                "/graphql",
                headers=PREFLIGHT,
                data={
                    "operations": json.dumps({"query": UPLOAD, "variables": {"file": None}}),
                    "map": json.dumps({"0": ["variables.file"]}),
                },
                files={"0": (name, content, "application/octet-stream")},
            )
            assert response.status_code < 500, response.text
            body = response.json()
            check_graphql(body)
            code = "OK" if not body.get("errors") else body["errors"][0]["extensions"]["code"]
        else:
            response = await client.post("/files", files={"file": (name, content)})
            assert response.status_code < 500, response.text
            code = str(response.status_code)
            if response.status_code >= 400:
                assert "code" in response.json() or response.status_code == 422
        outcomes[code] = outcomes.get(code, 0) + 1
    # The corpus exercised both acceptance and refusal.
    assert outcomes.get("OK", 0) + outcomes.get("201", 0) > 10, outcomes
    assert outcomes.get("UNSUPPORTED_AUDIO", 0) + outcomes.get("415", 0) > 10, outcomes


def _value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return rng.uniform(-1e6, 1e6)
    if choice == 1:
        return rng.choice([0, -1, 1, 2**31, -(2**63), 10**30])
    if choice == 2:
        return rng.choice(["", "x", "PEAK", "LOWPASS", "room", "ä" * 50, "\x00", "1e3"])
    if choice == 3:
        return rng.choice([True, False, None])
    if choice == 4:
        return rng.choice([1e-300, 5e-324, 1.7976931348623157e308])
    if choice == 5:
        return rng.randrange(-100, 30_000)
    if choice == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {
        rng.choice(["kind", "frequency", "q", "gainDb", "db", "bogus"]): _value(rng, depth + 1)
        for _ in range(rng.randrange(0, 4))
    }


def _effect(rng: random.Random) -> Any:
    names = [*SPECS, "nope", "__typename", ""]
    if rng.random() < 0.1:
        return _value(rng)
    step: dict[str, Any] = {}
    for _ in range(rng.choice([1, 1, 1, 2, 0])):
        name = rng.choice(names)
        spec = SPECS.get(name)
        fields = [p.field_name for p in spec.params] if spec else ["x"]
        step[name] = {
            rng.choice([*fields, "bogus"]): _value(rng) for _ in range(rng.randrange(0, 4))
        }
    return step


def _document(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:  # deep nesting
        depth = rng.randrange(1, 40)
        return "{ effects { params { " + "fields { " * depth + "name" + " }" * depth + " } } }"
    if kind == 1:  # many aliases
        n = rng.randrange(1, 200)
        return "{ " + " ".join(f"a{i}: effects {{ name }}" for i in range(n)) + " }"
    if kind == 2:  # garbage tokens
        tokens = ["{", "}", "(", ")", "query", "mutation", "jobs", ":", "$x", "...", "@", '"s"']
        return " ".join(rng.choice(tokens) for _ in range(rng.randrange(1, 60)))
    if kind == 3:
        return rng.choice(
            [
                "{ jobs(first: -5) { edges { cursor } } }",
                '{ jobs(after: "%%%") { edges { cursor } } }',
                '{ job(id: "") { id } }',
                "{ file(id: 1) { id } }",
                "mutation { retryJob(id: 123) { id } }",
                'mutation { deleteFile(id: "../../etc") }',
                'mutation { deletePreset(name: "\\u0000") }',
                "subscription { myJobUpdates { jobId } }",
                "{ __schema { types { name } } }",
            ]
        )
    if kind == 4:
        return (
            "mutation($n: String!, $e: [EffectInput!]!) "
            "{ savePreset(name: $n, effects: $e) { name } }"
        )
    return "mutation($i: JobInput!) { submitJob(input: $i) { id status } }"


async def test_random_graphql_documents_and_inputs(
    api: tuple[FastAPI, httpx.AsyncClient], settings: Settings, wav_file: Any
) -> None:
    client = api[1]
    rng = random.Random(SEED + 1)
    file = await uploaded(client, wav_file)
    for _ in range(QUERIES):
        query = _document(rng)
        effects = [_effect(rng) for _ in range(rng.choice([0, 1, 2, 5, 40]))]
        variables: dict[str, Any] = {
            "i": rng.choice(
                [
                    {"fileId": file["id"], "effects": effects},
                    {"fileId": rng.choice([file["id"], "nope", ""]), "preset": _value(rng)},
                    {"fileId": file["id"], "effects": effects, "output": {"format": _value(rng)}},
                    _value(rng),
                ]
            ),
            "n": rng.choice(["p", "", "x" * 200, _value(rng)]),
            "e": effects,
        }
        response = await client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code < 500, (query, response.text)
        body = response.json()
        check_graphql(body)
    # Still healthy afterwards.
    await heartbeat(api[0], settings)
    assert (await client.get("/readyz")).status_code == 200
    assert "errors" not in await gql(client, "{ effects { name } }")


# Hypothesis: GraphQL documents built from nested fragments (spreading each other, cycles
# included), aliases, inline fragments and directives, sent with a key to the running API.
FIELDS = ["__typename", "viewer", "effects", "presets", "jobs", "owner", "name", "params", "x"]
DIRECTIVES = ["", "@include(if: true)", "@skip(if: false)", "@skip(if: true)", "@nope", "@include"]
ANSWER_WITHIN_S = 5.0  # generous: a refusal or an answer takes milliseconds


@st.composite
def _selections(draw: st.DrawFn, below: int, count: int, depth: int = 0) -> str:
    """Selections that may spread fragments F0..F(below-1); now and then any of the
    `count` fragments, so cycles happen too."""
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 3 if depth < 3 else 1))
        directive = draw(st.sampled_from(DIRECTIVES))
        if kind == 1 and count:
            wild = draw(st.integers(0, 19)) == 0
            limit = count if wild or not below else below
            name = f"F{draw(st.integers(0, limit - 1))}"
            parts.append(" ".join([f"...{name} {directive}"] * draw(st.integers(1, 3))))
        elif kind == 2:
            inner = draw(_selections(below, count, depth + 1))
            parts.append(f"{draw(st.sampled_from(FIELDS))} {directive} {{ {inner} }}")
        elif kind == 3:
            inner = draw(_selections(below, count, depth + 1))
            parts.append(f"... on Query {directive} {{ {inner} }}")
        else:
            alias = draw(st.sampled_from(["", "", "a:", "b:", "c1:"]))
            parts.append(f"{alias} {draw(st.sampled_from(FIELDS))} {directive}")
    return " ".join(parts)


@st.composite
def documents(draw: st.DrawFn) -> str:
    count = draw(st.integers(0, 30))
    fragments = [
        f"fragment F{i} on {draw(st.sampled_from(['Query', 'Query', 'Query', 'Viewer']))} "
        f"{{ {draw(_selections(i, count))} }}"
        for i in range(count)
    ]
    operation = draw(st.sampled_from(["", "query Q", "query Q($v: Boolean = true)"]))
    return f"{operation} {{ {draw(_selections(count, count))} }} " + " ".join(fragments)


@pytest.fixture
async def keyed(secure_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    key = await make_key(secure_settings, "fuzzer")
    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        yield client


@hypothesis_settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=documents(), via_get=st.booleans())
async def test_generated_fragment_documents_are_answered_quickly(
    keyed: httpx.AsyncClient, document: str, via_get: bool
) -> None:
    started = time.monotonic()
    if via_get:
        response = await keyed.get("/graphql", params={"query": document})
    else:
        response = await keyed.post("/graphql", json={"query": document})
    took = time.monotonic() - started
    assert response.status_code < 500, (document, response.text)
    assert took < ANSWER_WITHIN_S, (document, took)
    if response.headers.get("content-type", "").startswith("application/json"):
        check_graphql(response.json())
