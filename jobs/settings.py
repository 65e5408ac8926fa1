"""The one place configuration is read from the environment.

Every entry point builds a `Settings` once and passes it down; nothing else reads `os.environ`.
Variables are prefixed `AUDIO_ENGINE_`, except the two URLs people expect by their usual names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_SAMPLE_ABS = 1000.0
"""Default bound on |sample| of inputs and float outputs: 1.0 is full scale, 1000 is +60 dBFS,
beyond any real float recording's headroom and far below where encoders break (LAME aborts
the process on NaN, infinity or values around 1e6)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIO_ENGINE_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Folder for the SQLite file and stored audio.")
    database_url: str = Field(
        "",
        validation_alias=AliasChoices("DATABASE_URL", "AUDIO_ENGINE_DATABASE_URL"),
        description="SQLAlchemy async URL; empty means SQLite in data_dir.",
    )
    rabbitmq_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        validation_alias=AliasChoices("RABBITMQ_URL", "AUDIO_ENGINE_RABBITMQ_URL"),
        description="AMQP URL of the broker.",
    )
    storage_dir: Path | None = Field(
        None, description="Audio blob folder; default data_dir/storage."
    )
    storage_shared: bool = Field(
        False, description="Declare storage_dir a mount shared by every Ray node."
    )
    storage_url: str = Field(
        "",
        description="Object store for audio blobs, s3://bucket/prefix ('' means storage_dir). "
        "Endpoint and credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY and AWS_REGION, read by the S3 client itself.",
    )
    sweep_interval_s: float = Field(
        3600.0,
        ge=0,
        description="Gap between sweeps of orphaned blobs (by the API); 0 turns sweeping off.",
    )
    sweep_min_age_s: float = Field(
        3600.0,
        gt=0,
        description="Youngest orphan or scratch file a sweep removes (uploads and jobs in "
        "flight are younger).",
    )
    queue_prefix: str = Field(
        "audio",
        description="Prefix of every RabbitMQ queue and exchange name (tests isolate by it).",
    )
    delivery_limit: int = Field(3, ge=1, description="Deliveries before a job is dead-lettered.")
    ray_address: str = Field(
        "", description="'' starts a local Ray; 'auto' or 'ray://host:10001' joins a cluster."
    )
    ray_dashboard_port: int = Field(8265, description="Dashboard port of a locally started Ray.")
    ray_dashboard: bool = Field(
        True,
        description="Start the dashboard with a local Ray (off: about 3 s less to start and "
        "a few percent of a core less while running).",
    )
    pool_size: int = Field(0, ge=0, description="Actors in the pool; 0 means one per CPU Ray sees.")
    actor_num_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves for each actor.")
    in_flight_extra: int = Field(1, ge=0, description="Jobs in flight beyond the pool size.")
    block_frames: int = Field(65536, ge=256, description="Frames per block read from the input.")
    ir_cache_bytes: int = Field(512 * 2**20, ge=0, description="Per-actor impulse-response cache.")
    job_timeout_s: float = Field(
        1500.0,
        gt=0,
        description="Wall-clock limit of one job; keep it under RabbitMQ's consumer_timeout "
        "(30 min by default), which closes the channel of a consumer holding a message longer.",
    )
    segment_seconds: float = Field(
        300.0,
        ge=0,
        description="An input longer than twice this is rendered in segments of about this "
        "length by several actors at once and stitched; 0 turns splitting off.",
    )
    max_attempts: int = Field(3, ge=1, description="Tries of a job whose actor died.")
    progress_interval_s: float = Field(
        0.1,
        ge=0,
        description="Minimum gap between a job's progress events (its row is written at most "
        "once a second); the pool polls a running job's actor as often.",
    )
    heartbeat_interval_s: float = Field(
        5.0,
        gt=0,
        description="Gap between a bridge's heartbeats; /readyz wants one younger than 3 times "
        "this that reports a live actor.",
    )
    api_host: str = Field("127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(8000, description="Port the API listens on.")
    max_upload_bytes: int = Field(200 * 2**20, ge=1, description="Largest accepted upload.")
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest a client may take to send a request's headers, counted from "
        "connecting or from the first byte of a next request; then 408 and closed.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Time the API waits for a request body beyond what "
        "body_min_bytes_per_s earns; then 408 and closed.",
    )
    body_min_bytes_per_s: int = Field(
        4096,
        ge=1,
        description="Slowest accepted average body rate: each byte received extends the "
        "body deadline by 1/this seconds.",
    )
    keep_alive_s: int = Field(5, ge=1, description="Idle keep-alive connections close after this.")
    websocket_compression: bool = Field(
        False,
        description="Offer permessage-deflate on websockets. Off: subscription messages are "
        "small, and deflating each one for each subscriber costs more CPU than it saves bytes.",
    )
    max_connections_per_client: int = Field(
        64,
        ge=0,
        description="Open HTTP connections one client address may hold (0: no cap); more are "
        "answered 429 and closed. Behind a reverse proxy every client has the proxy's address: "
        "set 0 there and cap connections in the proxy.",
    )
    public_url: str = Field("", description="Base URL put in download links; '' means relative.")
    auth_enabled: bool = Field(
        True,
        description="Require an API key (Authorization: Bearer ...) for every operation but "
        "the probes; False (`--dev`) makes everything visible to everyone: insecure.",
    )
    key_recheck_s: float = Field(
        5.0, gt=0, description="Longest an open subscription outlives the revocation of its key."
    )
    max_duration_s: float = Field(4 * 3600.0, gt=0, description="Longest accepted upload.")
    max_channels: int = Field(8, ge=1, description="Most channels an upload may have.")
    min_sample_rate: int = Field(8_000, ge=1, description="Lowest accepted upload sample rate.")
    max_sample_rate: int = Field(192_000, ge=1, description="Highest accepted upload rate.")
    max_sample_abs: float = Field(
        MAX_SAMPLE_ABS,
        gt=0,
        description="Largest |sample| of an input, and of a float or lossy output (1.0 is full "
        "scale, 1000 is +60 dBFS). NaN and infinite samples are always refused.",
    )
    max_ir_seconds: float = Field(
        20.0, gt=0, description="Longest uploaded impulse response a reverb may use."
    )
    max_queued_jobs_per_owner: int = Field(
        100, ge=1, description="Unfinished (QUEUED or RUNNING) jobs one owner may have."
    )
    max_batch_files: int = Field(
        100, ge=1, description="Most files one `submitBatch` may name (one job each)."
    )

    allow_private_urls: bool = Field(
        False,
        description="Let importAudio, webhooks and exports reach loopback, private and other "
        "non-public addresses (link-local and cloud-metadata ones stay refused).",
    )
    url_connect_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait to connect to a URL a client gave."
    )
    url_read_timeout_s: float = Field(
        30.0, gt=0, description="Longest silence while reading from (or writing to) such a URL."
    )
    url_max_redirects: int = Field(
        5, ge=0, description="Most redirects importAudio follows (each one checked again)."
    )
    import_timeout_s: float = Field(
        600.0, gt=0, description="Longest an importAudio download may take as a whole."
    )

    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Fernet key that encrypts webhook secrets at rest; '' means the one in "
        "data_dir/secret.key, made on first start. Give every API and bridge the same one.",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for a webhook receiver's answer (then retried)."
    )
    delivery_retry_first_s: float = Field(
        5.0, gt=0, le=10.0, description="Wait before the first retry of a webhook or export."
    )
    delivery_retry_max_s: float = Field(
        3600.0, gt=0, description="Longest wait between two retries (the wait doubles)."
    )
    webhook_retry_for_s: float = Field(
        26 * 3600.0, gt=0, description="A webhook is retried until this long after its event."
    )
    export_attempts: int = Field(5, ge=1, description="Tries of an OutputInput.url PUT.")
    export_timeout_s: float = Field(
        900.0,
        gt=0,
        description="Longest one OutputInput.url PUT may take (then it is retried); a bridge "
        "that dies mid-PUT leaves it claimed this long (plus 30 s).",
    )
    delivery_concurrency: int = Field(
        16, ge=1, description="Webhooks and exports one bridge sends at once."
    )
    delivery_poll_s: float = Field(
        1.0, gt=0, description="Gap between a bridge's looks for due webhooks and exports."
    )
    api_key: str = Field(
        "", description="Key the `audio-engine submit` client sends (it prints no key itself)."
    )

    # OpenTelemetry, by the standard variable names (`jobs.tracing`). These are fields, not
    # left to the SDK alone, because the bridge hands its settings to the Ray actors, which
    # may run on nodes started without them: every process of a job exports alike. The SDK
    # still reads the other OTEL_* variables (OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS,
    # OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES...) itself, in each process.
    otel_exporter_otlp_endpoint: str = Field(
        "",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="Base URL of an OTLP/HTTP collector (http://127.0.0.1:4318: Jaeger, Tempo, "
        "an OpenTelemetry Collector); spans go to its /v1/traces. '' exports nothing.",
    )
    otel_exporter_otlp_traces_endpoint: str = Field(
        "",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        description="Full URL spans are posted to, used as it is (overrides the base URL's).",
    )
    otel_traces_exporter: str = Field(
        "otlp",
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER"),
        description="'otlp' (when an endpoint is set), 'console' (spans printed to stdout) or "
        "'none'.",
    )
    otel_service_name: str = Field(
        "audio-engine",
        validation_alias=AliasChoices("OTEL_SERVICE_NAME"),
        description="Base of each process's service.name: '<this>-api', '-bridge', '-actor'.",
    )
    otel_sdk_disabled: bool = Field(
        False,
        validation_alias=AliasChoices("OTEL_SDK_DISABLED"),
        description="True turns tracing off whatever else is set.",
    )

    @property
    def tracing(self) -> bool:
        """Whether this process records spans (and exports them somewhere)."""
        exporter = self.otel_traces_exporter.strip().lower()
        if self.otel_sdk_disabled or exporter == "none":
            return False
        return exporter == "console" or bool(self.otlp_traces_url)

    @property
    def otlp_traces_url(self) -> str:
        """Where OTLP/HTTP spans are posted ('' for none), as the OTLP spec builds it."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return f"{self.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"
        return ""

    @property
    def storage_path(self) -> Path:
        return self.storage_dir or self.data_dir / "storage"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'audio-engine.db').resolve()}"

    @property
    def jobs_queue(self) -> str:
        return f"{self.queue_prefix}.jobs"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue_prefix}.jobs.dead"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.queue_prefix}.dlx"

    @property
    def events_exchange(self) -> str:
        return f"{self.queue_prefix}.events"

    @property
    def control_exchange(self) -> str:
        return f"{self.queue_prefix}.control"

    def effective_pool_size(self, cpus: float) -> int:
        return self.pool_size or max(1, int(cpus // self.actor_num_cpus))
