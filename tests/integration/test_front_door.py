"""The front door through the real stack: ``POST /videos`` (a presigned upload the bridge turns
into a job, an object named in the bucket), webhooks delivered by the deliverer from
``video.results`` to a real receiver on 127.0.0.1, the event stream, and the Python client,
including the README's example. Workers are real processes (the cv localizer: no model)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from apistack import isolated_settings, wait_succeeded
from pipeline import REPO, Watcher, Workers
from receiver import Receiver

from contracts import decode_result
from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from producers.bridge import run_bridge
from vidloc import names
from vidloc.adapters.kafka import park_group_at_end
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.client import (
    AsyncClient,
    Client,
    Forbidden,
    InvalidRequest,
    NotFound,
    TooLarge,
    Unauthorized,
)
from vidloc.settings import Settings
from vidloc.webhooks import Deliverer, verify

pytestmark = pytest.mark.integration

TENANT = f"door-{uuid.uuid4().hex[:8]}"
PART_BYTES = 5 * 1024 * 1024


@dataclass
class Door:
    settings: Settings
    base_url: str
    key: str
    read_key: str  # the same tenant, scope read only
    watcher: Watcher
    deliverer: Deliverer
    video: Path


@pytest.fixture(scope="module")
def door(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    tmp = tmp_path_factory.mktemp("door")
    base = isolated_settings(stack, "door")
    keys_path = tmp / "keys.json"
    file, _, key = add_key(KeysFile(), TENANT, ("read", "submit"))
    file, _, read_key = add_key(file, TENANT, ("read",))
    write_keys_file(keys_path, file)
    settings = base.model_copy(
        update={
            "api_keys_file": keys_path,
            "webhook_allowed_networks": "127.0.0.1/32",
            "webhook_refresh_s": 1.0,
            "webhook_backoff_max_s": 1.0,
            "webhook_timeout_s": 20.0,
            "webhook_group": f"test-webhooks-{uuid.uuid4().hex[:10]}",
            # The smallest part S3 takes, so a test file of a few MiB uploads in parts.
            "api_upload_part_bytes": PART_BYTES,
        }
    )
    for topic in (names.TOPIC_RESULTS, names.TOPIC_PROGRESS):
        park_group_at_end(settings, settings.webhook_group, topic)
    bridge_group = f"test-bridge-{uuid.uuid4().hex[:10]}"
    park_group_at_end(settings, bridge_group, names.TOPIC_S3_EVENTS)
    env = {
        **os.environ,
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_LOCALIZER": "cv",
        "VIDLOC_WORK_DIR": str(tmp / "work"),
    }
    (tmp / "logs").mkdir()
    workers = Workers(settings, env, tmp / "logs")
    watcher = Watcher(settings)
    stop = threading.Event()
    deliverer = Deliverer(settings)
    threads = [
        threading.Thread(target=deliverer.run, args=(stop,), daemon=True),
        threading.Thread(
            target=run_bridge,
            kwargs={"settings": settings, "stop": stop, "group_id": bridge_group},
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    app = create_app(settings)
    base_url, stop_api = serve_in_thread(app)
    video = ensure_rendered(
        {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
    )
    try:
        workers.start(1)
        assert app.state.feed.caught_up.wait(120.0), app.state.feed.last_error
        yield Door(settings, base_url, key, read_key, watcher, deliverer, video)
    finally:
        stop_api()
        stop.set()
        for thread in threads:
            thread.join(30)
        workers.stop()
        watcher.close()


def _ours(receiver: Receiver, video_id: str) -> list[tuple[str, int]]:
    """(delivery id, status) of every request about ``video_id``'s succeeded result."""
    out = []
    for r in list(receiver.requests):
        result = decode_result(r.body)
        if result.video_id == video_id and result.status == "succeeded":
            out.append((r.delivery_id, r.status))
    return out


