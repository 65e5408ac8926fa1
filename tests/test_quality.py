"""The style the project holds itself to, checked where CI will see it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli.stack import ROOT

PACKAGES = ["jobs", "dsp", "actors", "bridge", "graph_api", "cli"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", *PACKAGES],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_dependencies_point_one_way() -> None:
    """graph_api and bridge -> jobs (bridge also drives actors.pool); actors -> dsp, jobs;
    dsp -> nothing of ours; jobs -> nothing of ours."""
    allowed = {
        "jobs": {"jobs"},
        "dsp": {"dsp"},
        "actors": {"actors", "dsp", "jobs"},
        "bridge": {"bridge", "jobs", "actors"},
        "graph_api": {"graph_api", "jobs"},
    }
    ours = set(PACKAGES)
    for package, ok in allowed.items():
        for path in (ROOT / package).rglob("*.py"):
            for line in path.read_text().splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] in ("import", "from"):
                    top = words[1].split(".")[0]
                    if top in ours:
                        assert top in ok, f"{path.relative_to(ROOT)} imports {top}: {line}"
