"""Waveform and spectrogram PNGs: rendered once, then served from the storage cache."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from api_client import running, uploaded

from graph_api.images import HEIGHT_PX, WIDTH_PX, ImageKind, cache_key, peaks, spectrogram
from graph_api.runtime import Runtime
from jobs.decoding import ContinuousReader
from jobs.settings import Settings
from tests.loudness_signals import music_like

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KINDS = [k.value for k in ImageKind]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("kind", KINDS)
async def test_image_is_a_png_of_the_declared_size_and_cached(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path, kind: str
) -> None:
    file = await uploaded(client, wav_file)
    first = await client.get(f"/files/{file['id']}/{kind}.png")
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/png"
    assert "max-age" in first.headers["cache-control"]
    assert png_size(first.content) == (WIDTH_PX, HEIGHT_PX)

    cached = runtime.storage.path(cache_key(file["id"], ImageKind(kind)))
    assert cached.read_bytes() == first.content
    mtime = cached.stat().st_mtime_ns
    second = await client.get(f"/files/{file['id']}/{kind}.png")
    assert second.status_code == 200
    assert second.content == first.content
    assert cached.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("kind", KINDS)
async def test_unknown_file_is_404(client: httpx.AsyncClient, runtime: Runtime, kind: str) -> None:
    response = await client.get(f"/files/{'0' * 32}/{kind}.png")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert not runtime.storage.path("img").exists()


async def test_other_owners_file_is_404(secure_settings: Settings, wav_file: Path) -> None:
    from graph_api.auth import create_key

    async with running(secure_settings) as (app, client):
        runtime: Runtime = app.state.runtime
        alice, _ = await create_key(runtime.db, name="alice", admin=False)
        bob, _ = await create_key(runtime.db, name="bob", admin=False)
        client.headers["Authorization"] = f"Bearer {alice}"
        file = await uploaded(client, wav_file)
        assert (await client.get(f"/files/{file['id']}/waveform.png")).status_code == 200
        client.headers["Authorization"] = f"Bearer {bob}"
        response = await client.get(f"/files/{file['id']}/waveform.png")
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
        del client.headers["Authorization"]
        assert (await client.get(f"/files/{file['id']}/waveform.png")).status_code == 401


def test_peaks_are_the_min_and_max_of_each_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    audio = rng.uniform(-1, 1, (2, 10_007)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, audio.T, 8000, subtype="FLOAT")
    with sf.SoundFile(path) as f:
        low, high = peaks(f, 100)
    columns = (np.arange(audio.shape[1]) * 100) // audio.shape[1]
    for c in (0, 37, 99):
        np.testing.assert_array_equal(low[:, c], audio[:, columns == c].min(axis=1))
        np.testing.assert_array_equal(high[:, c], audio[:, columns == c].max(axis=1))


def test_an_mp3_waveform_shows_the_decoded_samples(tmp_path: Path) -> None:
    """Read as `render` reads it: libsndfile's MP3 decode went wrong after the seeks
    python-soundfile makes around each block read, which moved peaks of the picture."""
    path = tmp_path / "a.mp3"
    sf.write(path, (0.5 * music_like(48_000, 12.0, 5)).T, 48_000, format="MP3")
    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.T
    with ContinuousReader(path) as f:
        low, high = peaks(f, 1000)
    starts = np.searchsorted((np.arange(audio.shape[1]) * 1000) // audio.shape[1], range(1000))
    np.testing.assert_array_equal(low, np.minimum.reduceat(audio, starts, axis=1))
    np.testing.assert_array_equal(high, np.maximum.reduceat(audio, starts, axis=1))


def test_spectrogram_finds_a_tone(tmp_path: Path) -> None:
    rate = 8000
    t = np.arange(rate * 2) / rate
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), rate, subtype="FLOAT")
    with sf.SoundFile(path) as f:
        db = spectrogram(f, count=20, size=1024)
    assert db.shape == (513, 20)
    peak_hz = np.argmax(db, axis=0) * rate / 1024
    np.testing.assert_allclose(peak_hz, 1000, atol=rate / 1024)
    assert abs(db.max() - 20 * np.log10(0.5)) < 1.0
