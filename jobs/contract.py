"""The broker message contract.

A job message (queue `<prefix>.jobs`) carries everything a worker needs, so a worker never
reads the API's database to learn what to do; it is versioned, and a worker dead-letters a
version it does not know instead of guessing. Status events (fanout exchange
`<prefix>.events`) tell every API replica what happened to a job; bridge heartbeats travel on
the same exchange with AMQP message type `heartbeat` (`jobs.broker.HEARTBEAT_TYPE`).

Job message, version 1 (JSON, content type `application/json`, persistent)::

    {"version": 1, "job_id": "...", "input_key": "in/ab12.wav",
     "output_key": "out/<job_id>.wav", "output_format": "WAV", "output_subtype": "FLOAT",
     "effects": [{"gain": {"db": -3.0}}, ...],      # canonical chain, see jobs.effects
     "impulses": {"<file id>": "in/cd34.wav"},       # storage keys of uploaded IRs
     "timeout_s": 3600.0,
     "phase": "render",                               # or "measure" (album batches)
     "album_lufs": null}                              # an album render: pooled loudness
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from jobs.errors import ContractError
from jobs.states import JobStatus

CONTRACT_VERSION: Literal[1] = 1


class JobMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = CONTRACT_VERSION
    job_id: str
    input_key: str
    output_key: str
    output_format: str
    output_subtype: str
    effects: list[dict[str, Any]]
    impulses: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = 3600.0
    phase: Literal["render", "measure"] = "render"
    """`measure`: the first pass of a job of an album batch, which only measures the signal
    reaching the album's loudness step (`JobResult.album_blocks`); its render follows."""
    album_lufs: float | None = None
    """A render of an album batch: the loudness of all its files together, which the
    album's loudness step takes as its input's (`jobs.effects.album_step`)."""

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, body: bytes) -> JobMessage:
        """Parse a message body; `ContractError` names what is wrong with it."""
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError(f"message is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ContractError("message is not a JSON object")
        if raw.get("version") != CONTRACT_VERSION:
            raise ContractError(
                f"unknown contract version {raw.get('version')!r}; "
                f"this worker reads version {CONTRACT_VERSION}"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ContractError(f"invalid job message: {exc}") from exc


class JobEvent(BaseModel):
    """A change of a job, relayed to subscribers. `progress` is 0..1. `owner` lets an API
    replica hand it to its owner's subscribers without reading the job; `version` is the
    job's version after the change (progress events repeat it), so subscribers keep events
    in order and drop late copies. Only `jobs.store` makes them."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    status: JobStatus
    progress: float = 0.0
    message: str = ""
    owner: str | None = None
    version: int = 0
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, body: bytes) -> JobEvent:
        return cls.model_validate_json(body)


class BatchEvent(BaseModel):
    """A change of a batch: written by `jobs.store` in the transaction of the job change that
    caused it, published on the events exchange with AMQP type `batch`
    (`jobs.broker.BATCH_TYPE`). `done` of `total` jobs have ended; `version` orders them."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    status: JobStatus
    progress: float = 0.0
    done: int = 0
    total: int = 0
    owner: str | None = None
    version: int = 0
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, body: bytes) -> BatchEvent:
        return cls.model_validate_json(body)


class BridgeHeartbeat(BaseModel):
    """A bridge's periodic sign of life: how many pool actors answered it. The API judges
    from these whether Ray is reachable, without talking to Ray itself."""

    model_config = ConfigDict(frozen=True)

    bridge_id: str
    hostname: str
    ray_address: str
    actors_alive: int = Field(ge=0)
    capacity: int = Field(ge=0)
    at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, body: bytes) -> BridgeHeartbeat:
        return cls.model_validate_json(body)