def test_upload_then_webhook_after_three_500s_delivers_each_result_once(door: Door) -> None:
    receiver = Receiver(fail_first=3)
    url = receiver.start()
    try:
        with Client(door.base_url, door.key) as client:
            hook = client.add_webhook(url)
            assert hook.secret.startswith("whsec_") and hook.scope == "tenant"
            job = client.submit(door.video, prompt="find the cuts", labels=["cut"])
            assert job.submitted.status == "awaiting_upload"
            assert job.submitted.source is not None
            assert job.submitted.source.key.startswith(f"tenants/{TENANT}/uploads/api/")
            result = wait_succeeded(door.watcher, job.video_id, timeout_s=180)
            # The upload started the job with the options given to POST /videos.
            assert result.tenant == TENANT
            assert client.timeline(job.video_id).prompt == "find the cuts"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (job.video_id, 200) not in [
                (decode_result(r.body).video_id, r.status) for r in receiver.delivered()
            ]:
                time.sleep(0.2)
            time.sleep(3.0)  # a duplicate would come now
            client.remove_webhook(hook.id)
        ours = _ours(receiver, job.video_id)
        statuses = defaultdict(list)
        for delivery, status in ours:
            statuses[delivery].append(status)
        assert len(statuses) == 1, ours  # one result event, one delivery id
        (attempts,) = statuses.values()
        assert attempts == [500, 500, 500, 200]
        # Every result delivered to this receiver got exactly one 200 per delivery id.
        ok = Counter(r.delivery_id for r in receiver.delivered())
        assert ok and set(ok.values()) == {1}
        delivered = next(
            r for r in receiver.delivered() if decode_result(r.body).event_id == result.event_id
        )
        assert verify(hook.secret, delivered.signature, delivered.body, now=time.time())
        assert not verify("whsec_wrong", delivered.signature, delivered.body, now=time.time())
        assert delivered.event == "result"
    finally:
        receiver.stop()


def _padded(video: Path, size: int, out: Path) -> Path:
    """``video`` grown to ``size`` bytes by a top-level MP4 ``free`` box, which players and
    decoders skip: a valid video big enough for a multipart upload."""
    data = video.read_bytes()
    pad = size - len(data)
    out.write_bytes(data + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8))
    return out


def test_multipart_upload_with_plain_http_puts_starts_the_job(door: Door, tmp_path: Path) -> None:
    video = _padded(door.video, 2 * PART_BYTES + 123_457, tmp_path / "big.mp4")
    auth = {"Authorization": f"Bearer {door.key}"}
    with httpx.Client(base_url=door.base_url, headers=auth, timeout=30) as api:
        announced = api.post(
            "/videos",
            json={
                "file_name": "big.mp4",
                "size": video.stat().st_size,
                "content_type": "video/mp4",
                "labels": ["cut"],
            },
        )
        assert announced.status_code == 201, announced.text
        body = announced.json()
        plan = body["upload"]
        assert plan["upload_id"] and plan["url"] is None
        assert [p["part_number"] for p in plan["parts"]] == [1, 2, 3]
        assert [p["size"] for p in plan["parts"]] == [PART_BYTES, PART_BYTES, 123_457]
        # Each part PUT as curl -T or a browser's fetch would: no API key, no SDK, the etag
        # taken from the response header as it comes (quoted).
        parts = []
        with video.open("rb") as fh, httpx.Client(timeout=60) as s3:
            for part in plan["parts"]:
                put = s3.put(part["url"], content=fh.read(part["size"]))
                assert put.status_code == 200, put.text
                assert put.headers["etag"].startswith('"')
                parts.append({"part_number": part["part_number"], "etag": put.headers["etag"]})
        # Nothing starts before the parts are joined.
        assert body["video_id"] not in door.watcher.seen.results
        wrong = api.post(
            plan["complete_url"],
            json={"upload_id": plan["upload_id"], "parts": [{**parts[0], "etag": '"0"'}]},
        )
        assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "upload_mismatch"
        done = api.post(plan["complete_url"], json={"upload_id": plan["upload_id"], "parts": parts})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "queued"
        again = api.post(
            plan["complete_url"], json={"upload_id": plan["upload_id"], "parts": parts}
        )
        assert again.status_code == 404
    stored = ObjectStore(door.settings).stat(door.settings.video_bucket, body["source"]["key"])
    assert stored.size == video.stat().st_size and stored.etag.endswith("-3")
    result = wait_succeeded(door.watcher, body["video_id"], timeout_s=180)
    assert result.tenant == TENANT
    with Client(door.base_url, door.key) as client:
        timeline = client.timeline(body["video_id"])
    assert timeline.source.size == video.stat().st_size
    assert timeline.labels == ["cut"]


