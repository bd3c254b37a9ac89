"""Names that more than one part of vidloc must agree on: topics, groups, schema ids, keys."""

from __future__ import annotations

from contracts.ingest import DEFAULT_ANALYSIS_ID

TOPIC_S3_EVENTS = "s3.events"
TOPIC_INGEST = "video.ingest"
TOPIC_PROGRESS = "video.progress"
TOPIC_RESULTS = "video.results"
TOPIC_DLQ = "video.ingest.dlq"
# A long video's spans: orders to the whole group, and reports to the one member that merges.
TOPIC_SPANS = "video.spans"
TOPIC_SPANS_DONE = "video.spans.done"
ALL_TOPICS = (
    TOPIC_S3_EVENTS,
    TOPIC_INGEST,
    TOPIC_PROGRESS,
    TOPIC_RESULTS,
    TOPIC_DLQ,
    TOPIC_SPANS,
    TOPIC_SPANS_DONE,
)
# What a worker consumes, in its one group.
WORKER_TOPICS = (TOPIC_INGEST, TOPIC_SPANS, TOPIC_SPANS_DONE)

BRIDGE_GROUP = "vidloc-bridge"

# Where a job's timeline and chunk checkpoints live in the timeline bucket.
TIMELINE_PREFIX = "timelines"
CHECKPOINT_PREFIX = "checkpoints"
# The frames a video's first analysis sent to the model, kept for the next analyses.
FRAME_CACHE_PREFIX = "frames"
# A video's later analyses (vidloc.ingest.v2), beside its first timeline.
ANALYSES_FOLDER = "analyses"
# A user's request to cancel a running job (docs/delivery.md "Cancelling").
CANCEL_PREFIX = "cancels"
# A tenant's objects live under tenants/<tenant>/ in the video and timeline buckets; objects
# outside it belong to no tenant (the single-tenant layout). See vidloc/tenancy.py.
TENANT_PREFIX = "tenants"
# The video id a refused ingest message that names no video (no id, no source, no Kafka key)
# is announced under: REFUSED_VIDEO_PREFIX + a digest of its bytes (older workers: "unknown").
REFUSED_VIDEO_PREFIX = "refused-"
UNKNOWN_VIDEO_ID = "unknown"

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".ogv"}
)


def tenant_root(tenant: str | None) -> str:
    """``tenants/<tenant>/``, or "" for no tenant."""
    return f"{TENANT_PREFIX}/{tenant}/" if tenant else ""


def timeline_key(video_id: str, tenant: str | None = None) -> str:
    return f"{tenant_root(tenant)}{TIMELINE_PREFIX}/{video_id}/timeline.json"


def analyses_prefix(video_id: str, tenant: str | None = None) -> str:
    """Where a video's later analyses keep their timelines (ends with a slash)."""
    return f"{tenant_root(tenant)}{TIMELINE_PREFIX}/{video_id}/{ANALYSES_FOLDER}/"


def analysis_timeline_key(
    video_id: str, analysis_id: str | None = None, tenant: str | None = None
) -> str:
    """The timeline of one analysis: the first analysis (``None`` or ``"default"``) is the
    video's timeline as it has always been stored; a later one lives under ``analyses/``."""
    if analysis_id is None or analysis_id == DEFAULT_ANALYSIS_ID:
        return timeline_key(video_id, tenant)
    return f"{analyses_prefix(video_id, tenant)}{analysis_id}/timeline.json"


def frame_cache_prefix(video_id: str, version_tag: str, tenant: str | None = None) -> str:
    """Where the frames sent to the model for one video version are kept, under the tenant's
    prefix and named by the object version (``IngestEvent.version_tag``), so another tenant's
    video or another upload of the same key never reads them (ends with a slash)."""
    return f"{tenant_root(tenant)}{FRAME_CACHE_PREFIX}/{video_id}/{version_tag}/"


def checkpoint_prefix(video_id: str, job_id: str, tenant: str | None = None) -> str:
    """Where every chunk checkpoint of one job lives, under its tenant's prefix like its
    timeline, so two tenants' jobs of one video id and job id never share them (ends with a
    slash)."""
    return f"{tenant_root(tenant)}{CHECKPOINT_PREFIX}/{video_id}/{job_id}/"


def span_state_key(video_id: str, job_id: str, tenant: str | None = None) -> str:
    """Which spans of a long video's job have reported (the merging member's own record)."""
    return f"{checkpoint_prefix(video_id, job_id, tenant)}spans.json"


def checkpoint_key(video_id: str, job_id: str, chunk_index: int, tenant: str | None = None) -> str:
    return f"{checkpoint_prefix(video_id, job_id, tenant)}chunk-{chunk_index:05d}.json"


def cancel_key(video_id: str, job_id: str, tenant: str | None = None) -> str:
    """A user's request to cancel one job of one video: the API and ``vidloc cancel`` write
    it, every worker on the job reads it. It names the tenant and the job (the job id derives
    from the event id, which names the object version), so a later job of the same video, or
    another tenant's video of the same id, is never cancelled by it."""
    return f"{tenant_root(tenant)}{CANCEL_PREFIX}/{video_id}/{job_id}.json"
