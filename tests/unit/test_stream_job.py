"""StreamJob over an in-memory store and a scripted runner: what is stored, what is announced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from api_fixtures import timeline_doc

from contracts import IngestEvent, Timeline, decode_result, decode_timeline
from contracts.result import ResultEvent
from vidloc import names
from vidloc.cli.stream_watch import stream_lines
from vidloc.errors import ObjectMissing
from vidloc.metrics import Metrics
from workers.live.segment_job import StreamJob, lag_limit_s, should_skip
from workers.pipeline.job import JobOutcome
from workers.service.policy import JobCancelled
from workers.types import TokenTally

NOW = 1_800_000_000.0


class Store:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_bytes(self, bucket: str, key: str) -> bytes:
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise ObjectMissing(key) from None

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[(bucket, key)] = data

    def download(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the runner is scripted")


class Runner:
    """Answers each segment (by seq) with the events it is given, on the segment's clock."""

    def __init__(self, answers: dict[int, list[tuple[str, float, float]]]) -> None:
        self.answers = answers
        self.ran: list[int] = []

    def run(self, event: IngestEvent, job_id: str, progress: Any) -> JobOutcome:
        seq = int(event.effective_video_id.rsplit(".", 2)[1])  # <stream>.<seq>.<version tag>
        self.ran.append(seq)
        doc = timeline_doc(event.effective_video_id, duration_s=3.0)
        doc["sampling"]["sample_fps"] = 2.0
        doc["events"] = [
            {"id": f"e{i}", "label": label, "start_s": s, "end_s": e}
            for i, (label, s, e) in enumerate(self.answers.get(seq, []))
        ]
        return JobOutcome(decode_timeline(doc), "timelines", "x", TokenTally(), 0.0)


def segment(seq: int, start: float, *, age_s: float = 0.5, **stream: Any) -> IngestEvent:
    duration = stream.pop("duration_s", 3.0)
    return IngestEvent.model_validate(
        {
            "event_id": f"stream-cam1-{seq:08d}",
            "video_id": "cam1",
            "source": {"bucket": "videos", "key": f"streams/cam1/{seq:08d}.ts", "etag": "e",
                       "size": 1},
            "submitted_at": "2026-11-29T17:00:00Z",
            "stream": {
                "stream_id": "cam1", "seq": seq, "start_s": start, "duration_s": duration,
                "wall_clock": datetime.fromtimestamp(NOW - duration - age_s, UTC).isoformat(),
                **stream,
            },
        }
    )  # fmt: skip


@pytest.fixture
def setup() -> tuple[Store, Runner, list[tuple[str, str, bytes]], StreamJob]:
    store, sent = Store(), []
    runner = Runner({0: [("red circle", 1.5, 2.5)], 1: [("red circle", 0.0, 1.0)]})
    job = StreamJob(
        runner,  # type: ignore[arg-type]
        store,
        lambda topic, key, value: sent.append((topic, key, value)),
        timeline_bucket="timelines",
        wall_clock=lambda: NOW,
    )
    return store, runner, sent, job


def results(sent: list[tuple[str, str, bytes]]) -> list[ResultEvent]:
    return [decode_result(v) for t, _, v in sent if t == names.TOPIC_RESULTS]


def stored(store: Store) -> Timeline:
    return decode_timeline(store.objects[("timelines", names.timeline_key("cam1"))])


def test_segments_grow_one_timeline_and_partial_results(setup: Any) -> None:
    store, runner, sent, job = setup
    job.run(segment(0, 0.0), "j0", lambda *a: None)
    job.run(segment(1, 3.0), "j1", lambda *a: None)
    job.run(segment(2, 6.0, duration_s=0.0, end_of_stream=True), "j2", lambda *a: None)
    timeline = stored(store)
    assert [(e.id, e.start_s, e.end_s) for e in timeline.events] == [("s-00000", 1.5, 4.0)]
    assert timeline.video_id == "cam1" and timeline.stream is not None and timeline.stream.ended
    got = results(sent)
    assert [(r.partial, r.stream.seq) for r in got if r.stream] == [
        (True, 0),
        (True, 1),
        (False, 2),
    ]
    assert got[0].stream and got[0].stream.new_events == ["s-00000"]
    assert got[1].stream and got[1].stream.extended_events == ["s-00000"]
    assert runner.ran == [0, 1]  # the end marker carries no media
    assert stream_lines(got[1]) == ["[green]cam1[/green] ~ s-00000 red circle continues to 4.0 s"]
    assert stream_lines(got[2])[-1].endswith("ended: 1 events in 6.0 s")


