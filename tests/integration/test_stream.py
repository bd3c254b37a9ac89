"""Live streams end to end: a clip played in real time as a live TCP source, ``vidloc stream``
cutting it into segments, a real worker with the fake model growing one timeline per stream.

Shown here: every event found and reported once across segments, soon after it happened; a 5 s
source drop and a producer crash mid-stream lose no segment and duplicate none (both become gap
events); skip-to-live keeps the lag bounded when the model is slower than real time. Measured
latencies are printed (run with ``-s``) and kept in ``measured``.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from live_source import LiveSource
from pipeline import REPO, Workers
from reliability import stream_worker

from contracts import ResultEvent, Timeline, decode_result, decode_timeline
from devkit.fake_vlm.server import serve_in_thread
from devkit.serve_api import serve_in_thread as serve_api
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc import names
from vidloc.adapters.kafka import TopicReader
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

SEG_S = 3.0
MODEL_LATENCY_S = 0.5  # the fake model's answer time in the live test
SPEC = VideoSpec(
    name="live_stream_h264",
    duration_s=37.0,
    fps=10.0,
    width=320,
    height=180,
    codec="h264",
    events=(
        SyntheticEvent("red circle", 1.5, 5.0),  # across the 3 s edge
        SyntheticEvent("green square", 6.5, 13.0),  # across two edges
        SyntheticEvent("blue triangle", 20.5, 23.0),  # after the source drop
        SyntheticEvent("yellow star", 31.0, 35.0),  # after the producer restart
    ),
    gop=10,  # a keyframe a second: segments are cut where asked
)
DROP_AT, DROP_S = 14.0, 5.0
CRASH_AT = 26.0
SLOW_SPEC = VideoSpec(
    name="live_slow_h264",
    duration_s=20.0,
    fps=10.0,
    width=320,
    height=180,
    codec="h264",
    events=(SyntheticEvent("red circle", 2.0, 18.0),),
    gop=10,
)
SLOW_SEG_S, SLOW_MODEL_S, MAX_LAG_S = 2.0, 5.0, 4.0
LABELS = "red circle,green square,blue triangle,yellow star"
MATCH_S = 1.0  # stream clock vs clip clock: connection set-up and keyframe rounding
measured: dict[str, object] = {}


@dataclass
class StreamResults:
    """A stream's result events from video.results, with the wall time each arrived."""

    stream_id: str
    got: list[tuple[float, ResultEvent]] = field(default_factory=list)

    def final(self) -> ResultEvent | None:
        return next((r for _, r in self.got if r.stream and r.stream.ended), None)


class ResultTail:
    """Reads video.results in a thread so arrival times are not skewed by the test's waits."""

    def __init__(self, settings: Settings) -> None:
        self._stream = TopicReader.tail(settings, (names.TOPIC_RESULTS,))
        self.streams: dict[str, StreamResults] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def follow(self, stream_id: str) -> StreamResults:
        return self.streams.setdefault(stream_id, StreamResults(stream_id))

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._stream.poll(timeout_s=0.2, max_records=500):
                now = time.time()
                result = decode_result(msg.value)
                own = self.streams.get(result.video_id)
                # Workers of other sessions refuse our bucket: those results carry no stream.
                if own is not None and result.stream is not None:
                    own.got.append((now, result))

    def wait_final(self, stream_id: str, timeout_s: float) -> ResultEvent:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            final = self.streams[stream_id].final()
            if final is not None:
                time.sleep(2.0)  # a little longer, to catch a duplicate
                return final
            time.sleep(0.2)
        raise AssertionError(f"no final result for stream {stream_id} in {timeout_s:.0f} s")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._stream.close()


@pytest.fixture(scope="module")
def fake_model() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


