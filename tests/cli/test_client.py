"""`audio-engine submit` refuses an output format it cannot get before uploading anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import exits
from cli.main import main
from cli.stack import free_port
from tests.conftest import sine, write_wav


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--format", "AIFC"), "use one of WAV, FLAC, OGG, MP3, AIFF, CAF, W64"),
        (("--format", "FLAC", "--subtype", "FLOAT"), "FLAC cannot hold FLOAT"),
    ],
)
def test_unsupported_format_is_refused_before_upload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], words: str
) -> None:
    src = write_wav(tmp_path / "in.wav", sine(440.0, 0.1))
    chain = tmp_path / "chain.json"
    chain.write_text('[{"gain": {"db": -1}}]')
    # Nothing listens on this port: any attempt to upload would fail differently.
    server = f"http://127.0.0.1:{free_port()}"
    code = main(["submit", str(src), "--chain", str(chain), "--server", server, "--quiet", *args])
    err = capsys.readouterr().err
    assert code == exits.BAD_INPUT
    assert words in err and "Traceback" not in err
    assert "Connect" not in err
