"""Which tenant an event belongs to, refused messages without a video, stalled jobs (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_fixtures import make_progress, make_result

from contracts import ObjectRef
from vidloc.api.status import BusView, StatusBook, derive_state, event_tenant


def test_the_key_prefix_beats_the_declared_tenant() -> None:
    result = make_result("v").model_copy(
        update={"source": ObjectRef(bucket="videos", key="tenants/acme/up/v.mp4"), "tenant": "evil"}
    )
    assert event_tenant(result) == "acme"
    assert event_tenant(make_result("v").model_copy(update={"tenant": "bravo"})) == "bravo"
    assert event_tenant(make_result("v")) is None
    assert event_tenant(make_progress("v").model_copy(update={"tenant": "acme"})) == "acme"


def test_book_keeps_tenants_apart() -> None:
    book = StatusBook()
    book.apply_result(make_result("same").model_copy(update={"tenant": "acme"}))
    book.apply_result(make_result("same", "failed").model_copy(update={"tenant": "bravo"}))
    book.apply_result(make_result("plain"))
    assert set(book.snapshot("acme")) == {"same"} and set(book.snapshot(None)) == {"plain"}
    acme, bravo = book.get("same", "acme"), book.get("same", "bravo")
    assert acme is not None and acme.result is not None and acme.result.status == "succeeded"
    assert bravo is not None and bravo.result is not None and bravo.result.status == "failed"
    assert book.get("same") is None


def test_a_refused_message_without_a_video_is_not_a_video() -> None:
    book = StatusBook()
    book.apply_result(make_result("unknown", "failed"))
    book.apply_result(make_result("refused-0123456789abcdef01234567", "failed"))
    assert book.snapshot_all() == {}
    # A refused message that did name its video (its Kafka key) is still listed under it.
    book.apply_result(make_result("v-named", "failed"))
    assert set(book.snapshot()) == {"v-named"}


def test_a_job_without_recent_progress_is_stalled_until_it_reports_again() -> None:
    at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    view = BusView(progress=make_progress("v", at=at.isoformat()))

    def status(now: datetime, v: BusView = view) -> str | None:
        state = derive_state("v", v, has_timeline=False, now=now, stalled_after_s=600)
        return state.status if state else None

    assert status(at + timedelta(seconds=599)) == "running"
    assert status(at + timedelta(seconds=601)) == "stalled"
    redelivered = BusView(progress=make_progress("v", at=(at + timedelta(seconds=700)).isoformat()))
    assert status(at + timedelta(seconds=701), redelivered) == "running"
    # Without a clock (metrics) nothing is called stalled.
    state = derive_state("v", view, has_timeline=False)
    assert state is not None and state.status == "running"


def test_the_bridge_gives_an_upload_under_a_tenant_prefix_to_that_tenant() -> None:
    from producers.notifications import CreatedObject, build_ingest_event

    def tenant_of(key: str) -> str | None:
        obj = CreatedObject("videos", key, 10, "e", "s3:ObjectCreated:Put")
        return build_ingest_event(obj, "e", now=datetime.now(UTC)).tenant

    assert tenant_of("tenants/acme/cam/1.mp4") == "acme"
    assert tenant_of("cam/1.mp4") is None
    assert tenant_of("tenants/1.mp4") is None
