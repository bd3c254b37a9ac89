"""vidloc's wire formats: pydantic models, and JSON Schemas generated from them (``schemas/``).

Pure values only: nothing here talks to Kafka, S3 or the network.

    decode_<name>(bytes | str | dict) -> model     raises ContractError (.field, message)
    encode(model) -> bytes                          compact UTF-8 JSON
    schema_for(name) -> dict                        the draft 2020-12 JSON Schema
    generate_schemas() -> {name: dict}              the same, built from the models
                                                    (``python -m contracts.generate`` writes them)
"""

from contracts.answer import AnswerEvent, ModelAnswer, answer_response_format, answer_schema
from contracts.codec import ROOT, ContractError, encode
from contracts.common import (
    ErrorInfo,
    JobWarning,
    ObjectRef,
    SourceObject,
    Usage,
    check_bucket,
    check_key,
)
from contracts.dlq import DlqRecord, MessageSource, decode_dlq, wrap_original
from contracts.ingest import (
    DEFAULT_ANALYSIS_ID,
    AnalysisRequest,
    IngestEvent,
    IngestOptions,
    decode_ingest,
    derive_analysis_id,
    derive_job_id,
    derive_version_tag,
    derive_video_id,
)
from contracts.progress import STAGES, ProgressEvent, decode_progress
from contracts.registry import SCHEMA_NAMES, generate_schemas, schema_for
from contracts.result import ResultEvent, Summary, decode_result
from contracts.timeline import (
    SPANS_PENDING,
    ModelInfo,
    Sampling,
    Timeline,
    TimelineEvent,
    TimelineStats,
    VideoMeta,
    decode_timeline,
)
from contracts.versions import (
    DLQ_V1,
    INGEST_V1,
    INGEST_V2,
    PROGRESS_V1,
    RESULT_V1,
    SCHEMA_IDS,
    TIMELINE_V1,
)

__all__ = [
    "DEFAULT_ANALYSIS_ID",
    "DLQ_V1",
    "INGEST_V1",
    "INGEST_V2",
    "PROGRESS_V1",
    "RESULT_V1",
    "ROOT",
    "SCHEMA_IDS",
    "SCHEMA_NAMES",
    "SPANS_PENDING",
    "STAGES",
    "TIMELINE_V1",
    "AnalysisRequest",
    "AnswerEvent",
    "ContractError",
    "DlqRecord",
    "ErrorInfo",
    "IngestEvent",
    "IngestOptions",
    "JobWarning",
    "MessageSource",
    "ModelAnswer",
    "ModelInfo",
    "ObjectRef",
    "ProgressEvent",
    "ResultEvent",
    "Sampling",
    "SourceObject",
    "Summary",
    "Timeline",
    "TimelineEvent",
    "TimelineStats",
    "Usage",
    "VideoMeta",
    "answer_response_format",
    "answer_schema",
    "check_bucket",
    "check_key",
    "decode_dlq",
    "decode_ingest",
    "decode_progress",
    "decode_result",
    "decode_timeline",
    "derive_analysis_id",
    "derive_job_id",
    "derive_version_tag",
    "derive_video_id",
    "encode",
    "generate_schemas",
    "schema_for",
    "wrap_original",
]
