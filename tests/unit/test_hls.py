"""HLS from the bucket: playlist parsing, the stream clock, and the bridge's routing (pure), plus
the follower and forward_notification with an in-memory store and publisher."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from contracts import decode_ingest, derive_version_tag
from producers.bridge import SeenObjects, forward_notification, ingest_events_from_notification
from producers.hls import (
    BridgeState,
    HlsPrefix,
    MediaPlaylist,
    PlaylistError,
    PlaylistSegment,
    hls_prefix_of,
    parse_playlist,
    plan_segments,
    segment_object_key,
    state_key,
)
from producers.hls_bridge import HlsFollower
from vidloc.adapters.object_store import ObjectInfo, ObjectStore
from vidloc.errors import ObjectMissing

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T0 = NOW.timestamp()

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXTINF:2.000000,
index0.ts
#EXTINF:2.000000,
index1.ts
#EXTINF:1.500000,
index2.ts
"""


def playlist(*durations: float, first: int = 0, ended: bool = False) -> MediaPlaylist:
    segs = tuple(PlaylistSegment(first + i, f"s{first + i}.ts", d) for i, d in enumerate(durations))
    return MediaPlaylist(first, segs, ended)


def test_parses_an_ffmpeg_playlist() -> None:
    parsed = parse_playlist(FFMPEG_PLAYLIST)
    assert [(s.media_seq, s.uri, s.duration_s) for s in parsed.segments] == [
        (0, "index0.ts", 2.0),
        (1, "index1.ts", 2.0),
        (2, "index2.ts", 1.5),
    ]
    assert not parsed.ended
    assert not any(s.discontinuity for s in parsed.segments)
    assert parse_playlist(FFMPEG_PLAYLIST + "#EXT-X-ENDLIST\n").ended


def test_parses_media_sequence_discontinuity_and_program_date_time() -> None:
    text = (
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.500Z\n#EXTINF:4,title\na.ts\n"
        "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:20+00:00\n"
        "#EXTINF:4.0,\nsub/b.ts?token=1\n"
    )
    a, b = parse_playlist(text).segments
    assert (a.media_seq, a.discontinuity) == (7, False)
    assert a.program_date_time == datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
    assert (b.media_seq, b.uri, b.discontinuity) == (8, "sub/b.ts?token=1", True)
    assert b.program_date_time == datetime(2026, 1, 2, 3, 4, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not a playlist\n", id="no-header"),
        pytest.param("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n", id="master"),
        pytest.param("#EXTM3U\nseg.ts\n", id="no-extinf"),
        pytest.param("#EXTM3U\n#EXTINF:abc,\nseg.ts\n", id="bad-duration"),
    ],
)
def test_refuses_what_it_cannot_follow(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse_playlist(text)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("hls/cam-1/index.m3u8", HlsPrefix("cam-1", None, "hls/cam-1/")),
        ("hls/cam-1/low/index.m3u8", HlsPrefix("cam-1", None, "hls/cam-1/low/")),
        ("tenants/acme/hls/cam.2/x.ts", HlsPrefix("cam.2", "acme", "tenants/acme/hls/cam.2/")),
        ("uploads/hls/cam/index.m3u8", None),
        ("hls/index.m3u8", None),
        ("hls/bad id/index.m3u8", None),
    ],
)
def test_stream_of_a_key(key: str, expected: HlsPrefix | None) -> None:
    assert hls_prefix_of(key) == expected


def test_segment_keys_stay_under_their_stream() -> None:
    prefix = HlsPrefix("cam", None, "hls/cam/low/")
    assert segment_object_key(prefix, "seg1.ts") == "hls/cam/low/seg1.ts"
    assert segment_object_key(prefix, "../seg1.ts?x=1") == "hls/cam/seg1.ts"
    assert segment_object_key(prefix, "../../other/seg1.ts") is None
    assert segment_object_key(prefix, "https://cdn.example/seg1.ts") is None
    assert segment_object_key(prefix, "/hls/cam/seg1.ts") is None
    assert state_key(prefix) == "streams/cam/hls-bridge.json"
    assert state_key(HlsPrefix("cam", "acme", "x/")) == "tenants/acme/streams/cam/hls-bridge.json"


