"""The model answer v1: the JSON the prompt asks the vision-language model to write.

Two views of one shape. ``ANSWER_JSON_SCHEMA`` is strict, for the endpoint's structured output
(every field required, nothing else allowed); ``ModelAnswer`` is lenient, because models drift
anyway: it coerces numeric strings, fills a missing description, drops unknown keys, and leaves
range and order repairs (reversed or out-of-range times) to the answer parser that calls it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.codec import ContractError, load_object
from contracts.registry import schema_for

RESPONSE_FORMAT_NAME = "vidloc_events"


def _bare_answer_schema() -> dict[str, Any]:
    # Endpoints' structured-output validators know the keywords that shape output, not "$id".
    schema = schema_for("answer")
    for keyword in ("$schema", "$id", "$comment"):
        schema.pop(keyword, None)
    return schema


ANSWER_JSON_SCHEMA: dict[str, Any] = _bare_answer_schema()


def answer_response_format() -> dict[str, Any]:
    """The OpenAI ``response_format`` value asking for a schema-conforming answer (a fresh copy)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": RESPONSE_FORMAT_NAME,
            "schema": copy.deepcopy(ANSWER_JSON_SCHEMA),
            "strict": True,
        },
    }


class AnswerEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    label: str
    start_s: float
    end_s: float
    description: str = ""
    confidence: float | None = None


class ModelAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    events: list[AnswerEvent] = Field(default_factory=list)


def decode_answer(data: bytes | str | Mapping[str, Any]) -> ModelAnswer:
    """Validate an answer already cut out of the model's text (fences etc. are the parser's job)."""
    text, _ = load_object(data)
    try:
        return ModelAnswer.model_validate_json(text)
    except ValidationError as exc:
        raise ContractError.from_validation(exc) from exc
