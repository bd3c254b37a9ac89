"""Two tenants, one name, different content: each gets its own events, never the other's.

Everything that decides "this work was already done" (segment event and job ids, segment video
ids, checkpoint keys and fingerprints, work markers, stream state) must name the tenant and the
object version (docs/idempotency.md). Here through the real stack: the store's bucket
notifications -> ``s3.events`` -> a real bridge -> ``video.ingest`` -> a real worker with the fake
model. Two HLS streams with the same stream id under ``tenants/<acme>/hls/<id>/`` and
``tenants/<bravo>/hls/<id>/`` are written one after the other, then two files under the same
relative key; bravo's timelines must hold bravo's events and none of acme's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from apistack import wait_succeeded
from pipeline import REPO, Watcher, Workers
from reliability import Ingest, stream_worker, upload
from test_stream import MATCH_S, ResultTail, stream_timeline
from test_stream_hls import encode_hls, playlist_upto

from contracts import ResultEvent, Timeline, decode_timeline, derive_video_id
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from producers.bridge import run_bridge
from producers.hls import parse_playlist
from vidloc import names
from vidloc.adapters.kafka import park_group_at_end
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def _clip(name: str, *events: SyntheticEvent) -> VideoSpec:
    # Same length, same keyframes, hence the same segment cuts and plans: only what is drawn
    # differs, which is what a tenant-blind identity cannot tell apart.
    return VideoSpec(
        name=name, duration_s=8.0, fps=10.0, width=320, height=180, events=events, gop=10
    )


ACME_SPEC = _clip(
    "tenant_acme_h264",
    SyntheticEvent("red circle", 1.0, 3.5),
    SyntheticEvent("green square", 5.0, 7.5),
)
BRAVO_SPEC = _clip(
    "tenant_bravo_h264",
    SyntheticEvent("blue triangle", 0.5, 4.5),
    SyntheticEvent("yellow star", 5.5, 7.0),
)
# Unique per run: nothing another run left in the shared topics or buckets is these tenants'.
ACME, BRAVO = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("acme", "bravo"))


@pytest.fixture(scope="module")
def tenant_settings(stack: Settings) -> Settings:
    bucket = f"tenants-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(update={"video_bucket": bucket})
    ObjectStore(settings).ensure_bucket(bucket)
    return settings


@pytest.fixture(scope="module")
def fake_model() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


@pytest.fixture(scope="module")
def worker(
    tenant_settings: Settings, fake_model: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    with stream_worker(
        tenant_settings, fake_model, tmp_path_factory.mktemp("tenant-worker-logs")
    ) as pool:
        yield pool


@pytest.fixture(scope="module")
def bridge(tenant_settings: Settings) -> Iterator[threading.Thread]:
    group = f"test-tenant-bridge-{uuid.uuid4().hex[:8]}"
    park_group_at_end(tenant_settings, group, names.TOPIC_S3_EVENTS)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_bridge,
        kwargs={"settings": tenant_settings, "stop": stop, "group_id": group},
        name="test-tenant-bridge",
        daemon=True,
    )
    thread.start()
    yield thread
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the bridge did not stop within 20 s of stop.set()"


def _assert_holds_exactly(timeline: Timeline, spec: VideoSpec, other: VideoSpec) -> None:
    labels = sorted(e.label for e in timeline.events)
    foreign = {e.label for e in other.events} & set(labels)
    assert not foreign, f"{spec.name}'s timeline holds {other.name}'s events: {timeline.events}"
    assert labels == sorted(e.label for e in spec.events), timeline.events
    for truth in spec.events:
        (event,) = [e for e in timeline.events if e.label == truth.label]
        assert abs(event.start_s - truth.start_s) <= MATCH_S, (truth, event)
        assert abs(event.end_s - truth.end_s) <= MATCH_S, (truth, event)


def _final_of(tail: ResultTail, stream_id: str, tenant: str, timeout_s: float) -> ResultEvent:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for _, result in list(tail.follow(stream_id).got):
            if result.tenant == tenant and result.stream is not None and result.stream.ended:
                return result
        time.sleep(0.2)
    raise AssertionError(f"no final result for {tenant}'s stream {stream_id} in {timeout_s:.0f} s")


def test_one_stream_id_under_two_tenants_keeps_each_tenants_events(
    tenant_settings: Settings, worker: Workers, bridge: threading.Thread, tmp_path: Path
) -> None:
    store = ObjectStore(tenant_settings)
    bucket = tenant_settings.video_bucket
    stream_id = f"cam-{uuid.uuid4().hex[:8]}"
    tail = ResultTail(tenant_settings)
    finals: dict[str, ResultEvent] = {}
    try:
        for tenant, spec in ((ACME, ACME_SPEC), (BRAVO, BRAVO_SPEC)):
            clip = ensure_rendered(spec, REPO / ".cache" / "test-media")
            out = tmp_path / tenant
            full = encode_hls(clip, out)
            segments = parse_playlist(full).segments
            prefix = f"tenants/{tenant}/hls/{stream_id}/"
            for count, seg in enumerate(segments, start=1):
                store.upload_file(bucket, prefix + seg.uri, out / seg.uri)
                playlist = playlist_upto(full, count, ended=count == len(segments))
                store.put_bytes(bucket, prefix + "index.m3u8", playlist)
            # One after the other: bravo's stream starts once acme's has ended.
            finals[tenant] = _final_of(tail, stream_id, tenant, 90)
        time.sleep(2.0)  # a little longer, to catch a late or duplicate result
        got = [r for _, r in tail.follow(stream_id).got]
    finally:
        tail.close()

    acme = stream_timeline(tenant_settings, finals[ACME])
    bravo = stream_timeline(tenant_settings, finals[BRAVO])
    assert finals[ACME].timeline is not None and finals[BRAVO].timeline is not None
    assert finals[ACME].timeline.key == names.timeline_key(stream_id, ACME)
    assert finals[BRAVO].timeline.key == names.timeline_key(stream_id, BRAVO)
    _assert_holds_exactly(acme, ACME_SPEC, BRAVO_SPEC)
    _assert_holds_exactly(bravo, BRAVO_SPEC, ACME_SPEC)
    # Each tenant's segment results are its own: no result event id is shared, so a reader
    # that drops replays by event id does not drop bravo's results as acme's.
    acme_ids = {r.event_id for r in got if r.tenant == ACME}
    bravo_ids = {r.event_id for r in got if r.tenant == BRAVO}
    assert acme_ids and bravo_ids and not acme_ids & bravo_ids, (acme_ids, bravo_ids)
    assert all(r.tenant in (ACME, BRAVO) for r in got)


def test_one_relative_key_under_two_tenants_keeps_each_tenants_events(
    tenant_settings: Settings, worker: Workers, bridge: threading.Thread
) -> None:
    store = ObjectStore(tenant_settings)
    bucket = tenant_settings.video_bucket
    name = f"clip-{uuid.uuid4().hex[:8]}"
    watcher = Watcher(tenant_settings)
    results: dict[str, ResultEvent] = {}
    try:
        for tenant, spec in ((ACME, ACME_SPEC), (BRAVO, BRAVO_SPEC)):
            clip = ensure_rendered(spec, REPO / ".cache" / "test-media")
            key = f"tenants/{tenant}/uploads/{name}{clip.suffix}"
            info = store.upload_file(bucket, key, clip)
            video_id = derive_video_id(bucket, key, info.etag)
            results[tenant] = wait_succeeded(watcher, video_id, timeout_s=120)
    finally:
        watcher.close()

    for tenant, spec, other in ((ACME, ACME_SPEC, BRAVO_SPEC), (BRAVO, BRAVO_SPEC, ACME_SPEC)):
        result = results[tenant]
        assert result.tenant == tenant
        assert result.timeline is not None
        assert result.timeline.key == names.timeline_key(result.video_id, tenant)
        timeline = decode_timeline(store.get_bytes(result.timeline.bucket, result.timeline.key))
        _assert_holds_exactly(timeline, spec, other)
    assert results[ACME].video_id != results[BRAVO].video_id
    assert results[ACME].job_id != results[BRAVO].job_id


def test_two_tenants_naming_their_uploads_alike_keep_each_tenants_events(
    tenant_settings: Settings, worker: Workers
) -> None:
    """Each tenant's own producer names its upload by the relative key: the same video id and
    the same event id for two different files. Ids are the sender's to choose; the work done for
    one tenant's object must still never answer the other's."""
    store = ObjectStore(tenant_settings)
    bucket = tenant_settings.video_bucket
    name = f"clip-{uuid.uuid4().hex[:8]}"
    watcher = Watcher(tenant_settings)
    ingest = Ingest(tenant_settings)
    results: dict[str, ResultEvent] = {}
    try:
        for tenant, spec in ((ACME, ACME_SPEC), (BRAVO, BRAVO_SPEC)):
            clip = ensure_rendered(spec, REPO / ".cache" / "test-media")
            key = f"tenants/{tenant}/uploads/{name}{clip.suffix}"
            uploaded = upload(store, bucket, key, clip)
            event = uploaded.model_copy(
                update={"video_id": name, "event_id": f"upload-{name}", "tenant": tenant}
            )
            ingest.send(event)
            results[tenant] = _succeeded_for(watcher, name, tenant, 120)
    finally:
        watcher.close()
        ingest.close()

    for tenant, spec, other in ((ACME, ACME_SPEC, BRAVO_SPEC), (BRAVO, BRAVO_SPEC, ACME_SPEC)):
        result = results[tenant]
        assert result.timeline is not None
        assert result.timeline.key == names.timeline_key(name, tenant)
        timeline = decode_timeline(store.get_bytes(result.timeline.bucket, result.timeline.key))
        _assert_holds_exactly(timeline, spec, other)


def _succeeded_for(watcher: Watcher, video_id: str, tenant: str, timeout_s: float) -> ResultEvent:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        watcher.drain(0.5)
        for result in watcher.seen.results.get(video_id, []):
            if result.status == "succeeded" and result.tenant == tenant:
                return result
    raise AssertionError(
        f"no succeeded result for {tenant}'s {video_id} in {timeout_s:.0f} s: "
        f"{[(r.tenant, r.status, r.error) for r in watcher.seen.results.get(video_id, [])]}"
    )
