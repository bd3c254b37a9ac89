"""Every contract's JSON Schema: generated from its model, checked in under ``schemas/``.

``generate_schemas()`` builds them (pure); ``python -m contracts.generate`` writes them;
``schema_for(name)`` reads the checked-in file from the installed package (package data, not I/O
on the world). A unit test regenerates in memory and fails when the files are stale.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from pydantic import BaseModel

from contracts.answer import ModelAnswer, answer_schema
from contracts.dlq import DlqRecord
from contracts.ingest import IngestEvent
from contracts.progress import ProgressEvent
from contracts.result import ResultEvent
from contracts.schemagen import DRAFT_2020_12, model_schema
from contracts.timeline import Timeline
from contracts.versions import INGEST_V2, SCHEMA_IDS, schema_file, schema_url

SCHEMA_NAMES: tuple[str, ...] = tuple(SCHEMA_IDS)
REGENERATE_COMMAND = "python -m contracts.generate"


class Contract(NamedTuple):
    model: type[BaseModel]
    title: str
    description: str
    comment: str | None = None  # rules only the models enforce


CONTRACTS: dict[str, Contract] = {
    "ingest": Contract(
        IngestEvent,
        "vidloc ingest event v1",
        "One video to localize, as sent on video.ingest. Unknown top-level fields are allowed; "
        "unknown options are not (use options.extra).",
        "Model-only rule: source.key is at most 1024 bytes in UTF-8.",
    ),
    "ingest_v2": Contract(
        IngestEvent,
        "vidloc ingest event v2",
        "A new analysis of an already analysed video, as sent on video.ingest: the v1 fields "
        "plus analysis; the question is options.prompt and options.labels.",
        "Model-only rules: source.key is at most 1024 bytes in UTF-8; options.prompt is not "
        "blank or options.labels is not empty; analysis.id is not 'default'; no stream part.",
    ),
    "progress": Contract(
        ProgressEvent,
        "vidloc progress event v1",
        "How far a job has come, as sent on video.progress.",
    ),
    "result": Contract(
        ResultEvent,
        "vidloc result event v1",
        "How a job ended, as sent on video.results: timeline exactly on success, error exactly "
        "on failure.",
        "Model-only rule: object keys are at most 1024 bytes in UTF-8.",
    ),
    "timeline": Contract(
        Timeline,
        "vidloc timeline v1",
        "What a job found in one video version, stored as JSON in the timeline bucket.",
        "Model-only rules: events[].end_s >= events[].start_s; source.key at most 1024 bytes "
        "in UTF-8.",
    ),
    "answer": Contract(
        ModelAnswer,
        "vidloc model answer v1",
        "Events the model found in the frames it was shown, in seconds of the video.",
    ),
    "dlq": Contract(
        DlqRecord,
        "vidloc dead-letter record v1",
        "A video.ingest message that can never succeed, with the error and where it came from.",
    ),
}


def generate_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one contract, built from its model."""
    contract = CONTRACTS[name]
    # The answer's schema is the one requests carry, so it is built where requests get it.
    body = answer_schema() if name == "answer" else model_schema(contract.model)
    body.pop("description", None)
    if contract.model is IngestEvent:
        body = _one_ingest_version(body, SCHEMA_IDS[name])
    head: dict[str, Any] = {
        "$schema": DRAFT_2020_12,
        "$id": schema_url(name),
        "title": contract.title,
        "description": contract.description,
    }
    if contract.comment:
        head["$comment"] = contract.comment
    return {**head, **body}


def _one_ingest_version(body: dict[str, Any], version: str) -> dict[str, Any]:
    # One model reads both ingest versions; each file describes one: its own id, and
    # ``analysis`` absent from v1 and required by v2.
    properties = dict(body["properties"])
    properties["schema"] = {**properties["schema"], "const": version}
    properties["schema"].pop("enum", None)
    required = list(body.get("required", []))
    if version == INGEST_V2:
        required.append("analysis")
        return {**body, "properties": properties, "required": required}
    properties.pop("analysis")
    defs = {k: v for k, v in body["$defs"].items() if k != "AnalysisRequest"}
    return {**body, "properties": properties, "required": required, "$defs": defs}


def generate_schemas() -> dict[str, dict[str, Any]]:
    """Every contract's JSON Schema by name, as ``schemas/<file>`` should hold it."""
    return {name: generate_schema(name) for name in SCHEMA_NAMES}


# Keywords a reader looks for first; pydantic sorts them alphabetically, which buries "type".
_LEADING = ("$schema", "$id", "title", "description", "$comment", "type", "required")
_TRAILING = ("$defs",)
_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")  # name -> schema, names kept in order


def _reading_order(node: Any) -> Any:
    if isinstance(node, list):
        return [_reading_order(item) for item in node]
    if not isinstance(node, dict):
        return node
    keys = [k for k in _LEADING if k in node]
    keys += [k for k in node if k not in _LEADING and k not in _TRAILING]
    keys += [k for k in _TRAILING if k in node]
    out = {}
    for key in keys:
        value = node[key]
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _reading_order(sub) for name, sub in value.items()}
        elif key in ("const", "default", "enum", "examples"):
            out[key] = value  # values, not schemas
        else:
            out[key] = _reading_order(value)
    return out


def render(schema: dict[str, Any]) -> str:
    """The checked-in text of a schema: keywords in reading order, two-space indent."""
    return json.dumps(_reading_order(schema), indent=2, ensure_ascii=False) + "\n"


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("contracts").joinpath("schemas", schema_file(name)).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a contract, by name: ``schema_for("ingest")``.

    Returns a copy; callers may change it freely.
    """
    if name not in SCHEMA_IDS:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return copy.deepcopy(_load(name))
