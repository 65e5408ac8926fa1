"""ORM rows. They stay inside `jobs.db`; callers get `jobs.models` records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from jobs.contract import AudioAnalysis


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    subtype: Mapped[str] = mapped_column(String(32))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    # 64-bit: a 4 h stereo float output is about 5.5 GB, and 2.8 G frames at 192 kHz.
    frames: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Deleted files keep their row (jobs keep their history); only the blob goes.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # Levels measured by the engine when a job read (input) or wrote (output) the file;
    # NULL until then. A NULL level with a set duration means digital silence (-inf dB).
    # One column `analysis_<name>` per field of `jobs.contract.AudioAnalysis` (a test checks).
    analysis_peak_db: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_rms_db: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_loudness_lufs: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_duration_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_clipping: Mapped[bool | None] = mapped_column(Boolean, default=None)
    analysis_true_peak_db: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_loudness_range_lu: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_short_term_max_lufs: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_momentary_max_lufs: Mapped[float | None] = mapped_column(Float, default=None)
    analysis_dc_offset: Mapped[float | None] = mapped_column(Float, default=None)


ANALYSIS_PREFIX = "analysis_"
ANALYSIS_COLUMNS = {name: ANALYSIS_PREFIX + name for name in AudioAnalysis.model_fields}
"""`jobs.contract.AudioAnalysis` field -> the `files` column holding it."""


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    input_file_id: Mapped[str] = mapped_column(ForeignKey("files.id"))
    output_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id"))
    effects: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    output_format: Mapped[str] = mapped_column(String(16))
    output_subtype: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dsp_seconds: Mapped[float | None] = mapped_column(Float)
    node_id: Mapped[str | None] = mapped_column(String(64), default=None)
    actor: Mapped[str | None] = mapped_column(String(100), default=None)
    # `jobs.contract.Compliance` as JSON, for jobs with a `loudness` step.
    compliance: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # [[start_s, end_s], ...] the chain cut out of the input; NULL for jobs without a result.
    edits: Mapped[list[list[float]] | None] = mapped_column(JSON, default=None)
    segments: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # One more on every change of state (`jobs.store`); events carry it, so a subscriber
    # tells a late event from a new one even when a job goes RUNNING -> QUEUED -> RUNNING.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where the job's end is POSTed (Standard Webhooks), and where its output is PUT.
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    export_url: Mapped[str | None] = mapped_column(Text, default=None)
    # The batch the job was submitted in (`batches.id`); NULL for a job of its own.
    batch_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)


class BatchRow(Base):
    """Jobs submitted together; its status follows theirs (`jobs.store`)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    album: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    version: Mapped[int] = mapped_column(Integer, default=0)
    album_lufs: Mapped[float | None] = mapped_column(Float, default=None)


class AlbumMeasureRow(Base):
    """What the measure phase of a job of an album batch found: the BS.1770 gating-block
    powers of the signal reaching its album step (`jobs.album`)."""

    __tablename__ = "album_measures"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(32), index=True)
    block_powers: Mapped[list[float]] = mapped_column(JSON)


class IdempotencyKeyRow(Base):
    """A request made with an `Idempotency-Key` header (IETF draft): the owner's key, what the
    request asked for (`operation` and the sha256 `fingerprint` of its body), and the id of
    what it made (`result_id`, NULL while it runs). Kept `jobs.idempotency.KEEP_S`."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))
    result_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class OutboxRow(Base):
    """A message written in the same transaction as the change it announces (transactional
    outbox); a relay publishes it with confirms and stamps `sent_at`. `kind`: `job` (a job
    message for the jobs queue), `event` (a `JobEvent` for the events exchange) or `batch`
    (a `BatchEvent`, its batch's id in `job_id`). Sent rows are deleted (`jobs.outbox`), so
    ids must never be reused: AUTOINCREMENT on SQLite."""

    __tablename__ = "outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(8), default="job", server_default="job")
    trace: Mapped[str | None] = mapped_column(String(64))
    """The W3C `traceparent` of the span that wrote it (`jobs.tracing`), published with it."""


class ApiKeyRow(Base):
    """An API key, stored only as the sha256 of the key; `prefix` (its first characters) lets
    people tell keys apart in listings."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(64), index=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the webhooks of jobs submitted with this key and no `webhookUrl` go.
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)


class PresetRow(Base):
    """A named, validated effect chain of one owner ('' when saved without authentication)."""

    __tablename__ = "presets"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_presets_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    effects: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookSecretRow(Base):
    """An owner's webhook signing secret ('' when authentication is off). Signing needs the
    secret itself, so it is encrypted (Fernet, with the server key `jobs.keyring` holds),
    not hashed."""

    __tablename__ = "webhook_secrets"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeliveryRow(Base):
    """An outgoing request to a client's URL, written in the transaction that causes it (an
    outbox): `kind` `webhook` (a POST of `body`, or of the job's data when `body` is NULL)
    or `export` (a PUT of the job's output). `jobs.deliveries` sends it, retrying with
    backoff until `done_at`; `id` is the webhook-id, the same on every attempt."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    owner: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(32))
    body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)


class DeliveryAttemptRow(Base):
    """One try of a delivery: the HTTP status it got, or why it got none."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
