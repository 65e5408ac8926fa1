"""`audio-engine submit`: the whole remote flow from a terminal.

Uploads the file (GraphQL multipart request), submits the chain, follows `jobUpdates` over
graphql-transport-ws with a progress bar, and downloads the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from cli import exits
from cli.progress import progress_bar
from jobs.errors import EngineError
from jobs.formats import output_format

UPLOAD = """mutation ($file: Upload!) { uploadAudio(file: $file) { id filename sampleRate } }"""
SUBMIT = """mutation ($input: JobInput!) { submitJob(input: $input) { id status } }"""
WATCH = """subscription ($id: ID!) {
  jobUpdates(jobId: $id) {
    status progress message
    job { error { code message } output { id filename downloadUrl } edits { startS endS } }
  }
}"""


class ClientError(Exception):
    """The server refused a request; `code` is its GraphQL error code."""

    def __init__(self, message: str, code: str = "ERROR") -> None:
        super().__init__(message)
        self.code = code

    @property
    def exit_code(self) -> int:
        return exits.BAD_INPUT if self.code in exits.BAD_INPUT_CODES else exits.ERROR


class JobFailed(Exception):
    """The job ran and ended FAILED or CANCELLED."""


def _check(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("errors"):
        err = payload["errors"][0]
        code = (err.get("extensions") or {}).get("code", "ERROR")
        raise ClientError(f"{code}: {err.get('message')}", code)
    data: dict[str, Any] = payload["data"]
    return data


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def upload(http: httpx.AsyncClient, path: Path) -> dict[str, Any]:
    operations = json.dumps({"query": UPLOAD, "variables": {"file": None}})
    with path.open("rb") as fh:
        response = await http.post(
            "/graphql",
            data={"operations": operations, "map": json.dumps({"0": ["variables.file"]})},
            files={"0": (path.name, fh, "application/octet-stream")},
        )
    return dict(_check(response.json())["uploadAudio"])


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    return _check(response.json())


async def job_events(
    server: str, job_id: str, api_key: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Yield each `jobUpdates` event of a job until the server completes the subscription."""
    url = server.replace("http", "ws", 1).rstrip("/") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init: dict[str, Any] = {"type": "connection_init"}
        if api_key:
            init["payload"] = {"Authorization": f"Bearer {api_key}"}
        await ws.send(json.dumps(init))
        ack = json.loads(await ws.recv())
        if ack.get("type") != "connection_ack":
            raise ClientError(f"server refused the subscription: {ack}")
        subscribe = {"query": WATCH, "variables": {"id": job_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        async for raw in ws:
            msg = json.loads(raw)
            if msg["type"] == "next":
                yield _check(msg["payload"])["jobUpdates"]
            elif msg["type"] == "error":
                raise ClientError(str(msg.get("payload")))
            elif msg["type"] == "complete":
                return


async def watch(server: str, job_id: str, api_key: str | None, quiet: bool) -> dict[str, Any]:
    """Follow a job with a progress bar until it ends; return its last event."""
    last: dict[str, Any] = {}
    with progress_bar(quiet, desc=job_id[:8]) as update:
        async for last in job_events(server, job_id, api_key):
            update(float(last["progress"]), last["status"])
    return last


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Upload, submit, watch, download; returns what `--json` prints."""
    output_format(args.format, args.subtype)  # refused here, before anything is uploaded
    chain = json.loads(args.chain.read_text())
    effects = chain["effects"] if isinstance(chain, dict) else chain
    async with httpx.AsyncClient(
        base_url=args.server, headers=_headers(args.api_key), timeout=600
    ) as http:
        file = await upload(http, args.input)
        job = (
            await graphql(
                http,
                SUBMIT,
                {
                    "input": {
                        "fileId": file["id"],
                        "effects": effects,
                        "output": {
                            "format": args.format.upper(),
                            "subtype": args.subtype.upper() if args.subtype else None,
                        },
                    }
                },
            )
        )["submitJob"]
        last = await watch(args.server, job["id"], args.api_key, args.quiet)
        if last.get("status") != "SUCCEEDED":
            error = (last.get("job") or {}).get("error") or {}
            raise JobFailed(
                f"job {job['id']} {last.get('status')}: {error.get('code')} {error.get('message')}"
            )
        if args.edits is not None:
            args.edits.write_text(json.dumps(last["job"]["edits"]) + "\n")
        output = last["job"]["output"]
        target = args.output or args.input.with_name(output["filename"])
        async with http.stream("GET", f"/files/{output['id']}") as response:
            response.raise_for_status()
            with target.open("wb") as fh:
                async for chunk in response.aiter_bytes():
                    fh.write(chunk)
    return {"job": job["id"], "status": "SUCCEEDED", "fileId": file["id"], "output": str(target)}


def submit(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(run(args))
    except JobFailed as exc:
        print(f"audio-engine submit: {exc}", file=sys.stderr)
        return exits.JOB_FAILED
    except ClientError as exc:
        print(f"audio-engine submit: {exc}", file=sys.stderr)
        return exc.exit_code
    except (httpx.TransportError, websockets.InvalidURI, ConnectionError) as exc:
        print(f"audio-engine submit: cannot reach {args.server}: {exc}", file=sys.stderr)
        return exits.UNREACHABLE
    except (
        EngineError,
        httpx.HTTPError,
        websockets.WebSocketException,
        OSError,
        ValueError,
    ) as exc:
        print(f"audio-engine submit: {exc}", file=sys.stderr)
        return exits.for_error(exc)
    if args.json:
        print(json.dumps(result))
    elif not args.quiet:
        print(f"job {result['job']} SUCCEEDED -> {result['output']}")
    return exits.OK
