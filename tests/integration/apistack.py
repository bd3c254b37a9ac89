"""Helpers for the API, viewer and CLI integration tests: documents put on the real stack.

Each test module uses buckets of its own for videos and timelines, so listing them shows only
what the module stored; events go on the real ``video.results`` / ``video.progress`` topics
under unique video ids, which other consumers skip.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from contracts import ResultEvent, decode_progress, decode_result, decode_timeline, encode
from devkit.synth.spec import VideoSpec
from vidloc import names
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def isolated_settings(settings: Settings, tag: str) -> Settings:
    """A copy of ``settings`` with fresh video and timeline buckets (created here)."""
    suffix = uuid.uuid4().hex[:8]
    isolated = settings.model_copy(
        update={
            "video_bucket": f"{tag}-videos-{suffix}",
            "timeline_bucket": f"{tag}-timelines-{suffix}",
        }
    )
    store = ObjectStore(isolated)
    store.ensure_bucket(isolated.video_bucket)
    store.ensure_bucket(isolated.timeline_bucket)
    return isolated


def timeline_for(
    video_id: str,
    bucket: str,
    key: str,
    spec: VideoSpec | None = None,
    events: list[tuple[str, float, float]] | None = None,
) -> dict[str, Any]:
    """A valid timeline document; events from ``spec``'s ground truth unless given."""
    if events is None:
        assert spec is not None
        events = [(e.label, e.start_s, e.end_s) for e in spec.events]
    duration = spec.duration_s if spec is not None else 12.0
    return {
        "schema": "vidloc.timeline.v1",
        "video_id": video_id,
        "job_id": f"job-{video_id}",
        "source": {"bucket": bucket, "key": key, "etag": "e0", "size": 1},
        "video": {
            "duration_s": duration,
            "fps": 10.0,
            "width": 320,
            "height": 180,
            "codec": spec.codec if spec is not None else "h264",
        },
        "localizer": "vlm",
        "model": {"name": "qwen/qwen3-vl-8b-instruct", "base_url": "http://fake/v1", "params": {}},
        "prompt": "Find the coloured shapes",
        "labels": sorted({label for label, _, _ in events}),
        "sampling": {"sample_fps": 1.0, "chunk_s": 30.0, "frames": int(duration), "chunks": 1},
        "events": [
            {
                "id": f"ev{i}",
                "label": label,
                "start_s": start,
                "end_s": end,
                "description": f"{label} from {start:g} s to {end:g} s",
                "confidence": 0.8,
            }
            for i, (label, start, end) in enumerate(events)
        ],
        "usage": {"prompt_tokens": 900, "completion_tokens": 60, "cost": 0.0028, "currency": "CNY"},
        "created_at": now(),
    }


def put_timeline(settings: Settings, doc: dict[str, Any]) -> None:
    timeline = decode_timeline(doc)  # only valid documents go in
    ObjectStore(settings).put_bytes(
        settings.timeline_bucket, names.timeline_key(timeline.video_id), encode(timeline)
    )


def publish_failed(publisher: EventPublisher, video_id: str) -> None:
    result = decode_result(
        {
            "schema": "vidloc.result.v1",
            "event_id": unique_id("api-test"),
            "video_id": video_id,
            "job_id": f"job-{video_id}",
            "status": "failed",
            "error": {"code": "not_a_video", "message": "no decodable video stream"},
            "created_at": now(),
        }
    )
    publisher.publish(names.TOPIC_RESULTS, video_id, encode(result))


def publish_succeeded(publisher: EventPublisher, settings: Settings, video_id: str) -> None:
    result = decode_result(
        {
            "schema": "vidloc.result.v1",
            "event_id": unique_id("api-test"),
            "video_id": video_id,
            "job_id": f"job-{video_id}",
            "status": "succeeded",
            "source": {"bucket": settings.video_bucket, "key": f"uploads/{video_id}.mp4"},
            "timeline": {"bucket": settings.timeline_bucket, "key": names.timeline_key(video_id)},
            "summary": {"events": 3, "duration_s": 12.0},
            "created_at": now(),
        }
    )
    publisher.publish(names.TOPIC_RESULTS, video_id, encode(result))


def publish_progress(publisher: EventPublisher, video_id: str, stage: str = "localizing") -> None:
    progress = decode_progress(
        {
            "schema": "vidloc.progress.v1",
            "event_id": unique_id("api-test"),
            "video_id": video_id,
            "job_id": f"job-{video_id}",
            "stage": stage,
            "chunks_done": 2,
            "chunks_total": 5,
            "at": now(),
        }
    )
    publisher.publish(names.TOPIC_PROGRESS, video_id, encode(progress))


def wait_succeeded(watcher: Any, video_id: str, timeout_s: float) -> ResultEvent:
    """The first succeeded result for ``video_id`` seen by ``watcher`` (a pipeline.Watcher).

    Other sessions' test workers share video.ingest and refuse a message of another bucket
    with a failed result, so "the first result" may be theirs; ours is the one that succeeds.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        watcher.drain(0.5)
        for result in watcher.seen.results.get(video_id, []):
            if result.status == "succeeded":
                return result
    raise AssertionError(
        f"no succeeded result for {video_id} in {timeout_s:.0f} s: "
        f"{[(r.status, r.error) for r in watcher.seen.results.get(video_id, [])]}"
    )