def test_a_redelivered_segment_is_announced_again_not_folded(setup: Any) -> None:
    store, runner, sent, job = setup
    job.run(segment(0, 0.0), "j0", lambda *a: None)
    job.run(segment(1, 3.0), "j1", lambda *a: None)
    before = stored(store)
    job.run(segment(0, 0.0), "j0", lambda *a: None)
    assert runner.ran == [0, 1] and stored(store) == before
    first, _, again = results(sent)
    assert again.event_id == first.event_id and again.stream and again.stream.new_events == []


def test_skip_to_live_skips_old_segments_and_records_them(setup: Any) -> None:
    store, runner, sent, job = setup
    policy = {"policy": "skip_to_live", "max_lag_s": 4.0}
    job.run(segment(0, 0.0, age_s=9.0, **policy), "j0", lambda *a: None)  # first: always
    job.run(segment(1, 3.0, age_s=9.0, **policy), "j1", lambda *a: None)
    job.run(segment(2, 6.0, age_s=1.0, **policy), "j2", lambda *a: None)
    assert runner.ran == [0, 2]
    timeline = stored(store)
    assert timeline.stream is not None
    assert [(s.start_s, s.end_s) for s in timeline.stream.skipped] == [(3.0, 6.0)]
    skipped = [r.stream.seq for r in results(sent) if r.stream and r.stream.skipped]
    assert skipped == [1]


@pytest.mark.parametrize(
    ("policy", "lag", "max_lag", "skip"),
    [
        pytest.param("catch_up", 60.0, 4.0, False, id="catch-up-never-skips"),
        pytest.param("skip_to_live", 4.5, 4.0, True, id="over-the-limit"),
        pytest.param("skip_to_live", 3.5, 4.0, False, id="under-the-limit"),
        pytest.param("skip_to_live", 9.5, None, True, id="default-three-segments"),
        pytest.param("skip_to_live", 8.5, None, False, id="under-default"),
    ],
)
def test_should_skip(policy: str, lag: float, max_lag: float | None, skip: bool) -> None:
    seg = segment(3, 9.0, policy=policy, max_lag_s=max_lag).stream
    assert seg is not None
    assert should_skip(seg, lag) is skip
    assert lag_limit_s(seg) == (max_lag or 9.0)


def test_a_cancelled_job_does_not_write_the_timeline(setup: Any) -> None:
    """A worker that lost the partition mid-segment must not overwrite the new owner's fold."""
    store, _runner, sent, job = setup
    job.run(segment(0, 0.0), "j0", lambda *a: None)
    before = dict(store.objects)

    def cancelled(stage: str, *_: Any) -> None:
        if stage == "storing":
            raise JobCancelled("partition revoked")

    with pytest.raises(JobCancelled):
        job.run(segment(1, 3.0), "j1", cancelled)
    assert store.objects == before and len(results(sent)) == 1


def test_the_lag_is_a_metric_and_a_progress_message() -> None:
    metrics = Metrics()
    said: list[str] = []
    job = StreamJob(
        Runner({}),  # type: ignore[arg-type]
        Store(),
        lambda *a: None,
        timeline_bucket="timelines",
        metrics=metrics,
        wall_clock=lambda: NOW,
    )
    job.run(segment(0, 0.0, age_s=2.5), "j0", lambda stage, done, total, msg: said.append(msg))
    lag = metrics.registry.get_sample_value("vidloc_stream_lag_seconds", {"stream": "cam1"})
    assert lag == pytest.approx(2.5)
    assert any("lag 2.5 s" in m for m in said), said
