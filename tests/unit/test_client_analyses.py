"""The Python client's analyses (issue 24): ``ask``, ``analyses``, ``analysis_timeline`` and
the wait, sync and async, against the real app over an in-memory store and a fake publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from api_fixtures import WritableStore, make_progress, make_result, make_timeline

from contracts import decode_ingest, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.api.app import create_app
from vidloc.api.status import StatusBook
from vidloc.client import (
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    JobFailed,
    NotFound,
    WaitTimeout,
)
from vidloc.settings import Settings


class Publisher:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def publish(self, topic: str, key: str, value: bytes, *, timeout_s: float = 30.0) -> None:
        self.sent.append(value)

    def close(self) -> None:
        pass


@pytest.fixture
def world() -> Iterator[tuple[str, WritableStore, StatusBook, Publisher]]:
    store, book, publisher = WritableStore(), StatusBook(), Publisher()
    store.put_tenant_timeline("vid-1", None)
    book.apply_result(make_result("vid-1"))
    book.apply_progress(make_progress("vid-run", at=datetime.now(UTC).isoformat()))
    app = create_app(Settings(), store=store, book=book, follow_bus=False, probes={})  # type: ignore[arg-type]
    app.state.front._publisher = publisher
    base_url, stop = serve_in_thread(app)
    try:
        yield base_url, store, book, publisher
    finally:
        stop()


def answer(store: WritableStore, book: StatusBook, aid: str, status: str = "succeeded") -> None:
    """What a worker does when it has answered: the timeline, then the result event."""
    if status == "succeeded":
        timeline = make_timeline("vid-1", analysis_id=aid, job_id="j-answer")
        store.objects[("timelines", names.analysis_timeline_key("vid-1", aid))] = encode(timeline)
    result = make_result("vid-1", status, at=datetime.now(UTC).isoformat(), job="j-answer")
    book.apply_result(result.model_copy(update={"analysis_id": aid}))


def test_ask_wait_and_read(world: tuple[str, WritableStore, StatusBook, Publisher]) -> None:
    base_url, store, book, publisher = world
    with Client(base_url) as vidloc:
        job = vidloc.ask("vid-1", prompt="who stands up", labels=["stand up"])
        assert job.asked.status == "running" and job.analysis_id != "default"
        event = decode_ingest(publisher.sent[0])
        assert event.analysis_id == job.analysis_id and event.options.labels == ["stand up"]
        with pytest.raises(WaitTimeout):
            job.wait(timeout_s=0.2, poll_s=0.05)
        answer(store, book, job.analysis_id)
        done = job.wait(timeout_s=5, poll_s=0.05)
        assert done.status == "succeeded" and done.prompt == "who stands up"
        assert job.timeline().job_id == "j-answer"
        assert vidloc.analysis_timeline("vid-1", "default").job_id == "job-1"
        listed = vidloc.analyses("vid-1")
        assert [a.analysis_id for a in listed] == ["default", job.analysis_id]
        # Retries with one idempotency key are one analysis.
        again = vidloc.ask("vid-1", labels=["wave"], idempotency_key="k")
        assert vidloc.ask("vid-1", labels=["wave"], idempotency_key="k").analysis_id == (
            again.analysis_id
        )
        assert len(publisher.sent) == 2


def test_refusals_raise_the_clients_errors(
    world: tuple[str, WritableStore, StatusBook, Publisher],
) -> None:
    base_url, store, book, publisher = world
    with Client(base_url) as vidloc:
        with pytest.raises(NotFound):
            vidloc.ask("nope", prompt="p")
        with pytest.raises(Conflict):
            vidloc.ask("vid-run", prompt="p")
        with pytest.raises(InvalidRequest):
            vidloc.ask("vid-1", prompt="  ")
        with pytest.raises(InvalidRequest):
            vidloc.ask("vid-1", prompt="x" * 8001)
        assert publisher.sent == []
        job = vidloc.ask("vid-1", prompt="p")
        answer(store, book, job.analysis_id, "failed")
        with pytest.raises(JobFailed) as failed:
            job.wait(timeout_s=5, poll_s=0.05)
        assert failed.value.code == "decode_failed"


def test_the_async_client_asks_the_same(
    world: tuple[str, WritableStore, StatusBook, Publisher],
) -> None:
    base_url, store, book, _ = world

    async def scenario() -> None:
        async with AsyncClient(base_url) as vidloc:
            job = await vidloc.ask("vid-1", labels=["slide"])
            answer(store, book, job.analysis_id)
            assert (await job.wait(timeout_s=5, poll_s=0.05)).status == "succeeded"
            assert (await job.timeline()).analysis_id == job.analysis_id
            ids = [a.analysis_id for a in await vidloc.analyses("vid-1")]
            assert ids == ["default", job.analysis_id]
            first = await vidloc.analysis("vid-1", "default")
            assert first.status == "succeeded" and first.prompt == "Find the shapes"
            with pytest.raises(Conflict):
                await vidloc.ask("vid-run", prompt="p")

    asyncio.run(scenario())