def test_a_growing_playlist_is_bridged_once_segment_by_segment() -> None:
    state = BridgeState("cam")
    first = plan_segments(playlist(2.0), state, now=T0)
    assert [(s.seq, s.start_s, s.duration_s, s.gap_before_s) for s in first.segments] == [
        (0, 0.0, 2.0, 0.0)
    ]
    # The playlist was written as its segment ended: the segment started 2 s before.
    assert first.segments[0].wall_clock == pytest.approx(T0 - 2.0)
    second = plan_segments(playlist(2.0, 2.0, 1.5), first.state, now=T0 + 4)
    assert [(s.seq, s.start_s, s.duration_s) for s in second.segments] == [
        (1, 2.0, 2.0),
        (2, 4.0, 1.5),
    ]
    assert [s.wall_clock for s in second.segments] == pytest.approx([T0, T0 + 2])
    assert (second.state.next_seq, second.state.end_s) == (3, 5.5)
    again = plan_segments(playlist(2.0, 2.0, 1.5), second.state, now=T0 + 9)
    assert again.segments == () and not again.end_of_stream and again.state == second.state


def test_endlist_announces_the_end_once() -> None:
    running = plan_segments(playlist(2.0, 2.0), BridgeState("cam"), now=T0).state
    final = plan_segments(playlist(2.0, 2.0, 1.0, ended=True), running, now=T0 + 1)
    assert [s.seq for s in final.segments] == [2]
    assert final.end_of_stream and final.state.ended
    assert final.state.next_seq == 4  # seq 3 is the end marker
    resent = plan_segments(playlist(2.0, 2.0, 1.0, ended=True), final.state, now=T0 + 5)
    assert resent.segments == () and not resent.end_of_stream
    # ENDLIST written in a playlist version of its own still ends the stream.
    late = plan_segments(playlist(2.0, 2.0, ended=True), running, now=T0 + 1)
    assert late.segments == () and late.end_of_stream


def test_a_discontinuity_reanchors_on_program_date_time_and_makes_a_gap() -> None:
    def at(s: float) -> datetime:
        return datetime.fromtimestamp(T0 + s, UTC)

    segs = (
        PlaylistSegment(0, "a.ts", 2.0, program_date_time=at(0)),
        PlaylistSegment(1, "b.ts", 2.0, program_date_time=at(2)),
        # The encoder restarted: 6 s of the source were never written.
        PlaylistSegment(2, "c.ts", 2.0, discontinuity=True, program_date_time=at(10)),
    )
    plan = plan_segments(MediaPlaylist(0, segs, False), BridgeState("cam"), now=T0 + 99)
    assert [(s.start_s, s.gap_before_s) for s in plan.segments] == [
        (0.0, 0.0),
        (2.0, 0.0),
        (10.0, 6.0),
    ]
    assert plan.segments[2].wall_clock == pytest.approx(T0 + 10)


def test_segments_that_slid_out_unseen_become_a_gap_by_the_wall_clock() -> None:
    seen = plan_segments(playlist(2.0), BridgeState("cam"), now=T0).state
    # The bridge was away: seqs 1-4 (8 s) left the window; the newest ended 12 s after seq 0.
    plan = plan_segments(playlist(2.0, 2.0, first=5), seen, now=T0 + 12)
    assert [(s.seq, s.start_s, s.gap_before_s) for s in plan.segments] == [
        (5, 10.0, 8.0),
        (6, 12.0, 0.0),
    ]
    # A discontinuity with no time lost by the wall clock is no gap.
    segs = (PlaylistSegment(1, "b.ts", 2.0, discontinuity=True),)
    plan = plan_segments(MediaPlaylist(1, segs, False), seen, now=T0 + 2)
    assert [(s.start_s, s.gap_before_s) for s in plan.segments] == [(2.0, 0.0)]


def test_state_round_trips() -> None:
    state = BridgeState("cam", 4, 7.5, T0, True, {"bucket": "b", "key": "k", "etag": "e"})
    decoded = BridgeState.decode(state.encode(), "cam")
    assert decoded == state and decoded.last_source == state.last_source
    with pytest.raises(ValueError, match="cam2"):
        BridgeState.decode(state.encode(), "cam2")


def _record(key: str, etag: str = "e1") -> dict[str, Any]:
    return {
        "eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": "videos"}, "object": {"key": key, "size": 10, "eTag": etag}},
    }


def _notification(*keys: str, etag: str = "e1") -> bytes:
    return json.dumps({"Records": [_record(k, etag) for k in keys]}).encode()