def test_async_client_submits_waits_reads_and_raises_the_apis_codes(
    door: Door, tmp_path: Path
) -> None:
    """The sync client's calls, awaited: an upload (in parts: the client's multipart path), an
    object in the bucket, wait, timeline, events, webhooks, and the API's errors as exceptions."""
    video = _padded(door.video, PART_BYTES + 4096, tmp_path / "async.mp4")
    key = f"clips/{uuid.uuid4().hex[:8]}-async.mp4"
    ObjectStore(door.settings).upload_file(
        door.settings.video_bucket, f"tenants/{TENANT}/{key}", door.video
    )

    async def scenario() -> None:
        async with AsyncClient(door.base_url, door.key) as client:
            uploaded = await client.submit(video, prompt="find the cuts", labels=["cut"])
            assert uploaded.submitted.status == "awaiting_upload"
            assert uploaded.submitted.upload is not None
            assert len(uploaded.submitted.upload.parts) == 2
            named = await client.submit_object(key, labels=["cut"])
            assert named.submitted.status == "queued" and named.job_id
            done = await asyncio.gather(uploaded.wait(timeout_s=180), named.wait(timeout_s=180))
            assert [v.status for v in done] == ["succeeded", "succeeded"]
            timeline = await uploaded.timeline()
            assert timeline.prompt == "find the cuts"
            assert timeline.source.size == video.stat().st_size
            # h264_mp4 cuts at 4 s and 8 s (its spec; the cv localizer also cuts at its black
            # segment's edges).
            cuts = await named.events(label="cut")
            assert {e.label for e in cuts} == {"cut"}
            assert {4, 8} <= {round(e.start_s) for e in cuts}
            later = await client.events(named.video_id, label="cut", start_s=6.0)
            assert later == [e for e in cuts if e.end_s >= 6.0] and len(later) < len(cuts)
            hook = await client.add_webhook("http://127.0.0.1:9/hook")
            assert hook.id in {h.id for h in await client.webhooks()}
            await client.remove_webhook(hook.id)
            assert hook.id not in {h.id for h in await client.webhooks()}

            with pytest.raises(NotFound) as missing:
                await client.timeline("api-nosuchvideo0000")
            assert missing.value.code in {"video_not_found", "timeline_not_found"}
            with pytest.raises(NotFound) as no_object:
                await client.submit_object("clips/no-such-object.mp4")
            assert no_object.value.code == "object_not_found"
            with pytest.raises(InvalidRequest) as internal:
                await client.add_webhook("http://10.1.2.3/hook")
            assert internal.value.code == "target_not_allowed"
            with pytest.raises(InvalidRequest) as not_video:
                await client.submit(tmp_path / "notes.txt")
            assert not_video.value.code == "not_a_video_name"
            with pytest.raises(TooLarge) as too_large:
                await client.submit(huge)  # refused on its announced size, before any byte
            assert too_large.value.code == "video_too_large"
        async with AsyncClient(door.base_url, "vk_not-a-key") as stranger:
            with pytest.raises(Unauthorized):
                await stranger.video(named.video_id)
        async with AsyncClient(door.base_url, door.read_key) as reader:
            assert (await reader.video(named.video_id)).status == "succeeded"
            with pytest.raises(Forbidden):
                await reader.submit_object(key)

    (tmp_path / "notes.txt").write_text("not a video")
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as fh:  # sparse: no disk spent
        fh.truncate(door.settings.api_submit_max_bytes + 1)
    asyncio.run(scenario())


