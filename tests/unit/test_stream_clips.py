"""Clips of a live stream's events: the segment index the fold writes, picking the segments a
window needs, cutting across their edges (re-encode) or inside one (copy), and the clear errors
of a timeline that cannot say where its segments are."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from api_fixtures import timeline_doc

from contracts import Timeline, decode_timeline
from contracts.common import SourceObject
from contracts.stream import MAX_SEGMENTS_INDEXED, SegmentPlace, StreamSegment, StreamState
from vidloc.api.clipcut import ClipWindow, SegmentFile, cut_segments, segments_for
from vidloc.api.clips import segments_tag, stream_segments
from vidloc.api.errors import ApiError
from workers.live.fold import fold_segment

FPS = 10
SEG_S = 2.0


def segment(seq: int, start: float, duration: float = SEG_S, **kw: object) -> StreamSegment:
    return StreamSegment.model_validate(
        {
            "stream_id": "cam1",
            "seq": seq,
            "start_s": start,
            "duration_s": duration,
            "wall_clock": datetime(2026, 12, 4, tzinfo=UTC),
        }
        | kw
    )


def source(seq: int, etag: str = "") -> SourceObject:
    return SourceObject(
        bucket="videos", key=f"streams/cam1/{seq:08d}.ts", etag=etag or f"e{seq}", size=10
    )


def place(seq: int, start: float, duration: float = SEG_S) -> SegmentPlace:
    return SegmentPlace(
        seq=seq,
        key=f"streams/cam1/{seq:08d}.ts",
        etag=f"e{seq}",
        start_s=start,
        duration_s=duration,
    )


def folded(state: StreamState | None, seg: StreamSegment, src: SourceObject | None) -> StreamState:
    return fold_segment((), state, seg, (), join_s=0.75, lag_s=0.0, source=src).state


def test_the_fold_places_each_segment_with_media_on_the_stream_clock() -> None:
    state = folded(None, segment(0, 0.0), source(0))
    state = folded(state, segment(1, 2.0, 2.1), source(1))
    state = folded(state, segment(2, 4.1, 0.0, end_of_stream=True), source(1))
    assert state.segments_index == [
        SegmentPlace(seq=0, key="streams/cam1/00000000.ts", etag="e0", start_s=0.0, duration_s=2.0),
        SegmentPlace(seq=1, key="streams/cam1/00000001.ts", etag="e1", start_s=2.0, duration_s=2.1),
    ]  # the media-less end marker is not placed


def test_a_skipped_segment_is_placed_too() -> None:
    state = folded(None, segment(0, 0.0), source(0))
    after = fold_segment(
        (), state, segment(1, 2.0), (), join_s=0.75, lag_s=9.0, skipped=True, source=source(1)
    ).state
    assert [p.seq for p in after.segments_index or []] == [0, 1]


def test_the_index_keeps_the_newest_segments() -> None:
    old = [place(i, i * SEG_S) for i in range(MAX_SEGMENTS_INDEXED)]
    state = StreamState(
        stream_id="cam1", last_seq=len(old) - 1, covered_s=len(old) * SEG_S, segments_index=old
    )
    after = folded(state, segment(len(old), len(old) * SEG_S), source(len(old)))
    index = after.segments_index or []
    assert len(index) == MAX_SEGMENTS_INDEXED
    assert (index[0].seq, index[-1].seq) == (1, MAX_SEGMENTS_INDEXED)


def test_an_older_timeline_starts_its_index_at_the_next_segment() -> None:
    old = StreamState(stream_id="cam1", last_seq=4, covered_s=10.0, segments=5)
    assert old.segments_index is None
    assert folded(old, segment(5, 10.0), None).segments_index is None  # nothing to place
    after = folded(old, segment(5, 10.0), source(5))
    assert [p.seq for p in after.segments_index or []] == [5]


def test_segments_for_picks_those_overlapping_the_window() -> None:
    index = [place(0, 0.0), place(1, 2.0), place(2, 4.0), place(4, 9.0)]  # 6-9 s: a gap
    assert [p.seq for p in segments_for(index, ClipWindow(1.5, 4.5))] == [0, 1, 2]
    assert [p.seq for p in segments_for(index, ClipWindow(2.0, 4.0))] == [1]
    assert segments_for(index, ClipWindow(6.5, 8.5)) == []


def stream_timeline(index: list[SegmentPlace] | None, covered: float = 12.0) -> Timeline:
    doc = timeline_doc("cam1", covered)
    doc["stream"] = {"stream_id": "cam1", "last_seq": 5, "segments": 6, "covered_s": covered}
    if index is not None:
        doc["stream"]["segments_index"] = [p.model_dump() for p in index]
    return decode_timeline(doc)


@pytest.mark.parametrize(
    ("index", "window", "status", "code"),
    [
        pytest.param(None, ClipWindow(3.0, 5.0), 409, "segments_not_indexed", id="no-index"),
        pytest.param(
            [place(3, 6.0)],
            ClipWindow(3.0, 5.0),
            409,
            "segments_not_indexed",
            id="before-the-index",
        ),
        pytest.param([], ClipWindow(3.0, 5.0), 409, "segments_not_indexed", id="empty-index"),
        pytest.param(
            [place(0, 0.0), place(4, 9.0)],
            ClipWindow(3.0, 5.0),
            404,
            "segment_not_found",
            id="in-a-gap",
        ),
    ],
)
def test_a_stream_timeline_that_cannot_place_the_window_is_a_clear_error(
    index: list[SegmentPlace] | None, window: ClipWindow, status: int, code: str
) -> None:
    with pytest.raises(ApiError) as caught:
        stream_segments(stream_timeline(index), window)
    assert (caught.value.status_code, caught.value.code) == (status, code)


def test_the_cache_tag_names_every_segment_version() -> None:
    a = [place(0, 0.0), place(1, 2.0)]
    b = [place(0, 0.0), place(1, 2.0).model_copy(update={"etag": "other"})]
    assert segments_tag(a) != segments_tag(b) != segments_tag(a[:1])
    assert segments_tag(a) == segments_tag([place(0, 0.0), place(1, 2.0)])


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[SegmentFile]:
    """A 6 s 10 fps H.264 recording (a keyframe a second) cut like ``vidloc stream`` does:
    MPEG-TS segments of 2 s at keyframes, keeping the source's timestamps."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    d = tmp_path_factory.mktemp("segments")
    run = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    subprocess.run(
        [*run, "-f", "lavfi", "-i", f"testsrc2=s=160x90:r={FPS}:d=6", "-c:v", "libx264",
         "-g", str(FPS), "-bf", "0", "-pix_fmt", "yuv420p", str(d / "src.mp4")],
        check=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        [*run, "-i", str(d / "src.mp4"), "-map", "0:v:0", "-c", "copy", "-f", "segment",
         "-segment_time", str(SEG_S), "-reset_timestamps", "0", str(d / "%08d.ts")],
        check=True, timeout=120,
    )  # fmt: skip
    files = sorted(d.glob("*.ts"))
    assert len(files) == 3
    return [SegmentFile(path, i * SEG_S) for i, path in enumerate(files)]


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as clip:
        return [float(f.time or 0.0) for f in clip.decode(video=0)]


