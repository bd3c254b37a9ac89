"""Typed settings, read once from ``VIDLOC_*`` variables at the entrypoint and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.common import LocalizerName
from vidloc.errors import ConfigError

HOSTED_QWEN_BASE_URL = "https://wcode.net/api/gpt/v1"
HOSTED_QWEN_MODEL = "qwen/qwen3-vl-8b-instruct"


class Settings(BaseSettings):
    """Everything vidloc can be told; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="VIDLOC_", extra="ignore", frozen=True)

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    ingest_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)  # `stack init` on a multi-broker cluster
    max_message_bytes: int = Field(default=1_000_000, ge=1024)

    # S3
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: SecretStr = SecretStr("vidloc")
    s3_secret_key: SecretStr = SecretStr("vidloc-local-secret")
    s3_region: str = "us-east-1"
    s3_ca_file: str | None = None
    video_bucket: str = "videos"
    timeline_bucket: str = "timelines"

    # Model endpoint
    vlm_base_url: str | None = None
    vlm_model: str = HOSTED_QWEN_MODEL
    vlm_api_key: SecretStr | None = None
    vlm_params: dict[str, Any] = Field(default_factory=dict)
    vlm_timeout_s: float = Field(default=120.0, gt=0)
    vlm_max_retries: int = Field(default=6, ge=0)
    vlm_max_backoff_s: float = Field(default=30.0, gt=0)
    vlm_concurrency: int = Field(default=4, ge=1)
    # The endpoint's published limits, shared by every job of a worker (workers/model/ratelimit.py);
    # unset: only its 429s / Retry-After pace the worker.
    vlm_requests_per_min: float | None = Field(default=None, gt=0)
    vlm_tokens_per_min: float | None = Field(default=None, gt=0)
    vlm_ca_file: str | None = None
    vlm_answer_retries: int = Field(default=1, ge=0)  # re-asks when an answer holds no JSON
    vlm_jpeg_quality: int = Field(default=85, ge=10, le=100)
    # vLLM's multimodal ``uuid`` on each image part (``<video>@<version>:<pts>:<digest>``): the
    # server's caches know a frame by it without hashing pixels. auto: sent until the endpoint
    # answers a 400 that names it, then left out; on: always; off: never.
    vlm_image_uuids: Literal["auto", "on", "off"] = "auto"
    price_input_per_1k: float = 0.0025
    price_output_per_1k: float = 0.00875
    currency: str = "CNY"

    # Localization
    localizer: LocalizerName | None = None
    sample_fps: float = Field(default=1.0, gt=0, le=30)
    chunk_s: float = Field(default=30.0, gt=0)
    chunk_overlap_s: float = Field(default=2.0, ge=0)
    # A video longer than this is split into spans of at most this length that the whole group
    # works on, their count rounded up to a multiple of video.spans' partitions
    # (docs/delivery.md); 0 keeps every video on one worker.
    span_s: float = Field(default=300.0, ge=0)
    # Span orders one worker runs at once (never its last job slot). One leaves the model slots
    # idle while a span starts and ends (a 60-minute video on one worker: 112 s against 72 s
    # with two, model floor 60 s). Memory does not grow with it: spans are decoded ahead, one
    # at a time (span_decoders). docs/delivery.md, "Long videos".
    span_jobs: int = Field(default=2, ge=1)
    # Spans one worker decodes at once: a span is decoded ahead of the model and its decoder
    # child then ends (workers/pipeline/ahead.py), so its other span orders wait seconds for
    # this, not minutes, and the worker holds one span decoder (~70 MB), not one per order
    # (a 2-hour 1080p video on one worker: 259 MB tree RSS, job 69 s; two: 339 MB, 55 s).
    span_decoders: int = Field(default=1, ge=1)

    @property
    def span_partitions(self) -> int:
        """Partitions of video.spans, as ``vidloc init`` and the stack create it."""
        return max(16, self.ingest_partitions)

    max_frames_per_chunk: int = Field(default=64, ge=1)
    frame_long_side: int = Field(default=448, ge=32)
    # Adaptive sampling: a cheap cv pre-pass (small frames at prepass_fps) finds where the
    # picture changes; the model sees frames bracketing each change, and static stretches at
    # adaptive_min_fps, within token_budget_per_min (None = no cap) per video-minute.
    sampling_mode: Literal["uniform", "adaptive"] = "uniform"
    token_budget_per_min: float | None = Field(default=None, gt=0)
    prepass_fps: float = Field(default=4.0, gt=0, le=30)
    prepass_long_side: int = Field(default=96, ge=16)
    adaptive_min_fps: float = Field(default=0.2, gt=0, le=30)
    adaptive_change_threshold: float = Field(default=0.02, ge=0, le=1)
    # Boundary refinement: place each boundary on the refine_fps grid between the coarse
    # samples that bracket it (at most refine_window_s on either side): colour evidence
    # settles clean changes, the model is shown a few small frames for the rest, many
    # boundaries per request (workers/refinement/search.py). On by default (issue 11).
    refine: bool = True
    refine_fps: float = Field(default=10.0, gt=0, le=60)
    refine_window_s: float = Field(default=2.0, gt=0)
    snap_to_cut_s: float = Field(default=0.5, ge=0)  # 0 = never snap boundaries to cuts
    # The frames a job sent to the model are kept (timeline bucket, frames/<video>/<version>/)
    # so a later analysis of the video pays the model only; a cache older than this many days
    # counts as absent (0: neither kept nor read). docs/analyses.md.
    frame_cache_ttl_days: float = Field(default=30.0, ge=0)

    # Limits
    max_object_bytes: int = Field(default=4 * 1024**3, ge=1)
    max_duration_s: float = Field(default=4 * 3600.0, gt=0)
    max_pixels: int = Field(default=8192 * 8192, ge=1)
    decode_timeout_s: float = Field(default=600.0, gt=0)
    # Threads per decode (FFmpeg's and decord's); 0 = the decoder's choice (one per core). One:
    # a worker runs several jobs at once and gets its parallelism across them, and frame threads
    # cost a short clip twice the CPU (bench/README.md, "Throughput").
    decode_threads: int = Field(default=1, ge=0, le=64)
    # Chunks a worker decodes at once across its jobs; 0 = one per core. Jobs that start together
    # reach the model sooner one after another than all at once (workers/pipeline/fanout.py).
    decode_slots: int = Field(default=0, ge=0, le=256)
    # Which decoder samples frames: PyAV (right on every file of the decoder matrix, and as fast
    # or faster); "auto": decord where the matrix found it right, checked against PyAV at run
    # time (docs/decoders.md); "decord": decord wherever it opens. The check decodes again, so
    # decord cost a 30 s clip 2.3x PyAV's CPU (bench/README.md, "Throughput").
    frame_source: Literal["pyav", "auto", "decord"] = "pyav"
    work_dir: Path | None = None

    # Worker loop
    worker_group: str = "vidloc-workers"
    job_retry_deadline_s: float = Field(default=600.0, ge=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    # Jobs run in a thread while the loop keeps polling with partitions paused, so the poll
    # interval only has to cover one loop turn; tests shrink it to prove that.
    worker_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    worker_session_timeout_ms: int = Field(default=10_000, ge=1000)
    worker_heartbeat_interval_ms: int = Field(default=2_000, ge=100)
    # Jobs one worker runs at once (None: VIDLOC_VLM_CONCURRENCY, enough to keep the model
    # budget full); they share one model budget. See docs/delivery.md.
    worker_jobs: int | None = Field(default=None, ge=1, le=256)
    # Results, final progress and DLQ records leave in one Kafka transaction with the input
    # offset (exactly once for read_committed readers); off: plain at-least-once, for brokers
    # without transactions. The id should be stable per worker instance (a pod name): a
    # restarted worker then aborts what its predecessor left open at once; None: group-host-pid.
    worker_transactions: bool = True
    worker_transactional_id: str | None = None
    worker_transaction_timeout_ms: int = Field(default=15_000, ge=1000)
    # Circuit breaker on the model endpoint: after this many jobs in a row fail on the model,
    # the worker pauses (jobs retried, not dead-lettered) for the cool-down, then probes.
    circuit_failure_threshold: int = Field(default=3, ge=1)
    circuit_cooldown_s: float = Field(default=30.0, gt=0)
    # Largest chat request body sent to the model; bigger chunks are split in halves.
    vlm_max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    # Most images one model request may hold (vLLM's --limit-mm-per-prompt, 64 in the compose
    # file): coarse chunks and refinement requests are planned within it, and any request over
    # it, or over a lower limit a server names in its 400, is split.
    vlm_max_images_per_request: int = Field(default=64, ge=1)

    # Logging
    log_level: str = "INFO"
    log_json: bool = False

    # Metrics: workers serve Prometheus /metrics on this port (0 = off); lag refresh period
    metrics_port: int = Field(default=9400, ge=0, le=65535)
    metrics_lag_interval_s: float = Field(default=15.0, gt=0)

    # Query API (see docs/security.md). No keys file: no auth, loopback only.
    api_keys_file: Path | None = None
    api_presign_ttl_s: int = Field(default=300, ge=1, le=7 * 24 * 3600)
    api_rate_per_s: float = Field(default=20.0, gt=0)  # per key, token bucket refill
    api_rate_burst: int = Field(default=60, ge=1)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=0)
    api_max_url_bytes: int = Field(default=8 * 1024, ge=256)
    api_cors_origins: str = ""  # comma-separated; empty = no CORS headers at all
    # Reverse proxies whose X-Forwarded-For/-Proto the API believes: comma-separated addresses
    # or networks (10.0.0.0/8), "*" for any; empty = none, the peer is the client (rate limit
    # buckets and denial logs go by it).
    api_trusted_proxies: str = ""
    # A running job with no progress event for this long is shown as "stalled".
    api_stalled_after_s: float = Field(default=900.0, gt=0)
    # Search (docs/search.md): this replica's own SQLite FTS5 file, rebuilt from the stored
    # timelines when missing; None: <cache_dir>/search/<timeline bucket>-<endpoint digest>.sqlite.
    search_index_path: Path | None = None
    # Clips (docs/api.md): the longest event clip cut on request, padding included.
    clip_max_s: float = Field(default=900.0, gt=0)
    # The tenant `vidloc submit` uploads for and `vidloc watch` shows (None: no tenant).
    tenant: str | None = None
    # Submitting over HTTP (POST /videos, docs/api.md): the largest declared upload, the
    # submissions one key may make per rolling day (one count for the whole deployment:
    # vidloc/api/quota.py), the part size of presigned multipart uploads (an upload up to one
    # part is a single PUT) and how long the upload URLs live.
    api_submit_max_bytes: int = Field(default=4 * 1024**3, ge=1)
    api_submit_per_day: int = Field(default=1000, ge=1)
    api_upload_part_bytes: int = Field(default=64 * 1024 * 1024, ge=5 * 1024 * 1024)
    api_upload_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # Webhooks (docs/webhooks.md): where deliveries may go, how long one is retried before it is
    # dead-lettered, each attempt's timeout, the senders at once (and per target), the most
    # deliveries held in memory before the deliverer stops reading, and how often it re-reads
    # the registrations. Targets at loopback, private, link-local or otherwise non-public
    # addresses are refused unless webhook_allowed_networks lists them; webhook_allowed_hosts,
    # when set, is the only host names (or *.suffixes) allowed at all.
    webhook_allowed_networks: str = ""
    webhook_allowed_hosts: str = ""
    webhook_retry_for_s: float = Field(default=3600.0, gt=0)
    webhook_backoff_max_s: float = Field(default=60.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1, le=256)
    webhook_per_target: int = Field(default=2, ge=1, le=64)
    webhook_max_pending: int = Field(default=10_000, ge=1)
    webhook_refresh_s: float = Field(default=5.0, gt=0)
    webhook_group: str = "vidloc-webhooks"
    # The deliverer's Prometheus /metrics (0 = off): a port of its own, so it can share a host
    # with a worker (VIDLOC_METRICS_PORT, 9400).
    webhook_metrics_port: int = Field(default=9401, ge=0, le=65535)

    # Local stack
    stack_dir: Path = Path(".stack")
    cache_dir: Path = Path(".cache")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    s3_port: int = 9000
    # Off by default. When set, the local broker also listens with SASL_PLAINTEXT (mechanism
    # PLAIN) on this port and accepts one user: VIDLOC_KAFKA_SASL_USERNAME/_PASSWORD.
    stack_kafka_sasl_port: int | None = Field(default=None, ge=1, le=65535)
    webhook_port: int = 9010

    @field_validator("vlm_params", mode="before")
    @classmethod
    def _params_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            import json

            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"VIDLOC_VLM_PARAMS is not JSON: {exc}") from exc
        return value

    @field_validator("api_trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        import ipaddress

        for entry in (e.strip() for e in value.split(",")):
            if entry and entry != "*":
                try:
                    ipaddress.ip_network(entry)
                except ValueError as exc:
                    raise ValueError(f"not an address or network: {entry!r} ({exc})") from None
        return value

    @property
    def effective_localizer(self) -> LocalizerName:
        """``vlm`` when a model endpoint is configured, else the offline ``cv`` localizer."""
        if self.localizer is not None:
            return self.localizer
        return "vlm" if (self.vlm_api_key or self.vlm_base_url) else "cv"

    @property
    def effective_worker_jobs(self) -> int:
        # Twice the model slots: while some jobs wait for the model, as many more download,
        # decode and store, so the next request is ready when a slot frees (bench/README.md:
        # with jobs = slots, a job's own time sat between every two model calls).
        return self.worker_jobs if self.worker_jobs is not None else 2 * self.vlm_concurrency

    @property
    def effective_vlm_base_url(self) -> str:
        return self.vlm_base_url or HOSTED_QWEN_BASE_URL

    def secrets(self) -> list[str]:
        """Every secret value, so tests and log filters can check none leaks."""
        values = [self.s3_secret_key, self.vlm_api_key, self.kafka_sasl_password]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; turn validation failures into one clear ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"VIDLOC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"bad settings: {problems}") from exc