def test_two_api_replicas_share_one_daily_count(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """VIDLOC_API_SUBMIT_PER_DAY holds for the deployment: two replicas (two apps, one store)
    allow it once between them, not once each."""
    settings = isolated_settings(stack, "quota")
    keys_path = tmp_path_factory.mktemp("quota") / "keys.json"
    file, entry, key = add_key(KeysFile(), TENANT, ("submit",))
    file, _, other = add_key(file, TENANT, ("submit",))
    write_keys_file(keys_path, file)
    settings = settings.model_copy(update={"api_keys_file": keys_path, "api_submit_per_day": 3})
    replicas = [serve_in_thread(create_app(settings)) for _ in range(2)]
    upload = {"file_name": "a.mp4", "size": 1000}
    try:
        codes = []
        for n in range(4):
            base_url = replicas[n % 2][0]
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as api:
                codes.append(api.post("/videos", json=upload))
        assert [r.status_code for r in codes] == [201, 201, 201, 429]
        refused = codes[-1]
        assert refused.json()["error"]["code"] == "submit_quota_exceeded"
        assert 86000 < int(refused.headers["Retry-After"]) <= 86400
        # Another key of the same tenant has its own count.
        auth = {"Authorization": f"Bearer {other}"}
        with httpx.Client(base_url=replicas[1][0], headers=auth) as api:
            assert api.post("/videos", json=upload).status_code == 201
        count = ObjectStore(settings).get_bytes(
            settings.timeline_bucket, f"submit-quota/{entry.id}.json"
        )
        assert len(json.loads(count)["stamps"]) == 3
    finally:
        for _, stop in replicas:
            stop()


def test_a_receiver_that_never_answers_does_not_slow_the_next_result(door: Door) -> None:
    hanging, healthy = Receiver(hang=True), Receiver()
    hang_url, ok_url = hanging.start(), healthy.start()
    store = ObjectStore(door.settings)
    keys = [f"clips/{uuid.uuid4().hex[:8]}-{n}.mp4" for n in range(2)]
    for key in keys:
        store.upload_file(door.settings.video_bucket, f"tenants/{TENANT}/{key}", door.video)
    took = []
    try:
        with Client(door.base_url, door.key) as client:
            client.add_webhook(hang_url)
            client.add_webhook(ok_url)
            time.sleep(1.5)  # the deliverer re-reads registrations every second here
            for key in keys:
                started = time.monotonic()
                job = client.submit_object(key, labels=["cut"])
                assert job.submitted.status == "queued" and job.job_id
                wait_succeeded(door.watcher, job.video_id, timeout_s=120)
                took.append((job.video_id, time.monotonic() - started))
        first, second = (t for _, t in took)
        # The second job's result reached Kafka as fast as the first's, while every delivery
        # to the hanging receiver waits out its 20 s timeout and retries.
        assert second < max(2 * first, first + 10.0) and second < 20.0, took
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not {v for v, _ in took} <= {
            decode_result(r.body).video_id for r in healthy.delivered()
        }:
            time.sleep(0.2)
        assert {v for v, _ in took} <= {decode_result(r.body).video_id for r in healthy.delivered()}
    finally:
        hanging.stop()
        healthy.stop()


def test_event_stream_pushes_progress_and_the_result(door: Door) -> None:
    store = ObjectStore(door.settings)
    key = f"clips/{uuid.uuid4().hex[:8]}-sse.mp4"
    store.upload_file(door.settings.video_bucket, f"tenants/{TENANT}/{key}", door.video)
    with Client(door.base_url, door.key) as client:
        job = client.submit_object(key)
    kinds = []
    auth = {"Authorization": f"Bearer {door.key}"}
    path = f"/videos/{job.video_id}/events-stream"
    with (
        httpx.Client(base_url=door.base_url, headers=auth, timeout=120) as http,
        http.stream("GET", path) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kinds.append(line.removeprefix("event: "))
    assert kinds[-1] == "end" and "result" in kinds
    with httpx.Client(base_url=door.base_url, headers=auth) as http:
        missing = http.get("/videos/api-nosuchvideo0000/events-stream")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "video_not_found"


def test_the_readme_example_runs(door: Door, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- client-example -->\s*```python\n(.*?)```", readme, re.S)
    assert match is not None, "the README's client example is missing"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 6
    code = code.replace("http://127.0.0.1:8080", door.base_url).replace(
        '"talk.mp4"', repr(str(door.video))
    )
    namespace: dict[str, object] = {"api_key": door.key}
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        client = namespace.get("vidloc")
        if isinstance(client, Client):
            client.close()
    assert capsys.readouterr().out.strip(), "the example printed no event"
