"""Field types and small parts shared by several contracts.

The JSON Schema files are generated from these models (``python -m contracts.generate``). A rule
checked by a Python validator is invisible to pydantic's schema generator, so each such type also
says its rule in JSON Schema terms (``WithJsonSchema``); tests check that model and schema judge
the same documents alike. The few rules JSON Schema cannot state (UTF-8 byte length of a key,
``start_s <= end_s``) are enforced by the models only and said in a ``$comment`` or description.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    WithJsonSchema,
)

MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_LIKE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
# Ids that become Kafka keys and S3 key segments: nothing that can climb out of a prefix.
SAFE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_SAFE_ID = re.compile(SAFE_ID_PATTERN)
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")


def check_bucket(value: str) -> str:
    """S3 bucket naming rules (general purpose buckets), with a pointed message for URLs."""
    if "://" in value or _URL_LIKE.match(value):
        raise ValueError(f"{value!r} is a URL; give the bucket name only, e.g. 'videos'")
    if not 3 <= len(value) <= 63:
        raise ValueError(f"bucket name {value!r} must be 3 to 63 characters long")
    if not _BUCKET.fullmatch(value):
        raise ValueError(
            f"bucket name {value!r} may hold only a-z, 0-9, '.' and '-', "
            "and must start and end with a letter or digit"
        )
    if ".." in value:
        raise ValueError(f"bucket name {value!r} must not contain '..'")
    if _IPV4_LIKE.fullmatch(value):
        raise ValueError(f"bucket name {value!r} must not look like an IP address")
    if value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3")):
        raise ValueError(f"bucket name {value!r} uses a prefix or suffix S3 reserves")
    return value


def check_key(value: str) -> str:
    """An object key a worker may fetch: relative, no '..' segments, no NUL, <= 1024 bytes."""
    if not value:
        raise ValueError("object key must not be empty")
    if value.startswith("/"):
        raise ValueError(f"object key {value!r} must not start with '/'")
    if "\x00" in value:
        raise ValueError("object key must not contain NUL")
    if ".." in value.split("/"):
        raise ValueError(f"object key {value!r} must not contain a '..' segment")
    size = len(value.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise ValueError(f"object key is {size} bytes in UTF-8; the limit is {MAX_KEY_BYTES}")
    return value


def _check_pattern(pattern: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return BeforeValidator(check)


def _check_bucket_text(value: object) -> object:
    return check_bucket(value) if isinstance(value, str) else value


def _check_key_text(value: object) -> object:
    return check_key(value) if isinstance(value, str) else value


def _integral(value: object) -> object:
    # JSON has one number type; 3.0 is an integer to JSON Schema, so it is one here too.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _pattern(regex: re.Pattern[str]) -> str:
    # JSON Schema patterns search; anchor them. Python's "$" also matches before a final "\n",
    # which fullmatch does not, so the lookahead refuses that too.
    return f"^{regex.pattern}$(?!\\n)"


def _string(pattern: str, description: str | None = None, **extra: Any) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "string", **extra, "pattern": pattern}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


# S3's bucket rules as one pattern: no "xn--"/"sthree-" prefix, not an IPv4 address, no "..",
# no reserved suffix; 3-63 of [a-z0-9.-], starting and ending with a letter or digit.
_BUCKET_SCHEMA = (
    r"^(?!xn--)(?!sthree-)(?![0-9]{1,3}(\.[0-9]{1,3}){3}$)(?!.*\.\.)(?!.*-s3alias$)(?!.*--ol-s3$)"
    r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$(?!\n)"
)
# No leading "/", no ".." segment, no NUL. The byte limit is the models' (maxLength counts chars).
_KEY_SCHEMA = r"^(?!/)(?!([^/]*/)*\.\.(?![^/]))[^\x00]*$"

BucketName = Annotated[
    str,
    BeforeValidator(_check_bucket_text),
    _string(_BUCKET_SCHEMA, "An S3 bucket name (not a URL)", minLength=3, maxLength=63),
]
ObjectKey = Annotated[
    str,
    BeforeValidator(_check_key_text),
    _string(
        _KEY_SCHEMA,
        "An object key: no leading '/', no '..' segment, no NUL; at most 1024 bytes in UTF-8 "
        "(checked by the models; maxLength here counts characters)",
        minLength=1,
        maxLength=MAX_KEY_BYTES,
    ),
]
SafeId = Annotated[
    str,
    _check_pattern(_SAFE_ID, "id (letters, digits, '.', '_', '-')"),
    _string(_pattern(_SAFE_ID), "An id that is safe as a Kafka key and an S3 key segment"),
]
Text = Annotated[str, Field(min_length=1, max_length=256)]
ErrorCode = Annotated[
    str, _check_pattern(_ERROR_CODE, "error code (snake_case)"), _string(_pattern(_ERROR_CODE))
]
Currency = Annotated[
    str, _check_pattern(_CURRENCY, "ISO 4217 currency code"), _string(_pattern(_CURRENCY))
]


def _parse_timestamp(value: object) -> object:
    # Parsed here rather than by pydantic: after a before-validator the inner validator sees a
    # Python value, and strict mode would refuse the string.
    if not isinstance(value, str):
        return value
    if not _RFC3339.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 date-time with offset, e.g. '2025-01-31T12:00:00Z'"
        )
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a real date-time: {exc}") from exc


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_parse_timestamp),
    _string(
        _pattern(_RFC3339),
        "RFC 3339 date-time with an offset, e.g. 2025-01-31T12:00:00Z",
        format="date-time",
    ),
]
# The bound comes before the validator so that the schema generator still sees it.
Count = Annotated[int, Field(ge=0), BeforeValidator(_integral)]
PositiveCount = Annotated[int, Field(ge=1), BeforeValidator(_integral)]
Seconds = NonNegativeFloat
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
# The localizers a job may name on the wire; workers.localizers.registry registers one for each.
LocalizerName = Literal["vlm", "cv"]
LOCALIZER_NAMES: tuple[str, ...] = get_args(LocalizerName)


class Part(BaseModel):
    """A nested object of a document: typed fields strict, unknown fields kept."""

    model_config = ConfigDict(frozen=True, extra="allow", allow_inf_nan=False)


class ObjectRef(Part):
    """Where an object lives in the S3 store."""

    bucket: BucketName
    key: ObjectKey


class SourceObject(ObjectRef):
    """The uploaded video as the store described it; the etag pins one version of it."""

    etag: Annotated[str, Field(min_length=1, max_length=256)]
    size: Count


class ErrorInfo(Part):
    code: ErrorCode
    message: Annotated[str, Field(max_length=4000)]


class JobWarning(Part):
    """Something a job could not do as asked, said out loud instead of succeeding quietly.

    ``code`` is a stable slug (see docs/errors.md), ``count`` how many times it happened (model
    answers rejected, frames re-decoded, ...), ``chunks`` the chunk indexes it touched.
    """

    code: ErrorCode
    message: Annotated[str, Field(max_length=4000)]
    count: Count | None = None
    chunks: list[Count] | None = None


class UsagePart(Part):
    """The share of a job's usage one pass spent (already included in the job's totals)."""

    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    cost: NonNegativeFloat = 0.0
    requests: Count | None = None


class Usage(Part):
    """Model usage summed over a job and priced (zero for the cv localizer).

    ``refine`` is the part of the totals that boundary refinement spent, when it ran.
    ``cached_tokens`` is the part of ``prompt_tokens`` the model server says its prefix cache
    served (absent when it reported none).
    """

    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    cost: NonNegativeFloat = 0.0
    currency: Currency = "CNY"
    requests: Count | None = None
    refine: UsagePart | None = None
    cached_tokens: Count | None = None


def _document_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # The decoders demand ``schema`` (it has a default only so Python code need not repeat it),
    # and cross-field rules a subclass states in SCHEMA_RULES join its generated schema.
    schema["properties"]["schema"] = {"const": getattr(model, "SCHEMA", None)}
    schema["required"] = ["schema", *schema.get("required", [])]
    schema.update(copy.deepcopy(getattr(model, "SCHEMA_RULES", {})))


class Document(BaseModel):
    """A top-level versioned document. ``schema`` is aliased: BaseModel owns that name.

    Subclasses set ``SCHEMA`` (the version id) and may set ``SCHEMA_RULES``: the JSON Schema
    form (``if``/``then``/``else``, ``allOf``) of the cross-field checks their validators make.
    """

    SCHEMA: ClassVar[str]
    SCHEMA_RULES: ClassVar[dict[str, Any]] = {}

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        allow_inf_nan=False,
        serialize_by_alias=True,
        json_schema_extra=_document_schema,
    )
