"""The commands a person types: results on stdout, errors on stderr, no log records unless
asked for, distinct exit codes (cli/exits.py), `--json` for scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import exits
from cli.stack import ROOT, Stack, free_port


def _run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    # A pipe, not a terminal: exactly the case where progress bars must not show.
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path / "data")


def test_keys_create_prints_the_key_and_nothing_else(stack: Stack) -> None:
    result = _run(stack, "keys", "create", "--name", "alice")
    assert result.returncode == exits.OK, result.stderr
    assert result.stderr == ""  # no Alembic or engine log records
    assert "ae_" in result.stdout
    assert not any(line.lstrip().startswith("{") for line in result.stdout.splitlines())


def test_keys_json_for_scripts(stack: Stack) -> None:
    created = _run(stack, "keys", "create", "--name", "bob", "--admin", "--json")
    assert created.returncode == exits.OK, created.stderr
    record = json.loads(created.stdout)
    assert record["key"].startswith("ae_") and record["admin"] is True
    listed = _run(stack, "keys", "list", "--json")
    assert listed.returncode == exits.OK, listed.stderr
    [key] = json.loads(listed.stdout)
    assert key["name"] == "bob" and key["revokedAt"] is None
    assert "key" not in key and not any("hash" in field.lower() for field in key)
    assert record["key"] not in listed.stdout


def test_keys_revoke_unknown_is_bad_input(stack: Stack) -> None:
    result = _run(stack, "keys", "revoke", "nobody")
    assert result.returncode == exits.BAD_INPUT
    assert "NOT_FOUND" in result.stderr and result.stdout == ""


def test_verbose_shows_log_records(stack: Stack) -> None:
    result = _run(stack, "-v", "keys", "list")
    assert result.returncode == exits.OK, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records and all("level" in r for r in records)


def test_process_on_a_pipe_prints_a_summary_and_no_progress_bar(
    stack: Stack, wav_file: Path, tmp_path: Path
) -> None:
    chain = tmp_path / "chain.json"
    chain.write_text('[{"gain": {"db": -3}}]')
    out = tmp_path / "out.wav"
    result = _run(stack, "process", str(wav_file), "-o", str(out), "--chain", str(chain))
    assert result.returncode == exits.OK, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(str(out)) and "\r" not in result.stdout
    assert out.is_file()


@pytest.mark.parametrize(
    ("chain", "expected"),
    [('[{"gain": {"decibels": -3}}]', "BAD_INPUT"), ("[{", "JSONDecodeError")],
)
def test_process_refuses_bad_input_with_exit_3(
    stack: Stack, wav_file: Path, tmp_path: Path, chain: str, expected: str
) -> None:
    path = tmp_path / "chain.json"
    path.write_text(chain)
    out = tmp_path / "out.wav"
    result = _run(stack, "process", str(wav_file), "-o", str(out), "--chain", str(path))
    assert result.returncode == exits.BAD_INPUT
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "" and not out.exists()


def test_process_missing_input_is_bad_input(stack: Stack, tmp_path: Path) -> None:
    chain = tmp_path / "chain.json"
    chain.write_text("[]")
    result = _run(
        stack, "process", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o.wav"),
        "--chain", str(chain),
    )  # fmt: skip
    assert result.returncode == exits.BAD_INPUT
    assert "nope.wav" in result.stderr and "Traceback" not in result.stderr


def test_submit_to_an_unreachable_server_exits_4(
    stack: Stack, wav_file: Path, tmp_path: Path
) -> None:
    chain = tmp_path / "chain.json"
    chain.write_text("[]")
    server = f"http://127.0.0.1:{free_port()}"
    result = _run(stack, "submit", str(wav_file), "--chain", str(chain), "--server", server)
    assert result.returncode == exits.UNREACHABLE
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr


def test_usage_error_exits_2(stack: Stack) -> None:
    assert _run(stack, "frobnicate").returncode == exits.USAGE
