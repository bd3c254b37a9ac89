"""Clips on the real stack: a generated H.264 video in the bucket, a timeline naming events at a
keyframe and between keyframes, ``GET .../clip`` (302 to a presigned MP4, cut once, then
cached), the first frame checked against the source, ``vidloc clip``, and the clear errors; a
later analysis' event clipped through its own route and cached beside that analysis' timeline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from apistack import isolated_settings, timeline_for, unique_id
from pipeline import REPO

from contracts import decode_timeline, derive_analysis_id, encode
from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

# h264_mp4 is 10 fps with its first keyframe at 0 s: the first event copies, the second cannot.
EVENTS = [("at keyframe", 0.0, 2.0), ("between keyframes", 3.3, 5.0), ("gone", 1.0, 2.0)]
# A later analysis of the kept video: its one event (ev0) is where the first analysis' ev1 is.
LATER = derive_analysis_id(unique_id("clip-ask"))


def frames_of(data: bytes, path: Path) -> list[tuple[float, np.ndarray]]:
    path.write_bytes(data)
    with av.open(str(path)) as clip:
        return [(float(f.time or 0.0), f.to_ndarray(format="rgb24")) for f in clip.decode(video=0)]


def source_frame(video: Path, t: float) -> np.ndarray:
    with av.open(str(video)) as src:
        for frame in src.decode(video=0):
            if abs(float(frame.time or 0.0) - t) < 0.05:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no source frame at {t}")


@pytest.fixture(scope="module")
def setup(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    settings = isolated_settings(stack, "clips")
    tmp = tmp_path_factory.mktemp("clips")
    settings = settings.model_copy(
        update={"search_index_path": tmp / "s.sqlite", "work_dir": tmp / "work"}
    )
    video = ensure_rendered(
        {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
    )
    store = ObjectStore(settings)
    ids = {}
    for name in ("kept", "deleted"):
        vid = unique_id(f"clip-{name}")
        key = f"uploads/{vid}.mp4"
        info = store.upload_file(settings.video_bucket, key, video, content_type="video/mp4")
        doc = timeline_for(vid, settings.video_bucket, key, events=EVENTS)
        doc["source"]["etag"] = info.etag
        doc["video"]["duration_s"] = 12.0
        timeline = decode_timeline(doc)
        store.put_bytes(settings.timeline_bucket, names.timeline_key(vid), encode(timeline))
        ids[name] = vid
        if name == "kept":
            doc["analysis_id"] = LATER
            doc["events"] = timeline_for(vid, "", "", events=[EVENTS[1]])["events"]
            later = names.analysis_timeline_key(vid, LATER)
            store.put_bytes(settings.timeline_bucket, later, encode(decode_timeline(doc)))
    store.delete(settings.video_bucket, f"uploads/{ids['deleted']}.mp4")
    app = create_app(settings)
    base_url, stop = serve_in_thread(app)
    try:
        with httpx.Client(base_url=base_url, timeout=60.0) as client:
            yield {"client": client, "ids": ids, "video": video, "settings": settings, "tmp": tmp}
    finally:
        stop()


@pytest.mark.parametrize(
    ("event", "mode", "start"), [("ev0", "copy", 0.0), ("ev1", "reencode", 3.3)]
)
def test_a_clip_starts_within_one_frame_of_the_event(
    setup: dict[str, object], event: str, mode: str, start: float
) -> None:
    client, ids, tmp = setup["client"], setup["ids"], setup["tmp"]
    assert isinstance(client, httpx.Client) and isinstance(ids, dict) and isinstance(tmp, Path)
    path = f"/videos/{ids['kept']}/events/{event}/clip"
    first = client.get(path)
    assert first.status_code == 302, first.text
    assert first.headers["x-vidloc-clip-mode"] == mode
    assert first.headers["x-vidloc-clip-cache"] == "miss"
    assert abs(float(first.headers["x-vidloc-clip-start-s"]) - start) <= 0.1 + 1e-6
    data = httpx.get(first.headers["location"], timeout=30.0)
    assert data.status_code == 200 and data.content[4:8] == b"ftyp"
    frames = frames_of(data.content, tmp / f"{event}.mp4")
    assert len(frames) in range(16, 22)  # 1.7-2 s at 10 fps
    # The clip's first picture is the source's picture at the event's start.
    video = setup["video"]
    assert isinstance(video, Path)
    diff = np.abs(frames[0][1].astype(int) - source_frame(video, start).astype(int)).mean()
    assert diff < 6.0, diff
    again = client.get(path)
    assert again.status_code == 302 and again.headers["x-vidloc-clip-cache"] == "hit"
    assert again.headers["x-vidloc-clip-mode"] == mode


@pytest.mark.parametrize(
    ("which", "event", "params", "status", "code"),
    [
        ("kept", "nope", {}, 404, "event_not_found"),
        ("unknown", "ev0", {}, 404, "video_not_found"),
        ("kept", "ev0", {"pad_s": -1}, 422, "invalid_request"),
        ("kept", "ev0", {"pad_s": 61}, 422, "invalid_request"),
        ("kept", "ev0", {"pad_s": "nan"}, 422, "invalid_request"),
        ("deleted", "ev2", {}, 404, "source_not_found"),
    ],
)
def test_bad_clip_requests_are_clear_errors(
    setup: dict[str, object],
    which: str,
    event: str,
    params: dict[str, object],
    status: int,
    code: str,
) -> None:
    client, ids = setup["client"], setup["ids"]
    assert isinstance(client, httpx.Client) and isinstance(ids, dict)
    vid = ids.get(which, "no-such-video")
    response = client.get(f"/videos/{vid}/events/{event}/clip", params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_later_analysis_event_is_clipped_beside_its_timeline(setup: dict[str, object]) -> None:
    client, ids, settings = setup["client"], setup["ids"], setup["settings"]
    assert isinstance(client, httpx.Client) and isinstance(ids, dict)
    assert isinstance(settings, Settings)
    path = f"/videos/{ids['kept']}/analyses/{LATER}/events/ev0/clip"
    first = client.get(path, headers={"Accept": "application/json"})
    assert first.status_code == 200, first.text
    link = first.json()
    assert link["mode"] == "reencode" and abs(link["first_frame_s"] - 3.3) <= 0.1 + 1e-6
    folder = names.analysis_timeline_key(ids["kept"], LATER).rsplit("/", 1)[0]
    cached = list(ObjectStore(settings).list_keys(settings.timeline_bucket, f"{folder}/clips/"))
    assert len(cached) == 1
    assert client.get(path).headers["x-vidloc-clip-cache"] == "hit"
    # ev0 of the first analysis is at 0 s (copy): the 3.3 s reencode above is the later's.
    # An analysis the video does not have is a 404, never the first analysis' ev0.
    assert client.get(f"/videos/{ids['kept']}/analyses/a-nope/events/ev0/clip").status_code == 404


def test_vidloc_clip_writes_the_mp4(setup: dict[str, object], tmp_path: Path) -> None:
    settings, ids = setup["settings"], setup["ids"]
    assert isinstance(settings, Settings) and isinstance(ids, dict)
    env = {
        **os.environ,
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_WORK_DIR": str(tmp_path / "work"),
    }
    env.pop("VIDLOC_TENANT", None)
    out = tmp_path / "out.mp4"
    args = ["clip", ids["kept"], "ev1", "-o", str(out), "--pad-s", "0.5"]
    done = subprocess.run(
        [sys.executable, "-m", "vidloc", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "reencode" in done.stdout
    frames = frames_of(out.read_bytes(), tmp_path / "copy.mp4")
    assert len(frames) in range(25, 29)  # 2.8-5.5 s: 2.7 s at 10 fps
    gone = subprocess.run(
        [sys.executable, "-m", "vidloc", "clip", ids["deleted"], "ev2", "-o", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert gone.returncode == 1 and "source_not_found" in gone.stderr
    later = subprocess.run(
        [sys.executable, "-m", "vidloc", "clip", ids["kept"], "ev0", "-o", str(out),
         "--analysis", LATER],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert later.returncode == 0, later.stderr
    assert "between keyframes 3.3-5 s" in later.stdout