class AudioAnalysis(BaseModel):
    """Levels of a whole stream as an actor read or wrote it. Levels of digital silence
    (-inf dB) are None, since JSON has no infinity.

    The one declaration of the analysis fields: the file table stores each as column
    `analysis_<name>` (`jobs.store`, `jobs.db.repository`), and GraphQL's `AudioAnalysis`
    type is generated from this model, descriptions included (`graph_api.types`)."""

    model_config = ConfigDict(frozen=True)

    peak_db: float | None = Field(
        description="Sample peak in dBFS over all channels; null for digital silence."
    )
    rms_db: float | None = Field(
        description="RMS level in dBFS over all channels; null for digital silence."
    )
    loudness_lufs: float | None = Field(
        description="Integrated loudness (ITU-R BS.1770-4, gated); null when no 400 ms block "
        "passes the gates (silence, or shorter than 400 ms)."
    )
    duration_seconds: float = Field(description="Length of the metered stream.")
    clipping: bool = Field(description="A sample reached or passed full scale.")
    true_peak_db: float | None = Field(
        None,
        description="True peak in dBTP (ITU-R BS.1770-4 Annex 2, oversampled to >= 192 kHz); "
        "null for digital silence or when not measured.",
    )
    loudness_range_lu: float | None = Field(
        None,
        description="Loudness range in LU (EBU Tech 3342); null when no 3 s window passes the "
        "gates (silence, shorter than 3 s).",
    )
    short_term_max_lufs: float | None = Field(
        None,
        description="Highest short-term (3 s) loudness; null for silence or shorter than 3 s.",
    )
    momentary_max_lufs: float | None = Field(
        None,
        description="Highest momentary (400 ms) loudness; null for silence or under 400 ms.",
    )
    dc_offset: float | None = Field(
        None,
        description="DC offset: the largest mean of a channel, as a fraction of full scale "
        "(0.01 is 1 %); null when not measured.",
    )

    @classmethod
    def of(cls, **measured: float | bool) -> AudioAnalysis:
        """From meter readings: a non-finite level (silence, or not measured) becomes None."""
        return cls.model_validate(
            {
                name: None if isinstance(value, float) and not math.isfinite(value) else value
                for name, value in measured.items()
            }
        )


class Compliance(BaseModel):
    """A `loudness` job's delivered file measured against its spec (decoded after encoding).
    `renders`: how many times the job was rendered to get there (a lossy encode that broke
    the ceiling is rendered again with a lower limiter ceiling, at most 3 times)."""

    model_config = ConfigDict(frozen=True)

    integrated_lufs: float | None
    true_peak_db: float | None
    loudness_range_lu: float | None
    target: float
    true_peak_limit: float
    passed: bool
    renders: int
    reason: str | None = None


class Edit(BaseModel):
    """A part of the input a job cut out (silence), in seconds of the input."""

    model_config = ConfigDict(frozen=True)

    start_s: float
    end_s: float


class JobResult(BaseModel):
    """What an actor returns after it stored a job's output under `output_key`."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    output_key: str
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    size_bytes: int
    dsp_seconds: float
    actor: str = ""
    node_id: str = ""
    input_analysis: AudioAnalysis | None = None
    output_analysis: AudioAnalysis | None = None
    compliance: Compliance | None = None
    edits: list[Edit] = Field(default_factory=list)
    album_blocks: list[float] | None = None
    """A `measure` phase: the power of each 400 ms gating block (BS.1770) of the signal
    reaching the album step; such a result has no output (zero frames)."""
    segments: int = 1


class PartsPlan(BaseModel):
    """How an actor split a job (`actors.parts.plan_parts`): segment i covers input frames
    [bounds[i], bounds[i + 1]); `reason` says why it is not split, or not more; `measures`:
    the two-pass effects (normalize, loudness) its parts measure, one phase each, before
    they render."""

    model_config = ConfigDict(frozen=True)

    bounds: list[int]
    reason: str = ""
    measures: int = 0

    @property
    def count(self) -> int:
        return len(self.bounds) - 1


class ControlMessage(BaseModel):
    """A request to every bridge (fanout exchange `<prefix>.control`): the one running the
    job acts on it, the others ignore it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["cancel"]
    job_id: str

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, body: bytes) -> ControlMessage:
        return cls.model_validate_json(body)
