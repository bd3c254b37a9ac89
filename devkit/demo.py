"""``vidloc demo``: the whole path on this machine in one command.

Brings the local stack up, starts a worker and the bridge, renders a short synthetic video with
known events, uploads it with a plain S3 put (so the bucket notification starts the job), waits
for the result and prints the timeline. Without a model key it runs the offline ``cv`` localizer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from rich.console import Console

from contracts import derive_video_id
from devkit.stack import stack_command
from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import VideoSpec
from producers.bridge import run_bridge
from vidloc import names
from vidloc.adapters.kafka import park_group_at_end
from vidloc.adapters.object_store import ObjectStore
from vidloc.cli.follow import Follower, print_result
from vidloc.settings import Settings

DEMO_VIDEO = "h264_mp4"


def _describe_truth(spec: VideoSpec) -> str:
    truth = spec.ground_truth()
    events = ", ".join(f"{e.label} {e.start_s:g}-{e.end_s:g} s" for e in truth.events)
    cuts = ", ".join(f"{c:g} s" for c in truth.cuts)
    black = ", ".join(f"{b.start_s:g}-{b.end_s:g} s" for b in truth.black_segments)
    return f"events: {events}; cuts at {cuts}; black {black or 'none'}"


def run_demo(settings: Settings, *, timeout_s: float = 600.0, fake_model: bool = False) -> int:
    console = Console()
    if stack_command("up", settings) != 0:
        return 1
    stop_fake = None
    if fake_model:
        from devkit.fake_vlm.server import serve_in_thread

        base_url, stop_fake = serve_in_thread()
        settings = settings.model_copy(update={"vlm_base_url": base_url, "localizer": "vlm"})
        os.environ["VIDLOC_VLM_BASE_URL"] = base_url
        os.environ["VIDLOC_LOCALIZER"] = "vlm"
        console.print(f"fake OpenAI-compatible model server at {base_url} (it sees colours only)")
    try:
        return _run(settings, console, timeout_s)
    finally:
        if stop_fake is not None:
            stop_fake()


def _run(settings: Settings, console: Console, timeout_s: float) -> int:
    if settings.effective_localizer == "cv":
        console.print(
            "[yellow]No VIDLOC_VLM_API_KEY or VIDLOC_VLM_BASE_URL: using the offline cv "
            "localizer (shot cuts, black and frozen segments).[/yellow]"
        )
    else:
        console.print(f"Model: {settings.vlm_model} at {settings.effective_vlm_base_url}")

    run = uuid.uuid4().hex[:8]
    worker_group, bridge_group = f"vidloc-demo-{run}", f"vidloc-demo-bridge-{run}"
    for topic in names.WORKER_TOPICS:
        park_group_at_end(settings, worker_group, topic)
    park_group_at_end(settings, bridge_group, names.TOPIC_S3_EVENTS)

    spec = spec_named(DEMO_VIDEO)
    video = ensure_rendered(spec, settings.cache_dir / "demo")
    log_path = settings.stack_dir / "logs" / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIDLOC_WORKER_GROUP": worker_group}
    stop_bridge = threading.Event()
    bridge = threading.Thread(
        target=run_bridge,
        args=(settings,),
        kwargs={"stop": stop_bridge, "group_id": bridge_group},
        daemon=True,
    )
    with log_path.open("wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "vidloc", "worker"], env=env, stdout=sink, stderr=sink
        )
    console.print(f"worker started (pid {worker.pid}, log {log_path}); bridge started")
    bridge.start()
    try:
        return _upload_and_wait(
            settings, console, video, timeout_s, truth_text=_describe_truth(spec)
        )
    finally:
        stop_bridge.set()
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        bridge.join(15)
        console.print("worker and bridge stopped; the stack stays up (`vidloc stack down`)")


def _upload_and_wait(
    settings: Settings, console: Console, video: Path, timeout_s: float, *, truth_text: str
) -> int:
    store = ObjectStore(settings)
    key = f"demo/{video.name}"
    with Follower(settings, console=console) as follower:
        follower.start()
        info = store.upload_file(settings.video_bucket, key, video)
        video_id = derive_video_id(settings.video_bucket, key, info.etag)
        console.print(
            f"uploaded s3://{settings.video_bucket}/{key} ({info.size} bytes) -> video {video_id}"
        )
        follower.expect(video_id, key)
        results = follower.wait(timeout_s)
    result = results.get(video_id)
    if result is None:
        console.print(f"[red]no result within {timeout_s:.0f} s[/red]")
        return 3
    print_result(console, store, key, result)
    console.print(f"ground truth of the sample: {truth_text}")
    return 0 if result.status == "succeeded" else 1
