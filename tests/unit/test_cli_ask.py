"""``vidloc ask``'s exit codes and what it publishes (issue 24), with an in-memory store and a
fake bus; ``vidloc timeline --analysis`` reads a later analysis' timeline."""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import WritableStore, make_result, make_timeline

from contracts import INGEST_V2, ResultEvent, decode_ingest, encode
from producers.analyses import record_key
from vidloc import names
from vidloc.api.models import VideoState
from vidloc.cli import main
from vidloc.cli.ask import Question, ask
from vidloc.cli.exits import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE
from vidloc.settings import Settings


class FakeFollower:
    def __init__(self, result: ResultEvent | None) -> None:
        self.result = result
        self.expected: list[tuple[str, str | None]] = []
        self.closed = False

    def expect(self, video_id: str, label: str | None = None, *, job_id: str | None = None) -> None:
        self.expected.append((video_id, job_id))

    def wait(self, timeout_s: float) -> dict[str, ResultEvent]:
        if self.result is None:
            return {}
        job = self.expected[0][1]
        return {self.result.video_id: self.result.model_copy(update={"job_id": job})}

    def close(self) -> None:
        self.closed = True


class FakeBus:
    def __init__(self, status: str | None = "succeeded", result: ResultEvent | None = None) -> None:
        self.status = status
        self.sent: list[tuple[str, bytes]] = []
        self.follow = FakeFollower(result)

    def video_state(
        self, video_id: str, tenant: str | None, has_timeline: bool, final_job: str | None = None
    ) -> Any:
        if self.status is None:
            if not has_timeline:
                return None
            return VideoState(video_id=video_id, status="succeeded", has_timeline=True)
        return VideoState(video_id=video_id, status=self.status, has_timeline=has_timeline)

    def follower(self) -> Any:
        return self.follow

    def publish(self, video_id: str, value: bytes) -> None:
        self.sent.append((video_id, value))


@pytest.fixture
def store() -> WritableStore:
    store = WritableStore()
    store.put_tenant_timeline("vid-1", None)
    store.put_tenant_timeline("mine", "acme")
    return store


def run(
    store: WritableStore,
    bus: FakeBus,
    video_id: str = "vid-1",
    *,
    prompt: str | None = "when does anyone stand up",
    labels: list[str] | None = None,
    tenant: str | None = None,
    wait_s: float | None = None,
    key: str | None = None,
) -> int:
    return ask(
        Settings(),
        video_id,
        Question(prompt=prompt, labels=labels or [], options={"localizer": None}),
        tenant=tenant,
        idempotency_key=key,
        wait_s=wait_s,
        store=store,  # type: ignore[arg-type]
        bus=bus,
    )


def test_an_ask_publishes_one_v2_event_and_records_it(store: WritableStore) -> None:
    bus = FakeBus()
    assert run(store, bus, labels=["stand up"]) == EXIT_OK
    [(key, value)] = bus.sent
    event = decode_ingest(value)
    assert key == "vid-1" and event.schema_id == INGEST_V2 and event.analysis_id != "default"
    assert (event.source.key, event.source.etag, event.source.size) == (
        "uploads/vid-1.mp4",
        "etag-1",
        1234,
    )
    assert event.options.labels == ["stand up"]
    assert ("timelines", record_key("vid-1", event.analysis_id)) in store.objects


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param({"video_id": "never-seen"}, EXIT_FAILED, id="unknown-video"),
        pytest.param({"video_id": "mine", "tenant": "bravo"}, EXIT_FAILED, id="other-tenant"),
        pytest.param({"prompt": "  "}, EXIT_USAGE, id="empty-question"),
        pytest.param({"prompt": None, "labels": []}, EXIT_USAGE, id="no-question"),
        pytest.param({"prompt": "x" * 8001}, EXIT_USAGE, id="oversized-prompt"),
        pytest.param({"video_id": "../etc"}, EXIT_USAGE, id="bad-id"),
    ],
)
def test_refusals_have_their_exit_codes_and_publish_nothing(
    store: WritableStore,
    capsys: pytest.CaptureFixture[str],
    case: dict[str, Any],
    expected: int,
) -> None:
    before = dict(store.objects)
    bus = FakeBus(status=None)
    assert run(store, bus, **case) == expected
    assert bus.sent == [] and store.objects == before
    err = capsys.readouterr().err
    assert "vidloc ask:" in err


def test_a_running_video_is_busy(store: WritableStore, capsys: pytest.CaptureFixture[str]) -> None:
    bus = FakeBus(status="running")
    assert run(store, bus) == EXIT_BUSY and bus.sent == []
    assert "video_running" in capsys.readouterr().err
    assert run(store, FakeBus(status="stalled")) == EXIT_BUSY


def test_a_video_without_a_timeline_cannot_be_asked(
    store: WritableStore, capsys: pytest.CaptureFixture[str]
) -> None:
    bus = FakeBus(status="failed")
    assert run(store, bus, video_id="vid-failed") == EXIT_FAILED and bus.sent == []
    assert "video_not_analysed" in capsys.readouterr().err


def test_the_same_idempotency_key_asks_once(store: WritableStore) -> None:
    bus = FakeBus()
    assert run(store, bus, key="k1") == EXIT_OK
    assert run(store, bus, key="k1") == EXIT_OK
    assert len(bus.sent) == 1


def test_wait_follows_the_analysis_to_its_end(store: WritableStore) -> None:
    done = make_result("vid-1", job="j-x").model_copy(update={"analysis_id": "a-x"})
    bus = FakeBus(result=done)
    assert run(store, bus, wait_s=5.0) == EXIT_OK
    event = decode_ingest(bus.sent[0][1])
    assert bus.follow.expected == [("vid-1", event.job_id)] and bus.follow.closed
    failed = FakeBus(result=make_result("vid-1", "failed"))
    assert run(store, failed, wait_s=5.0) == EXIT_FAILED
    assert run(store, FakeBus(result=None), wait_s=0.1) == EXIT_TIMEOUT


def test_timeline_reads_a_later_analysis(
    monkeypatch: pytest.MonkeyPatch, store: WritableStore, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = make_timeline("vid-1", analysis_id="a-1", job_id="j-asked")
    store.objects[("timelines", names.analysis_timeline_key("vid-1", "a-1"))] = encode(answer)
    monkeypatch.setattr("vidloc.cli.timeline.ObjectStore", lambda settings: store)
    assert main(["timeline", "vid-1", "--analysis", "a-1", "--json"]) == EXIT_OK
    assert '"job_id":"j-asked"' in capsys.readouterr().out.replace(" ", "")
    assert main(["timeline", "vid-1", "--analysis", "a-2", "--json"]) == EXIT_FAILED
    assert "analysis 'a-2'" in capsys.readouterr().err
    assert main(["timeline", "vid-1", "--analysis", "a/b"]) == EXIT_USAGE
