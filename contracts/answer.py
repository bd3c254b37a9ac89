"""The model answer v1: the JSON the prompt asks the vision-language model to write.

``ModelAnswer`` is the shape asked for, strict as endpoints' structured output wants it (every
field required, nothing else allowed); ``answer_schema`` / ``answer_response_format`` turn it into
what a request carries. Reading what a model actually wrote is lenient and lives with the
localizer (``workers.localizers.answer.read``), because models drift anyway.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.schemagen import inline_refs, model_schema

RESPONSE_FORMAT_NAME = "vidloc_events"


class AnswerEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(description="What happens, ideally one of the requested labels")
    start_s: float = Field(description="When it starts, in seconds from the start of the video")
    end_s: float = Field(description="When it ends, in seconds from the start of the video")
    description: str = Field(description="One sentence on what is seen")
    confidence: float = Field(description="0 to 1")


class ModelAnswer(BaseModel):
    """Events the model found in the frames it was shown, in seconds of the video."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: list[AnswerEvent]


@cache
def _bare_schema() -> dict[str, Any]:
    # Inlined: not every endpoint's guided decoding follows "$ref".
    return inline_refs(model_schema(ModelAnswer))


def answer_schema(labels: Sequence[str] = ()) -> dict[str, Any]:
    """The strict answer schema (a fresh copy); with labels, ``label`` may only be one of them,
    so guided decoding cannot emit a label nobody asked for."""
    schema = copy.deepcopy(_bare_schema())
    if labels:
        label = schema["properties"]["events"]["items"]["properties"]["label"]
        label["enum"] = list(dict.fromkeys(labels))
    return schema


def answer_response_format(labels: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAI ``response_format`` value asking for a schema-conforming answer."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": RESPONSE_FORMAT_NAME,
            "schema": answer_schema(labels),
            "strict": True,
        },
    }
