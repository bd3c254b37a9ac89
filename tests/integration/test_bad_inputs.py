"""Bad inputs through real workers: each is refused with a specific error code, dead-lettered,
and the worker goes on serving the partition; odd-but-valid inputs succeed.

All file and message cases go to partition 0 in one batch (one worker serves them in order) and
end with a good video, which must still succeed: a poison message never blocks its partition.
Model-answer faults run one at a time, since the fake server applies faults in request order.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline import REPO, Outputs, Watcher, Workers
from reliability import (
    Ingest,
    assert_one_outcome,
    files_under,
    record,
    set_faults,
    upload,
    wait_group_stable,
)

from contracts import IngestEvent, encode
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import (
    corrupt_copy,
    ensure_rendered,
    write_audio_only,
    write_still_image,
)
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"
MAX_MESSAGE_BYTES = 100_000
MAX_OBJECT_BYTES = 2_000_000
LIMITS = {
    "VIDLOC_MAX_PIXELS": str(1_000_000),
    "VIDLOC_MAX_DURATION_S": "60",
    "VIDLOC_MAX_OBJECT_BYTES": str(MAX_OBJECT_BYTES),
    "VIDLOC_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
}


@dataclass
class Ctx:
    store: ObjectStore
    bucket: str
    media: Path  # a directory of generated bad files
    good: Path  # a small valid h264 clip
    long: Path  # a 100 s clip (over the 60 s duration limit)
    run: str

    def put(self, name: str, path: Path) -> IngestEvent:
        return upload(self.store, self.bucket, f"bad-{self.run}/{name}", path)


Case = Callable[[Ctx], IngestEvent | tuple[str, bytes]]


def _file(name: str) -> Case:
    return lambda ctx: ctx.put(name, ctx.media / name)


def _deleted(ctx: Ctx) -> IngestEvent:
    event = ctx.put("deleted.mp4", ctx.good)
    ctx.store.delete(ctx.bucket, event.source.key)
    return event


def _replaced(ctx: Ctx) -> IngestEvent:
    event = ctx.put("replaced.mp4", ctx.good)
    ctx.put("replaced.mp4", ctx.long)  # a new version: the event's etag no longer matches
    return event


def _raw(doc_or_bytes: dict[str, object] | bytes) -> Case:
    def build(ctx: Ctx) -> tuple[str, bytes]:
        video_id = f"raw-{ctx.run}-{uuid.uuid4().hex[:8]}"
        if isinstance(doc_or_bytes, bytes):
            return video_id, doc_or_bytes
        doc = json.loads(json.dumps(doc_or_bytes).replace("BUCKET", ctx.bucket))
        doc.setdefault("video_id", video_id)
        return str(doc["video_id"]), json.dumps(doc).encode()

    return build


def _event(**source: object) -> dict[str, object]:
    base: dict[str, object] = {
        "bucket": "BUCKET",
        "key": "some/video.mp4",
        "etag": "abc",
        "size": 1,
    }
    return {
        "schema": "vidloc.ingest.v1",
        "event_id": f"test-{uuid.uuid4().hex}",
        "source": {**base, **source},
        "submitted_at": "2026-11-25T00:00:00Z",
    }


def _oversized(ctx: Ctx) -> tuple[str, bytes]:
    video_id = f"raw-{ctx.run}-big"
    doc = _event()
    doc["video_id"] = video_id
    doc["options"] = {"extra": {"padding": "x" * (3 * MAX_MESSAGE_BYTES)}}
    return video_id, json.dumps(doc).replace("BUCKET", ctx.bucket).encode()


def _unicode_key(ctx: Ctx) -> IngestEvent:
    return ctx.put("dir with space/vidéo 東京 ☃.mp4", ctx.good)


# (id, builder, expected status, expected error code)
CASES: list[tuple[str, Case, str, str | None]] = [
    ("empty_object", _file("empty.mp4"), "failed", "not_a_video"),
    # A truncated upload now succeeds in part, with a warning: test_decoders_e2e.py.
    ("partly_decodable", _file("garbled.mp4"), "failed", "decode_failed"),
    ("random_bytes", _file("random.mp4"), "failed", "not_a_video"),
    ("text_named_mp4", _file("text.mp4"), "failed", "not_a_video"),
    ("still_image", _file("image.png"), "failed", "not_a_video"),
    ("audio_only", _file("audio.m4a"), "failed", "not_a_video"),
    ("subtitles_only", _file("subs_only.mkv"), "failed", "not_a_video"),
    ("huge_resolution", _file("huge_res.mp4"), "failed", "resolution_too_large"),
    ("too_long", lambda ctx: ctx.put("long.mp4", ctx.long), "failed", "video_too_long"),
    ("object_too_large", _file("big.mp4"), "failed", "object_too_large"),
    ("object_deleted", _deleted, "failed", "object_missing"),
    ("object_replaced", _replaced, "failed", "object_missing"),
    (
        "malformed_json",
        _raw(b'{"schema": "vidloc.ingest.v1", "event_id": '),
        "failed",
        "malformed_message",
    ),
    ("not_utf8", _raw(b"\xff\xfe\x00binary"), "failed", "malformed_message"),
    ("json_array", _raw(b"[1, 2, 3]"), "failed", "malformed_message"),
    (
        "missing_fields",
        _raw({"schema": "vidloc.ingest.v1", "event_id": "e"}),
        "failed",
        "bad_ingest_event",
    ),
    ("mistyped_size", _raw(_event(size="big")), "failed", "bad_ingest_event"),
    (
        "unknown_schema",
        _raw({**_event(), "schema": "vidloc.ingest.v9"}),
        "failed",
        "unknown_schema",
    ),
    ("oversized_message", _oversized, "failed", "message_too_large"),
    ("dotdot_key", _raw(_event(key="a/../../etc/passwd")), "failed", "key_not_allowed"),
    ("foreign_bucket", _raw(_event(bucket="someone-elses-bucket")), "failed", "bucket_not_allowed"),
    ("url_bucket", _raw(_event(bucket="https://evil.example/videos")), "failed", "url_not_allowed"),
    ("url_key", _raw(_event(key="https://evil.example/v.mp4")), "failed", "url_not_allowed"),
    ("spaces_and_unicode_key", _unicode_key, "succeeded", None),
]


def _make_bad_files(directory: Path, good: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "empty.mp4").write_bytes(b"")
    corrupt_copy(good, directory / "truncated.mp4", "truncate")
    corrupt_copy(good, directory / "garbled.mp4", "garble")
    # Seeded: now and then os.urandom bytes happen to start like an MPEG stream, and the file
    # is then refused later (decode_failed) instead of at the probe (not_a_video).
    (directory / "random.mp4").write_bytes(random.Random(16).randbytes(50_000))
    (directory / "text.mp4").write_text("this is not a video\n" * 100)
    (directory / "big.mp4").write_bytes(os.urandom(MAX_OBJECT_BYTES + 500_000))
    write_still_image(directory / "image.png")
    write_audio_only(directory / "audio.m4a")
    (directory / "sub.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    ffmpeg = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    subprocess.run(
        [*ffmpeg, "-i", str(directory / "sub.srt"), str(directory / "subs_only.mkv")],
        check=True,
        timeout=60,
    )
    subprocess.run(
        [
            *ffmpeg,
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=1280x1024:d=1:r=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            str(directory / "huge_res.mp4"),
        ],
        check=True,
        timeout=60,
    )


@dataclass
class Env:
    settings: Settings
    store: ObjectStore
    bucket: str
    fake: str
    workers: Workers
    watcher: Watcher
    work_dir: Path
    tmp: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, stack: Settings) -> Iterator[Env]:
    base_url, stop_fake = serve_in_thread()
    bucket = f"bad-videos-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(
        update={"vlm_base_url": base_url, "video_bucket": bucket, "max_message_bytes": 100_000}
    )
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    work_dir = tmp_path_factory.mktemp("work")
    worker_env = {
        **LIMITS,
        "VIDLOC_VIDEO_BUCKET": bucket,
        "VIDLOC_VLM_BASE_URL": base_url,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_VLM_MAX_BACKOFF_S": "1",
        "VIDLOC_RETRY_BACKOFF_MAX_S": "2",
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_WORK_DIR": str(work_dir),
    }
    log_dir = tmp_path_factory.mktemp("bad-logs")
    workers = Workers(settings, worker_env, log_dir)
    watcher = Watcher(settings)
    workers.start(2)
    wait_group_stable(log_dir, 2)
    yield Env(
        settings,
        store,
        bucket,
        base_url,
        workers,
        watcher,
        work_dir,
        tmp_path_factory.mktemp("bad-media"),
    )
    workers.stop()
    watcher.close()
    stop_fake()


@pytest.fixture(scope="module")
def batch(env: Env) -> tuple[dict[str, str], str, Outputs]:
    """Every case on partition 0, in table order, then one good video; wait for all results."""
    specs = {s.name: s for s in standard_specs()}
    good = ensure_rendered(specs["h264_mp4"], MEDIA_CACHE)
    long = ensure_rendered(specs["long_h264"], MEDIA_CACHE)
    media = env.tmp / "files"
    _make_bad_files(media, good)
    ctx = Ctx(env.store, env.bucket, media, good, long, uuid.uuid4().hex[:8])
    ids: dict[str, str] = {}
    with Ingest(env.settings) as ingest:
        for case_id, build, _, _ in CASES:
            built = build(ctx)
            if isinstance(built, IngestEvent):
                ids[case_id] = ingest.send(built, partition=0)
            else:
                video_id, raw = built
                ingest.send_raw(video_id, raw, partition=0)
                ids[case_id] = video_id
        last = ctx.put("after-the-poison.mp4", good)
        last_id = ingest.send(last, partition=0)
    seen = env.watcher.wait_results([*ids.values(), last_id], timeout_s=240)
    return ids, last_id, seen


@pytest.mark.parametrize(
    ("case_id", "status", "code"), [pytest.param(c[0], c[2], c[3], id=c[0]) for c in CASES]
)
def test_bad_input_is_refused_with_its_code(
    batch: tuple[dict[str, str], str, Outputs],
    env: Env,
    case_id: str,
    status: str,
    code: str | None,
) -> None:
    ids, _, seen = batch
    video_id = ids[case_id]
    results = seen.results[video_id]
    record(
        "bad_inputs",
        case_id,
        expected=code or status,
        got=[(r.status, r.error.code if r.error else None) for r in results],
    )
    assert_one_outcome(seen, video_id)
    result = results[0]
    assert result.status == status, f"{case_id}: {result.error}"
    if status == "failed":
        assert result.error is not None and result.error.code == code, result.error
        dlq = seen.dlq[video_id]
        assert len(dlq) == len(results) and {d.error.code for d in dlq} == {code}
        assert len(encode(dlq[0])) < MAX_MESSAGE_BYTES
    else:
        assert video_id not in seen.dlq
        assert result.timeline is not None
        doc = json.loads(env.store.get_bytes(result.timeline.bucket, result.timeline.key))
        assert doc["source"]["key"].endswith("vidéo 東京 ☃.mp4") and doc["events"]


def test_oversized_message_is_dead_lettered_truncated_with_a_flag(
    batch: tuple[dict[str, str], str, Outputs],
) -> None:
    ids, _, seen = batch
    (dlq,) = seen.dlq[ids["oversized_message"]]
    extra = dlq.model_extra or {}
    assert extra.get("original_truncated") is True
    assert extra["original_bytes"] > 3 * MAX_MESSAGE_BYTES
    assert len(str(dlq.original)) <= MAX_MESSAGE_BYTES // 4


def test_the_partition_keeps_flowing_and_no_temp_file_is_left(
    batch: tuple[dict[str, str], str, Outputs], env: Env
) -> None:
    _, last_id, seen = batch
    assert [r.status for r in seen.results[last_id]] == ["succeeded"]
    assert files_under(env.work_dir) == [], "downloads left behind after success and failures"
    record("bad_inputs", "partition_keeps_flowing", ok=True)


MODEL_FAULTS = ["huge", "garbage_times", "broken_json", "truncated", "empty", "prose"]


@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in MODEL_FAULTS])
def test_bad_model_answers_never_reach_the_timeline(
    batch: tuple[dict[str, str], str, Outputs], env: Env, kind: str
) -> None:
    store = env.store
    set_faults(env.fake, [{"kind": kind, "count": 1}])
    specs = {s.name: s for s in standard_specs()}
    good = ensure_rendered(specs["h264_mp4"], MEDIA_CACHE)
    event = upload(store, env.bucket, f"answers-{uuid.uuid4().hex[:8]}/{kind}.mp4", good)
    with Ingest(env.settings) as ingest:
        video_id = ingest.send(event)
    seen = env.watcher.wait_results([video_id], timeout_s=120, settle_s=0.5)
    (result,) = seen.results[video_id]
    record("bad_model_answers", kind, got=result.status)
    assert result.status == "succeeded" and result.timeline is not None, result.error
    doc = json.loads(store.get_bytes(result.timeline.bucket, result.timeline.key))
    duration = doc["video"]["duration_s"]
    assert len(doc["events"]) <= 200
    for e in doc["events"]:
        assert math.isfinite(e["start_s"]) and math.isfinite(e["end_s"])
        assert 0 <= e["start_s"] <= e["end_s"] <= duration + 1e-6, e
    if kind in ("huge", "garbage_times"):
        assert doc["stats"]["rejected_events"] > 0
