"""Bytes <-> models for every contract, and the one error a bad document raises.

Decoding is strict about types (``"5"`` is not a number, a date-time needs an offset) because a
producer that sends the wrong type has a bug worth hearing about; it is tolerant about unknown
fields, because "add fields freely" is how the contracts evolve without a version bump.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

ROOT = "$"  # ContractError.field for a problem with the document as a whole

Model = TypeVar("Model", bound=BaseModel)


class ContractError(ValueError):
    """A document does not match its contract.

    ``field`` is the dotted path of the first bad field (``source.bucket``, ``events.2.end_s``),
    or ``"$"`` when the document itself is unusable (not JSON, not an object). The message always
    starts with that path, so it can go straight into a failed result or a DLQ record.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

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


def load_object(data: bytes | str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Return the document as JSON text plus its parsed object, or raise ContractError."""
    if isinstance(data, Mapping):
        try:
            text = json.dumps(data, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ContractError(ROOT, f"not representable as JSON: {exc}") from exc
    elif isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError(ROOT, f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    elif isinstance(data, str):
        text = data
    else:
        raise ContractError(ROOT, f"expected bytes, str or a mapping, got {type(data).__name__}")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ContractError(
            ROOT, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except ValueError as exc:
        raise ContractError(ROOT, f"malformed JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ContractError(ROOT, f"expected a JSON object, got {_json_type(obj)}")
    return text, obj


def check_version(obj: Mapping[str, Any], expected: str) -> None:
    if "schema" not in obj:
        raise ContractError("schema", f"missing (expected {expected!r})")
    found = obj["schema"]
    if found != expected:
        raise ContractError("schema", f"unknown schema {found!r} (expected {expected!r})")


def decode_document(
    data: bytes | str | Mapping[str, Any], model: type[Model], expected: str
) -> Model:
    """Decode a versioned document: JSON object, known ``schema`` id, strict field types."""
    text, obj = load_object(data)
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
