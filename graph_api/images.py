"""Waveform and spectrogram PNGs of stored files: `GET /files/{id}/waveform.png` and
`GET /files/{id}/spectrogram.png`.

Rendering never holds a whole file: the waveform streams the audio in blocks and keeps a
min/max per pixel column; the spectrogram seeks to a fixed number of frames spread over the
file and reads only those. Stored files never change, so each image is rendered once, off the
event loop, and kept in storage under `img/<file id>.<kind>.png`.

>>> render(ImageKind.WAVEFORM, Path("in.wav"), Path("in.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import enum
import weakref
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import soundfile as sf
from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from graph_api.auth import Principal
from graph_api.context import get_principal, get_runtime
from graph_api.downloads import stream_blob
from graph_api.files import UNAUTHENTICATED, ErrorOut
from graph_api.runtime import Runtime
from jobs.db import repository as repo
from jobs.decoding import ContinuousReader
from jobs.errors import FileNotFound, UnsupportedAudio
from jobs.models import AudioFile
from jobs.storage import Storage

WIDTH_PX = 1000
HEIGHT_PX = 300
DPI = 100
BLOCK_FRAMES = 1 << 16
FFT_SIZE = 2048
SPECTRUM_FRAMES = 400
FLOOR_DB = -100.0
RANGE_DB = 90.0
CACHE_CONTROL = "private, max-age=86400"

_INK = "#2563eb"
_TEXT = "#334155"
_GRID = "#e2e8f0"


class ImageKind(enum.StrEnum):
    WAVEFORM = "waveform"
    SPECTROGRAM = "spectrogram"


router = APIRouter(tags=["files"])
_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def cache_key(file_id: str, kind: ImageKind) -> str:
    return f"img/{file_id}.{kind.value}.png"


async def stored_file(runtime: Runtime, principal: Principal, file_id: str) -> AudioFile:
    """The record of a stored file, looked up as `GET /files/{id}` does: another owner's, a
    deleted file or one whose blob is gone is `FileNotFound`, like an unknown one."""
    file = await runtime.db.run(repo.visible_file, file_id, principal.scope)
    if not await asyncio.to_thread(runtime.storage.exists, file.storage_key):
        raise FileNotFound(file_id)
    return file


async def image(runtime: Runtime, principal: Principal, file_id: str, kind: ImageKind) -> str:
    """The storage key of the cached image of a file, rendered first if not cached yet."""
    file = await stored_file(runtime, principal, file_id)
    storage = runtime.storage
    key = cache_key(file.id, kind)
    if await asyncio.to_thread(storage.exists, key):
        return key
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:
        if not await asyncio.to_thread(storage.exists, key):
            await asyncio.to_thread(_render_into, storage, file.storage_key, key, kind)
    return key


def _render_into(storage: Storage, source_key: str, key: str, kind: ImageKind) -> None:
    with storage.local_copy(source_key) as source, storage.writing(key) as tmp:
        render(kind, source, tmp)


def render(kind: ImageKind, source: Path, target: Path) -> None:
    """Write the PNG of `kind` for the audio file `source` (blocking: run it in a thread)."""
    try:
        audio = ContinuousReader(source)  # reads without seeks: see jobs.decoding (MP3)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UnsupportedAudio(f"not a decodable audio file: {exc}") from exc
    with audio:
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor="white")
        if kind is ImageKind.WAVEFORM:
            _draw_waveform(fig, audio)
        else:
            _draw_spectrogram(fig, audio)
    fig.savefig(target, format="png", dpi=DPI)


def peaks(audio: sf.SoundFile, columns: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Per column, the min and max of each channel: two `(channels, columns)` arrays.

    Reads `BLOCK_FRAMES` at a time, so memory does not grow with the file's length.
    """
    frames = max(int(audio.frames), 1)
    columns = max(1, min(columns, frames))
    low = np.full((audio.channels, columns), np.inf, dtype=np.float32)
    high = np.full((audio.channels, columns), -np.inf, dtype=np.float32)
    audio.seek(0)
    start = 0
    while True:
        block = audio.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        n = block.shape[0]
        if n == 0:
            break
        cols = np.minimum((np.arange(start, start + n) * columns) // frames, columns - 1)
        starts = np.flatnonzero(np.diff(cols, prepend=-1))
        where = cols[starts]
        low[:, where] = np.minimum(low[:, where], np.minimum.reduceat(block, starts, axis=0).T)
        high[:, where] = np.maximum(high[:, where], np.maximum.reduceat(block, starts, axis=0).T)
        start += n
    empty = ~np.isfinite(low)
    low[empty] = 0.0
    high[empty] = 0.0
    return low, high


def spectrogram(
    audio: sf.SoundFile, count: int = SPECTRUM_FRAMES, size: int = FFT_SIZE
) -> NDArray[np.float64]:
    """`(size // 2 + 1, count)` magnitudes in dBFS of `count` frames of `size` samples spread
    evenly over the file (channels averaged); only those frames are read."""
    frames = int(audio.frames)
    window = np.hanning(size)
    scale = 2.0 / window.sum()
    positions = np.linspace(0, max(frames - size, 0), count).round().astype(np.int64)
    out = np.empty((size // 2 + 1, count))
    for i, pos in enumerate(positions):
        audio.seek(int(pos))
        block = audio.read(size, dtype="float64", always_2d=True).mean(axis=1)
        if block.shape[0] < size:
            block = np.pad(block, (0, size - block.shape[0]))
        magnitude = np.abs(np.fft.rfft(block * window)) * scale
        out[:, i] = 20 * np.log10(np.maximum(magnitude, 10 ** (FLOOR_DB / 20)))
    return out


def _style(ax: Axes) -> None:
    ax.tick_params(colors=_TEXT, labelsize=8)
    for spine in ax.spines.values():
        spine.set_color(_GRID)


def _draw_waveform(fig: Figure, audio: sf.SoundFile) -> None:
    rate = audio.samplerate
    low, high = peaks(audio, WIDTH_PX)
    columns = low.shape[1]
    seconds = (np.arange(columns) + 0.5) * max(audio.frames, 1) / columns / rate
    axes = fig.subplots(audio.channels, 1, sharex=True, squeeze=False)[:, 0]
    for channel, ax in enumerate(axes):
        ax.fill_between(seconds, low[channel], high[channel], color=_INK, linewidth=0.6)
        ax.axhline(0.0, color=_GRID, linewidth=0.8)
        peak = max(1.0, float(np.max(np.abs([low[channel], high[channel]]))))
        ax.set_ylim(-peak, peak)
        ax.set_xlim(0, max(audio.frames, 1) / rate)
        ax.set_ylabel(f"ch {channel + 1}", color=_TEXT, fontsize=8)
        _style(ax)
    axes[-1].set_xlabel("time (s)", color=_TEXT, fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.97, bottom=0.15, hspace=0.08)


def _draw_spectrogram(fig: Figure, audio: sf.SoundFile) -> None:
    rate = audio.samplerate
    db = spectrogram(audio)
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / rate)
    duration = max(audio.frames, 1) / rate
    times = np.linspace(0.0, duration, db.shape[1])
    ax = fig.add_subplot()
    top = max(float(db.max()), FLOOR_DB + RANGE_DB)
    mesh = ax.pcolormesh(
        times,
        freqs[1:],
        db[1:],
        shading="nearest",
        cmap="magma",
        vmin=top - RANGE_DB,
        vmax=top,
        rasterized=True,
    )
    ax.set_yscale("log")
    ax.set_ylim(max(20.0, float(freqs[1])), rate / 2)
    ax.set_xlabel("time (s)", color=_TEXT, fontsize=8)
    ax.set_ylabel("frequency (Hz)", color=_TEXT, fontsize=8)
    _style(ax)
    bar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04)
    bar.set_label("dBFS", color=_TEXT, fontsize=8)
    bar.ax.tick_params(colors=_TEXT, labelsize=8)
    fig.subplots_adjust(left=0.07, right=0.95, top=0.97, bottom=0.15)


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"image/png": {}}, "description": "The rendered image."},
    401: UNAUTHENTICATED,
    404: {"model": ErrorOut, "description": "No such file, deleted, or not yours."},
    415: {"model": ErrorOut, "description": "The stored file is not decodable."},
}


async def _respond(
    file_id: str, kind: ImageKind, runtime: Runtime, principal: Principal
) -> Response:
    key = await image(runtime, principal, file_id, kind)
    return await stream_blob(
        runtime.storage, key, file_id, "image/png", None, {"Cache-Control": CACHE_CONTROL}
    )


@router.get("/files/{file_id}/waveform.png", response_class=StreamingResponse, responses=_RESPONSES)
async def waveform_png(
    file_id: str,
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
    principal: Principal = Depends(get_principal),  # noqa: B008
) -> Response:
    """Min/max per pixel column of each channel, over the whole file."""
    return await _respond(file_id, ImageKind.WAVEFORM, runtime, principal)


@router.get(
    "/files/{file_id}/spectrogram.png", response_class=StreamingResponse, responses=_RESPONSES
)
async def spectrogram_png(
    file_id: str,
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
    principal: Principal = Depends(get_principal),  # noqa: B008
) -> Response:
    """Magnitude in dBFS on a log-frequency axis, from frames spread over the file."""
    return await _respond(file_id, ImageKind.SPECTROGRAM, runtime, principal)