def test_notifications_route_playlists_and_leave_their_segments_to_them() -> None:
    decision = ingest_events_from_notification(
        _notification("hls/cam/index.m3u8", "hls/cam/index3.ts", "uploads/clip.ts"),
        video_bucket="videos",
        now=NOW,
    )
    assert [p.key for p in decision.playlists] == ["hls/cam/index.m3u8"]
    assert [e.source.key for e in decision.events] == ["uploads/clip.ts"]
    assert [k for k, _ in decision.skipped] == ["hls/cam/index3.ts"]
    # A playlist outside hls/ is not a video and not a stream.
    other = ingest_events_from_notification(
        _notification("uploads/index.m3u8"), video_bucket="videos", now=NOW
    )
    assert other.playlists == [] and other.events == []


@dataclass
class MemoryStore:
    objects: dict[str, bytes]

    def get_bytes(self, bucket: str, key: str) -> bytes:
        if key not in self.objects:
            raise ObjectMissing(f"{bucket}/{key}")
        return self.objects[key]

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        data = self.get_bytes(bucket, key)
        return ObjectInfo(bucket=bucket, key=key, size=len(data), etag=f"etag-{key}")

    def put_bytes(self, bucket: str, key: str, data: bytes) -> ObjectInfo:
        self.objects[key] = data
        return self.stat(bucket, key)


class Recorder:
    def __init__(self, store: MemoryStore) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self._store = store

    def publish(self, topic: str, key: str, value: bytes, *, timeout_s: float = 30.0) -> None:
        # Published before the state remembers it: a crash in between repeats, never loses.
        stored = self._store.objects.get("streams/cam/hls-bridge.json")
        remembered = BridgeState.decode(stored, "cam").next_seq if stored else 0
        stream = decode_ingest(value).stream
        assert stream is not None and stream.seq >= remembered
        self.sent.append((topic, key, value))


def test_follower_bridges_new_segments_keyed_by_stream_then_remembers_them() -> None:
    store = MemoryStore({"hls/cam/index0.ts": b"x" * 5, "hls/cam/index1.ts": b"y" * 7})
    store.objects["hls/cam/index.m3u8"] = "\n".join(FFMPEG_PLAYLIST.splitlines()[:8]).encode()
    follower = HlsFollower(cast(ObjectStore, store), video_bucket="videos")
    publisher, seen = Recorder(store), SeenObjects()

    def forward(etag: str, at: datetime = NOW) -> int:
        payload = _notification("hls/cam/index.m3u8", etag=etag)
        return forward_notification(
            payload, video_bucket="videos", publisher=publisher, seen=seen, now=at, hls=follower
        )

    assert forward("v1") == 2
    assert forward("v1") == 0  # the same playlist version notified twice
    assert forward("v1b") == 0  # a new version naming nothing new
    store.objects["hls/cam/index2.ts"] = b"z"
    store.objects["hls/cam/index.m3u8"] = (FFMPEG_PLAYLIST + "#EXT-X-ENDLIST\n").encode()
    assert forward("v2") == 2  # segment 2 and the end marker
    events = [decode_ingest(value) for _, _, value in publisher.sent]
    assert {(topic, key) for topic, key, _ in publisher.sent} == {("video.ingest", "cam")}
    assert [
        (e.stream.seq, e.stream.start_s, e.stream.end_of_stream) for e in events if e.stream
    ] == [
        (0, 0.0, False),
        (1, 2.0, False),
        (2, 4.0, False),
        (3, 5.5, True),
    ]

    def tag(index: int) -> str:
        key = f"hls/cam/index{index}.ts"
        return derive_version_tag("videos", key, f"etag-{key}")

    # stream-<id>-<seq>-<version tag of the segment object>; the end marker names the last one.
    assert [e.event_id for e in events] == [
        f"stream-cam-{i:08d}-{tag(min(i, 2))}" for i in range(4)
    ]
    assert events[1].source.key == "hls/cam/index1.ts"
    assert (events[1].source.etag, events[1].source.size) == ("etag-hls/cam/index1.ts", 7)
    assert events[3].source == events[2].source  # the end marker names the last segment
    state = BridgeState.decode(store.objects["streams/cam/hls-bridge.json"], "cam")
    assert (state.next_seq, state.end_s, state.ended) == (4, 5.5, True)
