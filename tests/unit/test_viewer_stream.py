"""The viewer page of a live stream's timeline (pure render): what viewer.js follows it by."""

from __future__ import annotations

from typing import Any

from contracts import decode_timeline
from vidloc.viewer.render import POLL_MS, render_viewer


def timeline(stream: dict[str, Any] | None) -> Any:
    doc: dict[str, Any] = {
        "schema": "vidloc.timeline.v1",
        "video_id": "cam-1",
        "job_id": "job-1",
        "source": {"bucket": "videos", "key": "hls/cam-1/seg001.ts", "etag": "e", "size": 1},
        "video": {"duration_s": 8.0, "fps": 10.0, "width": 320, "height": 180, "codec": "h264"},
        "localizer": "cv",
        "sampling": {"sample_fps": 2.0, "chunk_s": 30.0, "frames": 16, "chunks": 2},
        "events": [
            {"id": "s-00000", "label": "red circle", "start_s": 1.0, "end_s": 4.0},
            {"id": "s-00001", "label": "gap", "start_s": 4.0, "end_s": 6.0, "source": "stream"},
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.0},
        "created_at": "2026-01-02T03:04:05Z",
    }
    if stream is not None:
        doc["stream"] = stream
    return decode_timeline(doc)


def test_a_running_stream_page_follows_its_timeline() -> None:
    page = render_viewer(timeline({"stream_id": "cam-1", "last_seq": 3, "covered_s": 8.0}), None)
    assert 'data-live="1"' in page and f'data-poll-ms="{POLL_MS}"' in page
    assert 'data-video-id="cam-1"' in page
    assert "connect-src 'self'" in page  # its own timeline route, nothing else
    assert '<div id="live" class="live">live · 8.0 s covered' in page
    assert 'class="bar gap" type="button" data-event-id="s-00001"' in page
    assert 'class="bar" type="button" data-event-id="s-00000"' in page


def test_an_ended_stream_and_a_file_do_not_poll() -> None:
    ended = render_viewer(
        timeline({"stream_id": "cam-1", "last_seq": 3, "covered_s": 8.0, "ended": True}), None
    )
    assert 'data-live="0"' in ended and "connect-src" not in ended
    assert '<div id="live" class="live">stream ended' in ended
    plain = render_viewer(timeline(None), None)
    assert ' data-live="' not in plain and "connect-src" not in plain and 'id="live"' not in plain
