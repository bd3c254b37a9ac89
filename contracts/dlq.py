"""``video.ingest.dlq`` v1: a message that can never succeed, kept with why and where from.

``original`` holds the message as it came: parsed JSON when it was JSON (readable in any Kafka
tool), else its text, else base64 of its bytes. ``original_encoding`` says which; when it is
absent a string means text and anything else JSON, which is what a producer that only had the
text would write.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, JsonValue, model_validator

from contracts.codec import ContractError, FieldProblem, decode_document, load_json
from contracts.common import Count, Document, ErrorInfo, Part, PositiveCount, Timestamp
from contracts.limits import EMBEDDED_LIMITS
from contracts.versions import DLQ_V1

OriginalEncoding = Literal["json", "text", "base64"]
BASE64_PATTERN = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_BASE64 = re.compile(BASE64_PATTERN)


def wrap_original(raw: bytes) -> tuple[JsonValue, OriginalEncoding]:
    """The most readable faithful form of a message's bytes, for ``original``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
    try:
        _, value = load_json(text, EMBEDDED_LIMITS)
    except ContractError:  # not JSON, or too deep to nest in a record (the parser recurses)
        return text, "text"
    return value, "json"


class MessageSource(Part):
    """Where the message sat, so it can be found and replayed."""

    topic: Annotated[str, Field(min_length=1, max_length=249)]
    partition: Count
    offset: Count
    key: str | None = None


class DlqRecord(Document):
    SCHEMA: ClassVar[str] = DLQ_V1
    # _original_fits_encoding below, as JSON Schema says it.
    SCHEMA_RULES: ClassVar[dict[str, Any]] = {
        "allOf": [
            {
                "if": {
                    "properties": {"original_encoding": {"enum": ["text", "base64"]}},
                    "required": ["original_encoding"],
                },
                "then": {"required": ["original"], "properties": {"original": {"type": "string"}}},
            },
            {
                "if": {
                    "properties": {"original_encoding": {"const": "base64"}},
                    "required": ["original_encoding"],
                },
                "then": {"properties": {"original": {"pattern": f"^{BASE64_PATTERN}$(?!\\n)"}}},
            },
        ]
    }

    schema_id: Literal["vidloc.dlq.v1"] = Field(default=DLQ_V1, alias="schema")
    original: JsonValue = Field(
        default=None,
        description="The message: parsed JSON, its text, or base64 of its bytes "
        "(see original_encoding); absent means JSON null",
    )
    original_encoding: OriginalEncoding | None = Field(
        default=None, description="Absent: a string is text, anything else JSON"
    )
    error: ErrorInfo
    failed_at: Timestamp
    source: MessageSource
    event_id: str | None = None
    video_id: str | None = None
    job_id: str | None = None
    attempts: PositiveCount | None = None

    @model_validator(mode="after")
    def _original_fits_encoding(self) -> DlqRecord:
        if self.original_encoding in ("text", "base64") and not isinstance(self.original, str):
            raise FieldProblem(
                "original", f"must be a string when encoding is {self.original_encoding!r}"
            )
        if self.original_encoding == "base64" and not _BASE64.fullmatch(str(self.original)):
            raise FieldProblem("original", "not padded standard base64")
        return self

    def original_bytes(self) -> bytes:
        """The message back as bytes, e.g. to replay it (JSON comes back compact, not verbatim)."""
        encoding = self.original_encoding
        if encoding is None:
            encoding = "text" if isinstance(self.original, str) else "json"
        if encoding == "base64":
            return base64.b64decode(str(self.original), validate=True)
        if encoding == "text":
            return str(self.original).encode("utf-8")
        return json.dumps(self.original, separators=(",", ":"), ensure_ascii=False).encode()


def decode_dlq(data: bytes | str | Mapping[str, Any]) -> DlqRecord:
    return decode_document(data, DlqRecord, DLQ_V1)
