"""The stored timeline document, built from a plan and events (pure, no job run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from contracts import IngestEvent, IngestOptions, SourceObject, decode_timeline, encode, schema_for
from workers.localizers.registry import localizer_kind
from workers.pipeline.planning import JobPlan
from workers.pipeline.timeline import build_timeline
from workers.refinement.refine import RefineOutcome
from workers.types import Chunk, DetectedEvent, TokenTally, VideoInfo

INFO = VideoInfo(duration_s=20.0, fps=25.0, width=1280, height=720, codec="h264")
EVENT = IngestEvent(
    event_id="e-1",
    source=SourceObject(bucket="videos", key="cams/a.mp4", etag="x", size=10),
    options=IngestOptions(prompt="when does the ball appear?", labels=["ball"]),
    submitted_at=datetime(2025, 1, 31, tzinfo=UTC),
)
EVENTS = (
    DetectedEvent("ball", 12.34567, 15.0, "a ball rolls in", 0.9, "vlm"),
    DetectedEvent("ball", 2.0, 3.0),
)
MODEL = {"name": "qwen", "base_url": "http://127.0.0.1:1/v1", "params": {"temperature": 0.1}}


def plan(localizer: str) -> JobPlan:
    times = tuple(float(t) for t in range(20))
    chunk = Chunk(0, 0.0, 20.0, times)
    return JobPlan(INFO, localizer_kind(localizer), 1.0, 30.0, 2.0, (448, 256), times, (chunk,))


@pytest.mark.parametrize("localizer", ["vlm", "cv"])
def test_timeline_is_a_valid_contract_document(localizer: str) -> None:
    timeline = build_timeline(
        EVENT,
        "j-1",
        plan(localizer),
        EVENTS,
        model=MODEL if localizer == "vlm" else None,
        usage=TokenTally(100, 10, 1),
        cost=0.5,
        currency="CNY",
        stats={"rejected_events": 2},
    )
    doc = json.loads(encode(timeline))
    jsonschema.Draft202012Validator(schema_for("timeline")).validate(doc)
    assert decode_timeline(encode(timeline)) == timeline
    assert doc["video_id"] == EVENT.effective_video_id and doc["job_id"] == "j-1"
    assert [(e["start_s"], e["source"]) for e in doc["events"]] == [
        (2.0, localizer),  # no source of its own: the localizer's name
        (12.346, "vlm"),  # times rounded to the millisecond, in timeline order
    ]
    assert doc["sampling"]["frames"] == 20 and doc["sampling"]["frame_size"] == [448, 256]
    assert doc["usage"]["cost"] == 0.5 and "refine" not in doc["usage"]
    assert doc["stats"]["rejected_events"] == 2
    assert ("model" in doc) is (localizer == "vlm")


def test_refinement_is_accounted_in_sampling_and_usage() -> None:
    refined = RefineOutcome(EVENTS, TokenTally(40, 4, 2), boundaries=2, moved=1, frames=16)
    timeline = build_timeline(
        EVENT,
        "j-1",
        plan("vlm"),
        refined.events,
        model=MODEL,
        usage=TokenTally(140, 14, 3),
        cost=0.7,
        currency="CNY",
        refined=refined,
        refine_cost=0.2,
    )
    assert timeline.sampling.refined_boundaries == 2 and timeline.sampling.refine_frames == 16
    assert timeline.usage.refine is not None
    assert (timeline.usage.refine.prompt_tokens, timeline.usage.refine.cost) == (40, 0.2)
