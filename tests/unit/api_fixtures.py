"""Shared builders for the API/viewer unit tests: contract documents and an in-memory store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from contracts import (
    ProgressEvent,
    ResultEvent,
    Timeline,
    decode_progress,
    decode_result,
    decode_timeline,
    encode,
)
from vidloc import names
from vidloc.adapters.object_store import ObjectInfo
from vidloc.errors import ObjectMissing, StorageUnavailable

EVENTS = (
    ("e1", "red circle", 1.0, 3.0, "a red circle appears"),
    ("e2", "green square", 5.0, 7.5, "a green square <b>moves</b>"),
    ("e3", "red circle", 8.0, 8.0, "a flash"),
    ("e4", "blue triangle", 6.5, 9.0, "a blue triangle"),
)


def timeline_doc(video_id: str = "vid-1", duration_s: float = 10.0, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "vidloc.timeline.v1",
        "video_id": video_id,
        "job_id": "job-1",
        "source": {"bucket": "videos", "key": f"uploads/{video_id}.mp4", "etag": "abc", "size": 10},
        "video": {
            "duration_s": duration_s,
            "fps": 10.0,
            "width": 320,
            "height": 180,
            "codec": "h264",
        },
        "localizer": "vlm",
        "model": {
            "name": "qwen/qwen3-vl-8b-instruct",
            "base_url": "http://m/v1",
            "params": {"seed": 7},
        },
        "prompt": "Find the shapes",
        "labels": ["red circle", "green square", "blue triangle"],
        "sampling": {
            "sample_fps": 1.0,
            "chunk_s": 30.0,
            "chunk_overlap_s": 2.0,
            "frames": 10,
            "chunks": 1,
        },
        "events": [
            {"id": i, "label": lab, "start_s": s, "end_s": e, "description": d, "confidence": 0.9}
            for i, lab, s, e, d in EVENTS
        ],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "cost": 0.0037,
            "currency": "CNY",
        },
        "created_at": "2025-01-31T12:00:00Z",
    }
    doc.update(extra)
    return doc


def make_timeline(video_id: str = "vid-1", **extra: Any) -> Timeline:
    return decode_timeline(timeline_doc(video_id, **extra))


def make_result(
    video_id: str,
    status: str = "succeeded",
    *,
    at: str = "2025-01-31T12:00:00Z",
    job: str = "job-1",
) -> ResultEvent:
    doc: dict[str, Any] = {
        "schema": "vidloc.result.v1",
        "event_id": f"ev-{video_id}-{at}",
        "video_id": video_id,
        "job_id": job,
        "status": status,
        "summary": {"events": 4, "duration_s": 10.0},
        "created_at": at,
    }
    if status == "succeeded":
        doc["source"] = {"bucket": "videos", "key": f"uploads/{video_id}.mp4"}
        doc["timeline"] = {"bucket": "timelines", "key": names.timeline_key(video_id)}
    else:
        doc["error"] = {"code": "decode_failed", "message": "the decoder gave up"}
    return decode_result(doc)


def make_progress(
    video_id: str,
    stage: str = "localizing",
    *,
    at: str = "2025-01-31T12:01:00Z",
    job: str = "job-2",
) -> ProgressEvent:
    return decode_progress(
        {
            "schema": "vidloc.progress.v1",
            "event_id": f"p-{video_id}-{at}",
            "video_id": video_id,
            "job_id": job,
            "stage": stage,
            "chunks_done": 1,
            "chunks_total": 3,
            "at": at,
        }
    )


class MemoryStore:
    """Just the ObjectStore methods the API reads, over a dict; ``down`` simulates an outage."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.down = False

    def put_timeline(self, timeline: Timeline, bucket: str = "timelines") -> None:
        self.objects[(bucket, names.timeline_key(timeline.video_id))] = encode(timeline)

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailable("the store is down")

    def get_bytes(self, bucket: str, key: str) -> bytes:
        self._check()
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise ObjectMissing(f"{bucket}/{key} does not exist") from None

    def exists(self, bucket: str, key: str) -> bool:
        self._check()
        return (bucket, key) in self.objects

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        self._check()
        return iter(sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix)))

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in self.list_keys(bucket, prefix):
            data = self.objects[(bucket, key)]
            yield ObjectInfo(bucket, key, len(data), hashlib.md5(data).hexdigest())

    def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(bucket, key)
        return data, hashlib.md5(data).hexdigest()

    def presigned_get_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        return f"http://s3.test/{bucket}/{key}?X-Amz-Expires={expires_s}"


class WritableStore(MemoryStore):
    """MemoryStore plus the writes an ask makes (analyses: tests of the API and the CLI)."""

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> ObjectInfo:
        self._check()
        self.objects[(bucket, key)] = data
        return ObjectInfo(bucket, key, len(data), "etag")

    def put_bytes_if(
        self, bucket: str, key: str, data: bytes, *, etag: str | None, content_type: str = ""
    ) -> ObjectInfo | None:
        """S3's conditional PUT: ``etag`` None only creates, else only over that version (the
        md5 that get_versioned gives)."""
        current = self.objects.get((bucket, key))
        if (etag is None) != (current is None):
            return None
        if current is not None and hashlib.md5(current).hexdigest() != etag:
            return None
        return self.put_bytes(bucket, key, data)

    def delete(self, bucket: str, key: str) -> None:
        self.objects.pop((bucket, key), None)

    def put_tenant_timeline(self, video_id: str, tenant: str | None, **extra: Any) -> None:
        source = {
            "bucket": "videos",
            "key": f"{names.tenant_root(tenant)}uploads/{video_id}.mp4",
            "etag": "etag-1",
            "size": 1234,
        }
        timeline = make_timeline(video_id, source=source, **extra)
        self.objects[("timelines", names.timeline_key(video_id, tenant))] = encode(timeline)