def test_a_window_across_segment_edges_is_reencoded_to_its_length(
    parts: list[SegmentFile], tmp_path: Path
) -> None:
    out = tmp_path / "across.mp4"
    cut = cut_segments(parts, out, ClipWindow(1.5, 4.5))
    assert cut.mode == "reencode"
    assert abs(cut.first_frame_s - 1.5) <= 1 / FPS
    times = frame_times(out)
    assert len(times) == cut.frames
    assert abs(len(times) - 3.0 * FPS) <= 2, len(times)
    assert times == sorted(times) and times[0] == 0.0


def test_a_window_inside_one_segment_at_a_keyframe_is_copied(
    parts: list[SegmentFile], tmp_path: Path
) -> None:
    out = tmp_path / "inside.mp4"
    cut = cut_segments(parts[1:2], out, ClipWindow(3.0, 4.0))
    assert cut.mode == "copy"
    assert abs(cut.first_frame_s - 3.0) <= 1 / FPS  # on the stream clock, not the file's
    assert abs(len(frame_times(out)) - 1.0 * FPS) <= 2


def test_a_window_inside_one_segment_between_keyframes_is_reencoded(
    parts: list[SegmentFile], tmp_path: Path
) -> None:
    out = tmp_path / "between.mp4"
    cut = cut_segments(parts[1:2], out, ClipWindow(2.5, 3.7))
    assert cut.mode == "reencode"
    assert abs(cut.first_frame_s - 2.5) <= 1 / FPS
    assert abs(len(frame_times(out)) - 1.2 * FPS) <= 2