def set_model_latency(base_url: str, seconds: float) -> None:
    admin = base_url.removesuffix("/v1")
    httpx.post(f"{admin}/_fake/reset", timeout=10).raise_for_status()
    slow = [{"kind": "slow", "delay_s": seconds, "count": 10_000}]
    httpx.post(f"{admin}/_fake/faults", json=slow, timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def live_settings(stack: Settings) -> Settings:
    bucket = f"live-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(update={"video_bucket": bucket})
    ObjectStore(settings).ensure_bucket(bucket)
    return settings


@pytest.fixture(scope="module")
def worker(
    live_settings: Settings, fake_model: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    with stream_worker(
        live_settings, fake_model, tmp_path_factory.mktemp("stream-worker-logs")
    ) as pool:
        yield pool


@pytest.fixture(scope="module")
def tail(live_settings: Settings) -> Iterator[ResultTail]:
    t = ResultTail(live_settings)
    yield t
    t.close()


def start_producer(
    settings: Settings, url: str, stream_id: str, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIDLOC_VIDEO_BUCKET": settings.video_bucket}
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "vidloc", "stream", url, "--stream-id", stream_id,
             "--labels", LABELS, *extra],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a crash takes its FFmpeg child down with it
        )  # fmt: skip


def wait_until(predicate: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def stream_timeline(settings: Settings, final: ResultEvent) -> Timeline:
    assert final.timeline is not None
    data = ObjectStore(settings).get_bytes(final.timeline.bucket, final.timeline.key)
    return decode_timeline(data)


def assert_each_segment_once(
    settings: Settings, stream_id: str, results: StreamResults, timeline: Timeline
) -> None:
    """Every uploaded segment folded exactly once, in one unbroken sequence, then the end.

    A segment sent twice (the restarted producer re-sends its last one) is answered with the
    same result event again; a second fold would be a different event, or a counted segment.
    """
    keys = ObjectStore(settings).list_keys(settings.video_bucket, f"streams/{stream_id}/")
    uploaded = sorted(int(Path(k).stem) for k in keys if k.endswith(".ts"))
    assert uploaded == list(range(len(uploaded))), f"segment objects {uploaded}"
    by_seq: dict[int, set[str]] = {}
    for _, r in results.got:
        assert r.stream is not None
        by_seq.setdefault(r.stream.seq, set()).add(r.event_id)
    assert sorted(by_seq) == list(range(len(uploaded) + 1)), f"seqs answered {sorted(by_seq)}"
    assert all(len(ids) == 1 for ids in by_seq.values()), by_seq
    assert timeline.stream is not None and timeline.stream.ended
    assert timeline.stream.segments == len(uploaded) + 1


def visible(start: float, end: float, gaps: list[tuple[float, float]]) -> tuple[float, float]:
    """``[start, end)`` less the gaps that cover one of its edges."""
    for lo, hi in gaps:
        if lo <= start < hi:
            start = hi
        if lo < end <= hi:
            end = lo
    assert start < end, "the schedule must leave some of every event outside the faults"
    return start, end


def test_live_stream_events_gaps_and_restart(
    live_settings: Settings,
    fake_model: str,
    worker: Workers,
    tail: ResultTail,
    tmp_path: Path,
) -> None:
    set_model_latency(fake_model, MODEL_LATENCY_S)
    clip = ensure_rendered(SPEC, REPO / ".cache" / "test-media")
    stream_id = f"live-{uuid.uuid4().hex[:8]}"
    results = tail.follow(stream_id)
    source = LiveSource(clip)
    log = tmp_path / "producer.log"
    args = ("--segment-s", f"{SEG_S:g}", "--reconnect-for", "10")
    api_url, stop_api = serve_api(create_app(live_settings, follow_bus=False))
    api = httpx.Client(base_url=api_url, timeout=10)
    watched = tmp_path / "watch.out"
    try:
        with watched.open("wb") as sink:
            watch = subprocess.Popen(
                [sys.executable, "-m", "vidloc", "watch", "--stream", stream_id, "--timeout",
                 "180"],
                cwd=REPO, stdout=sink, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        source.listen()
        first = start_producer(live_settings, source.url, stream_id, log, *args)
        wait_until(lambda: source.has_client, 30)  # the producer is up: play from second 0
        source.play()
        wait_until(lambda: source.started_wall is not None, 10)
        wait_until(lambda: source.clip_time() >= DROP_AT, 60)
        early = api.get(f"/videos/{stream_id}/timeline")
        source.drop(DROP_S)
        wait_until(lambda: source.clip_time() >= CRASH_AT, 60)
        later = api.get(f"/videos/{stream_id}/timeline")
        os.killpg(first.pid, signal.SIGKILL)  # a crash, not a clean stop: nothing flushed
        first.wait()
        second = start_producer(live_settings, source.url, stream_id, log, *args)
        assert source.finished.wait(60)
        second.send_signal(signal.SIGTERM)  # a clean stop: last segment flushed, end announced
        assert second.wait(60) == 0, log.read_text()
        final = tail.wait_final(stream_id, 90)
        done = api.get(f"/videos/{stream_id}/timeline")
        assert watch.wait(60) == 0  # it stops by itself when the stream ends
    finally:
        source.close()
        api.close()
        stop_api()
    assert source.started_wall is not None
    timeline = stream_timeline(live_settings, final)

    # The API serves the stream's timeline while it grows, uncached, and the final one.
    for response in (early, later, done):
        assert response.status_code == 200, response.text
    growing = [decode_timeline(r.content) for r in (early, later)]
    assert all(t.stream is not None and not t.stream.ended for t in growing)
    assert growing[0].video.duration_s < growing[1].video.duration_s
    # It grows by new events or by events that continue (same id, later end), whichever the
    # moments of the two reads caught.
    early_ends = {e.id: e.end_s for e in growing[0].events}
    later_ends = {e.id: e.end_s for e in growing[1].events}
    assert set(early_ends) <= set(later_ends)
    assert all(later_ends[i] >= end for i, end in early_ends.items())
    assert len(later_ends) > len(early_ends) or any(
        later_ends[i] > end for i, end in early_ends.items()
    )
    assert len(growing[1].events) <= len(timeline.events)
    assert [r.headers.get("cache-control") for r in (early, later)] == ["no-store"] * 2
    assert decode_timeline(done.content) == timeline
    assert_each_segment_once(live_settings, stream_id, results, timeline)

    # Both faults are gaps on the stream clock, as events of their own.
    gaps = [e for e in timeline.events if e.label == "gap"]
    assert len(gaps) == 2, f"{gaps}\n{worker.logs()}"
    drop, restart = gaps
    assert abs(drop.start_s - DROP_AT) <= MATCH_S + SEG_S, drop
    assert DROP_S - MATCH_S <= drop.end_s - drop.start_s <= DROP_S + SEG_S + MATCH_S, drop
    assert CRASH_AT - SEG_S - MATCH_S <= restart.start_s <= CRASH_AT + MATCH_S, restart

    # Every event found, once, with its extent, reported as new in exactly one update.
    found = [e for e in timeline.events if e.label != "gap"]
    assert sorted(e.label for e in found) == sorted(e.label for e in SPEC.events), found
    new_ids = [i for _, r in results.got if r.stream for i in r.stream.new_events]
    assert len(new_ids) == len(set(new_ids)), new_ids
    latencies = []
    for truth in SPEC.events:
        (event,) = [e for e in found if e.label == truth.label]
        # What of it the stream delivered: a fault may cut off an edge (never all of it).
        start, end = visible(truth.start_s, truth.end_s, [(g.start_s, g.end_s) for g in gaps])
        assert abs(event.start_s - start) <= MATCH_S, (truth, event, gaps)
        assert abs(event.end_s - end) <= MATCH_S, (truth, event, gaps)
        reported = min(t for t, r in results.got if r.stream and event.id in r.stream.new_events)
        latencies.append(reported - (source.started_wall + truth.start_s))
    bound = SEG_S + 2 * MODEL_LATENCY_S + 2.0
    measured["event_latency_s"] = [round(x, 2) for x in latencies]
    measured["event_latency_median_s"] = round(statistics.median(latencies), 2)
    measured["event_latency_max_s"] = round(max(latencies), 2)
    measured["gaps"] = [(round(g.start_s, 2), round(g.end_s, 2)) for g in gaps]
    print(f"\nlive stream: {measured}")
    assert max(latencies) <= bound, f"latencies {latencies} over {bound} s"

    # vidloc watch --stream printed each event once, as it was found, and the gaps and end.
    lines = watched.read_text().splitlines()
    for truth in SPEC.events:
        assert sum(" + " in ln and truth.label in ln for ln in lines) == 1, lines
    assert sum(" gap " in ln for ln in lines) == 2, lines
    assert any(" ended: " in ln for ln in lines), lines
    # Partial until the end, then one final result.
    assert [r.partial for _, r in results.got].count(False) == 1


def test_skip_to_live_keeps_lag_bounded(
    live_settings: Settings,
    fake_model: str,
    worker: Workers,
    tail: ResultTail,
    tmp_path: Path,
) -> None:
    """The model takes 5 s per 2 s segment; catching up would end ~30 s behind live."""
    set_model_latency(fake_model, SLOW_MODEL_S)
    clip = ensure_rendered(SLOW_SPEC, REPO / ".cache" / "test-media")
    stream_id = f"slow-{uuid.uuid4().hex[:8]}"
    results = tail.follow(stream_id)
    source = LiveSource(clip)
    log = tmp_path / "producer.log"
    try:
        source.listen()
        producer = start_producer(
            live_settings, source.url, stream_id, log,
            "--segment-s", f"{SLOW_SEG_S:g}", "--reconnect-for", "1",
            "--policy", "skip_to_live", "--max-lag-s", f"{MAX_LAG_S:g}",
        )  # fmt: skip
        wait_until(lambda: source.has_client, 30)
        source.play()
        assert source.finished.wait(60)
        source_end = time.time()
        assert producer.wait(60) == 0, log.read_text()
        final = tail.wait_final(stream_id, 90)
    finally:
        source.close()
        set_model_latency(fake_model, 0.0)
    timeline = stream_timeline(live_settings, final)
    assert_each_segment_once(live_settings, stream_id, results, timeline)
    assert timeline.stream is not None
    localized = [  # media segments the model saw (the end marker carries none)
        r for _, r in results.got if r.stream and not r.stream.skipped and not r.stream.ended
    ]
    skipped = [r for _, r in results.got if r.stream and r.stream.skipped]
    assert skipped, "the model was slower than real time, yet nothing was skipped"
    assert timeline.stream.skipped, "skipped spans are recorded in the timeline"
    skipped_s = sum(s.end_s - s.start_s for s in timeline.stream.skipped)
    # Only segments at most max_lag_s old were localized (the first one always is).
    lags = [r.stream.lag_s for r in localized if r.stream and r.stream.seq > 0]
    assert all(lag <= MAX_LAG_S for lag in lags), lags
    # Live at the end: the final update came within the lag limit plus one segment's work.
    final_at = min(t for t, r in results.got if r.stream and r.stream.ended)
    behind = final_at - source_end
    measured["skip_to_live"] = {
        "segments": timeline.stream.segments - 1,
        "skipped_segments": len(skipped),
        "skipped_s": round(skipped_s, 1),
        "localized_lags_s": [round(x, 2) for x in lags],
        "final_after_source_end_s": round(behind, 2),
    }
    print(f"\nskip to live: {measured['skip_to_live']}")
    assert behind <= MAX_LAG_S + SLOW_MODEL_S + SLOW_SEG_S + 2.0, behind
    # The event outside the skipped spans is still found.
    assert any(e.label == "red circle" for e in timeline.events)
