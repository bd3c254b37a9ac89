"""Bytes <-> models for every contract, and the one error a bad document raises.

Decoding is strict about types (``"5"`` is not a number, a date-time needs an offset) because a
producer that sends the wrong type has a bug worth hearing about; it is tolerant about unknown
fields, because "add fields freely" is how the contracts evolve without a version bump.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from contracts.limits import (
    DOCUMENT_LIMITS,
    MESSAGE_LIMITS,
    JsonLimits,
    LimitExceeded,
    check_shape,
    check_size,
)
from contracts.versions import INGEST_V1, INGEST_V2

ROOT = "$"  # ContractError.field for a problem with the document as a whole
# Documents anyone can send get the strict limits; the ones vidloc writes only a depth limit.
LIMITS_BY_SCHEMA: dict[str, JsonLimits] = {INGEST_V1: MESSAGE_LIMITS, INGEST_V2: MESSAGE_LIMITS}

Model = TypeVar("Model", bound=BaseModel)
_T = TypeVar("_T")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class ContractError(ValueError):
    """A document does not match its contract.

    ``field`` is the dotted path of the first bad field (``source.bucket``, ``events.2.end_s``),
    or ``"$"`` when the document itself is unusable (not JSON, not an object). The message always
    starts with that path, so it can go straight into a failed result or a DLQ record.
    ``code`` is set when the document broke one of its :mod:`contracts.limits` (e.g.
    ``message_too_deep``), so a refusal can say so without parsing the message.
    """

    def __init__(self, field: str, reason: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code

    @classmethod
    def from_validation(cls, exc: ValidationError) -> ContractError:
        first = exc.errors(include_url=False)[0]
        parts = [str(p) for p in first["loc"]]
        reason = first["msg"].removeprefix("Value error, ")
        cause = first.get("ctx", {}).get("error")
        # Cross-field checks run on the whole object; they say which field they blame.
        blamed = getattr(cause, "field", None)
        if isinstance(blamed, str):
            parts.append(blamed)
        return cls(".".join(parts) or ROOT, reason)


class FieldProblem(ValueError):
    """Raised inside model validators to name the field a cross-field rule blames."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def encode(model: BaseModel) -> bytes:
    """Compact UTF-8 JSON. Absent optional fields are left out rather than sent as null."""
    return model.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # 1e999 is valid JSON but parses to inf, which no encoder downstream (pydantic, the DLQ
    # record, JSON logs) accepts: refuse it here like NaN and Infinity.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of the range of a finite number")
    return value


def load_json(
    data: bytes | str | Mapping[str, Any], limits: JsonLimits = DOCUMENT_LIMITS
) -> tuple[str, Any]:
    """Return the document as JSON text plus its parsed value, or raise ContractError.

    ``limits`` are checked before the (recursive) parser runs, so no input can make it raise
    anything but ContractError.
    """
    if isinstance(data, Mapping):
        try:
            text = json.dumps(data, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ContractError(ROOT, f"not representable as JSON: {exc}") from exc
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        _check(check_size, len(raw), limits)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError(ROOT, f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    elif isinstance(data, str):
        text = data
    else:
        raise ContractError(ROOT, f"expected bytes, str or a mapping, got {type(data).__name__}")
    if not isinstance(data, bytes | bytearray | memoryview):
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ContractError(ROOT, f"not UTF-8: {exc.reason} at {exc.start}") from exc
        _check(check_size, size, limits)
    _check(check_shape, text, limits)
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ContractError(
            ROOT, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: only if a limit is off
        raise ContractError(ROOT, f"malformed JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(text):
        # "\ud800" alone is valid JSON but no valid text: it would break every encoder (S3
        # keys, ids, logs) downstream. Paired escapes (an emoji) pass.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ContractError(ROOT, "malformed JSON: a string holds a lone surrogate") from exc
    return text, value


def load_object(
    data: bytes | str | Mapping[str, Any], limits: JsonLimits = DOCUMENT_LIMITS
) -> tuple[str, dict[str, Any]]:
    """Return the document as JSON text plus its parsed object, or raise ContractError."""
    text, obj = load_json(data, limits)
    if not isinstance(obj, dict):
        raise ContractError(ROOT, f"expected a JSON object, got {_json_type(obj)}")
    return text, obj


def _check(check: Callable[[_T, JsonLimits], None], value: _T, limits: JsonLimits) -> None:
    try:
        check(value, limits)
    except LimitExceeded as exc:
        raise ContractError(ROOT, exc.reason, code=exc.code) from exc


def check_version(obj: Mapping[str, Any], expected: str | tuple[str, ...]) -> None:
    accepted = (expected,) if isinstance(expected, str) else expected
    said = " or ".join(repr(v) for v in accepted)
    if "schema" not in obj:
        raise ContractError("schema", f"missing (expected {said})")
    found = obj["schema"]
    if found not in accepted:
        raise ContractError("schema", f"unknown schema {found!r} (expected {said})")


def decode_document(
    data: bytes | str | Mapping[str, Any],
    model: type[Model],
    expected: str | tuple[str, ...],
    limits: JsonLimits | None = None,
) -> Model:
    """Decode a versioned document: JSON object, known ``schema`` id (one of ``expected``),
    strict field types.

    ``limits`` default to those of the schema (:data:`LIMITS_BY_SCHEMA`; every accepted
    version of one contract has the same).
    """
    first = expected if isinstance(expected, str) else expected[0]
    text, obj = load_object(
        data, LIMITS_BY_SCHEMA.get(first, DOCUMENT_LIMITS) if limits is None else limits
    )
    check_version(obj, expected)
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ContractError.from_validation(exc) from exc


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"
