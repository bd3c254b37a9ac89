"""Every identity that decides "this work was already done" names the tenant and the object
version (docs/idempotency.md): two tenants' streams of one id, or two uploads under one key,
never share an event id, a segment video id, checkpoints or a work marker."""

from __future__ import annotations

import re
from typing import Any

from contracts import IngestEvent, SourceObject, derive_version_tag
from contracts.common import SAFE_ID_PATTERN
from producers.segments import segment_event_id, segment_key, state_key
from vidloc import names
from workers.live.segment_job import segment_video_id
from workers.service.dedup import marker_key

ACME = SourceObject(bucket="videos", key="tenants/acme/hls/cam1/seg0.ts", etag="e1", size=1)
BRAVO = SourceObject(bucket="videos", key="tenants/bravo/hls/cam1/seg0.ts", etag="e1", size=1)


def _segment(source: SourceObject, *, stream_id: str = "cam1", seq: int = 0) -> IngestEvent:
    doc: dict[str, Any] = {
        "event_id": segment_event_id(stream_id, seq, source),
        "video_id": stream_id,
        "source": source.model_dump(),
        "submitted_at": "2026-11-29T17:00:00Z",
        "stream": {
            "stream_id": stream_id,
            "seq": seq,
            "start_s": 0.0,
            "duration_s": 2.0,
            "wall_clock": "2026-11-29T17:00:00Z",
        },
    }
    return IngestEvent.model_validate(doc)


def test_the_version_tag_names_one_object_version() -> None:
    tag = derive_version_tag("videos", "tenants/acme/a.mp4", "e1")
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert derive_version_tag("videos", "tenants/acme/a.mp4", '"E1"') == tag  # quoted, any case
    assert derive_version_tag("videos", "tenants/bravo/a.mp4", "e1") != tag  # another tenant
    assert derive_version_tag("videos", "tenants/acme/a.mp4", "e2") != tag  # a new upload
    assert derive_version_tag("other", "tenants/acme/a.mp4", "e1") != tag


def test_segment_event_ids_keep_their_shape_and_name_tenant_and_version() -> None:
    acme = segment_event_id("cam1", 3, ACME)
    assert acme.startswith("stream-cam1-00000003-")
    assert acme == segment_event_id("cam1", 3, ACME)  # a re-sent segment: the same job
    assert acme != segment_event_id("cam1", 3, BRAVO)
    assert acme != segment_event_id("cam1", 3, ACME.model_copy(update={"etag": "e2"}))
    assert acme == segment_event_id("cam1", 3, ACME.model_copy(update={"etag": '"E1"'}))


def test_segment_video_ids_name_tenant_and_version_and_stay_safe_ids() -> None:
    acme, bravo = segment_video_id(_segment(ACME)), segment_video_id(_segment(BRAVO))
    assert acme.startswith("cam1.0.") and acme != bravo
    assert acme != segment_video_id(_segment(ACME.model_copy(update={"etag": "e2"})))
    longest = segment_video_id(_segment(ACME, stream_id="c" * 128, seq=10**12))
    assert re.fullmatch(SAFE_ID_PATTERN, longest)
    assert longest.endswith(f".{10**12}.{derive_version_tag('videos', ACME.key, 'e1')}")


def test_checkpoints_work_markers_and_stream_state_live_under_the_tenant() -> None:
    assert names.checkpoint_prefix("v", "j") == "checkpoints/v/j/"
    assert names.checkpoint_prefix("v", "j", "acme") == "tenants/acme/checkpoints/v/j/"
    assert names.checkpoint_key("v", "j", 2, "acme") == (
        "tenants/acme/checkpoints/v/j/chunk-00002.json"
    )
    assert marker_key("v", "w-1") == "work/v/w-1.json"
    assert marker_key("v", "w-1", "acme") == "tenants/acme/work/v/w-1.json"
    assert state_key("cam1") == "streams/cam1/state.json"
    assert state_key("cam1", "acme") == "tenants/acme/streams/cam1/state.json"
    assert segment_key("cam1", 7, "acme") == "tenants/acme/streams/cam1/00000007.ts"
