"""The compose deployment checked from the host, as its users meet it (scripts/compose-test.sh).

Each step is a subcommand; the shell script runs them between podman-compose commands:

- ``ingest NAME``: upload a synthetic clip to the video bucket over the published S3 port, read
  its result event from Kafka's host listener, then its timeline through the API with a key;
- ``revoke``: a key added on the host with ``vidloc api keys add`` is accepted by the running
  API, and refused once ``vidloc api keys revoke`` revoked it, each within ``KEY_CHANGE_S``; the
  other key still works and the file keeps the owner and mode the API reads it by;
- ``persisted NAME``: after ``down``/``up``, the same result and timeline are still there, and
  the revoked key is still refused;
- ``share N``: the worker group has N members and together they own every ingest partition;
- ``kill-mid-job NAME``: upload a longer clip, SIGKILL the worker container holding its
  partition once the job reports progress, and see exactly one succeeded result for it.

Exits 0 when the step holds, 1 with the reason otherwise. Host tooling: it may use devkit.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from minio import Minio

from contracts.ingest import derive_video_id
from devkit.synth.catalogue import spec_named
from devkit.synth.render import render
from vidloc.api.keys import key_id_of

T = TypeVar("T")
INGEST = "video.ingest"
PROGRESS = "video.progress"
RESULTS = "video.results"
GROUP = "vidloc-workers"
TENANT = "compose"
# The clips: a short one for the round trip, the 100 s one so a worker can be killed mid-job.
CLIPS = {"short": "h264_mp4", "long": "long_h264", "long-2": "long_h264"}
# How soon a key change on the host must reach the running API (it checks the file every second).
KEY_CHANGE_S = 5.0


class CheckFailed(Exception):
    pass


@dataclass(frozen=True)
class Deployment:
    kafka: str
    s3: str
    api: str
    api_key: str
    keys_file: Path  # on the host, in the directory the api service mounts
    project: str
    access_key: str
    secret_key: str
    bucket: str
    work: Path


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, every_s: float = 1.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def say(message: str) -> None:
    print(f"e2e: {message}", flush=True)


# --- S3 ---------------------------------------------------------------------------------


def s3_client(dep: Deployment) -> Minio:
    host = dep.s3.split("://", 1)[1]
    return Minio(host, access_key=dep.access_key, secret_key=dep.secret_key, secure=False)


def object_key(name: str) -> str:
    return f"tenants/{TENANT}/compose-test/{name}.mp4"


def upload(dep: Deployment, name: str) -> str:
    """Render the clip ``name`` stands for, upload it; its video id."""
    spec = spec_named(CLIPS[name])
    path = dep.work / spec.filename
    if not path.is_file():
        render(spec, path)
    key = object_key(name)
    result = s3_client(dep).fput_object(dep.bucket, key, str(path), content_type="video/mp4")
    if not result.etag:
        raise CheckFailed(f"the store gave no ETag for {key}")
    video_id = derive_video_id(dep.bucket, key, result.etag)
    say(f"uploaded s3://{dep.bucket}/{key} ({path.stat().st_size} bytes): video {video_id}")
    return video_id


def stored_video_id(dep: Deployment, name: str) -> str:
    stat = s3_client(dep).stat_object(dep.bucket, object_key(name))
    assert stat.etag is not None
    return derive_video_id(dep.bucket, object_key(name), stat.etag)


# --- Kafka ------------------------------------------------------------------------------


def records(dep: Deployment, topic: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every record now on ``topic``: (partition, decoded JSON value)."""
    consumer = KafkaConsumer(bootstrap_servers=dep.kafka, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        pending = {tp for tp in parts if ends[tp] > 0}
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                for record in batch:
                    yield tp.partition, json.loads(record.value)
                if consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        consumer.close()


def results_for(dep: Deployment, video_id: str) -> list[dict[str, Any]]:
    return [value for _, value in records(dep, RESULTS) if value.get("video_id") == video_id]


def succeeded(dep: Deployment, video_id: str) -> list[dict[str, Any]] | None:
    found = [r for r in results_for(dep, video_id) if r.get("status") == "succeeded"]
    failed = [r for r in results_for(dep, video_id) if r.get("status") == "failed"]
    if failed:
        raise CheckFailed(f"video {video_id} failed: {failed[0].get('error')}")
    return found or None


def group_members(dep: Deployment) -> list[dict[str, Any]]:
    admin = KafkaAdminClient(bootstrap_servers=dep.kafka)
    try:
        group: dict[str, Any] = admin.describe_groups([GROUP])[GROUP]
    finally:
        admin.close()
    if group.get("group_state") != "Stable":
        return []
    members: list[dict[str, Any]] = group.get("members") or []
    return members


def ingest_partitions(dep: Deployment) -> set[int]:
    consumer = KafkaConsumer(bootstrap_servers=dep.kafka)
    try:
        return set(consumer.partitions_for_topic(INGEST) or ())
    finally:
        consumer.close()


def owned(member: dict[str, Any]) -> set[int]:
    assignment = member.get("member_assignment") or {}
    return {
        p
        for entry in assignment.get("assigned_partitions", [])
        if entry["topic"] == INGEST
        for p in entry["partitions"]
    }


# --- API --------------------------------------------------------------------------------


def timeline(dep: Deployment, video_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {dep.api_key}"}
    response = httpx.get(f"{dep.api}/videos/{video_id}/timeline", headers=headers, timeout=30)
    if response.status_code != 200:
        raise CheckFailed(f"GET timeline of {video_id}: {response.status_code} {response.text}")
    document: dict[str, Any] = response.json()
    anonymous = httpx.get(f"{dep.api}/videos/{video_id}/timeline", timeout=30)
    if anonymous.status_code != 401:
        raise CheckFailed(f"the API served a timeline without a key ({anonymous.status_code})")
    return document


def status_with(dep: Deployment, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{dep.api}/videos", headers=headers, timeout=30).status_code


def answers(dep: Deployment, key: str, status: int) -> Callable[[], float | None]:
    """A probe for wait_for: the seconds since it was made once ``key`` gets ``status``."""
    started = time.monotonic()
    return lambda: time.monotonic() - started if status_with(dep, key) == status else None


def keys_command(dep: Deployment, *args: str) -> str:
    """``vidloc api keys ...`` on the host's keys file, as the operator runs it; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "vidloc", "api", "keys", "--file", str(dep.keys_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise CheckFailed(f"vidloc api keys {args[0]} exited {done.returncode}: {done.stderr}")
    return done.stdout.strip()


def revoked_key_file(dep: Deployment) -> Path:
    return dep.work / "revoked-key"


# --- podman -----------------------------------------------------------------------------


def worker_containers(dep: Deployment) -> dict[str, str]:
    """Running worker containers of the project: IP address -> name."""
    names = subprocess.run(
        [
            "podman",
            "ps",
            "--filter",
            f"label=io.podman.compose.project={dep.project}",
            "--filter",
            "label=com.docker.compose.service=worker",
            "--format",
            "{{.Names}}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    found = {}
    for name in names:
        ips = subprocess.run(
            [
                "podman",
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                name,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        for ip in ips:
            found[ip] = name
    return found


# --- steps ------------------------------------------------------------------------------


def step_ingest(dep: Deployment, name: str) -> None:
    started = time.monotonic()
    video_id = upload(dep, name)
    results = wait_for(f"a result for {video_id}", lambda: succeeded(dep, video_id), 300, 2)
    say(f"result from Kafka after {time.monotonic() - started:.1f} s: {results[0]['summary']}")
    doc = wait_for(f"the timeline of {video_id}", lambda: timeline(dep, video_id), 60, 2)
    if doc["video_id"] != video_id or doc["video"]["duration_s"] <= 0:
        raise CheckFailed(f"unexpected timeline: {json.dumps(doc)[:500]}")
    say(f"timeline via the API: {len(doc['events'])} events, {doc['video']['duration_s']} s")


def step_revoke(dep: Deployment) -> None:
    def owner() -> tuple[int, int, int]:
        st = dep.keys_file.stat()
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    before = owner()
    key = keys_command(dep, "add", "--tenant", TENANT, "--scopes", "read")
    took = wait_for(
        "the running API to accept a key added on the host",
        answers(dep, key, 200),
        KEY_CHANGE_S,
        0.1,
    )
    say(f"a key added on the host was accepted by the running API after {took:.1f} s")
    key_id = key_id_of(key)
    assert key_id is not None
    keys_command(dep, "revoke", key_id)
    took = wait_for(
        "the running API to refuse the revoked key", answers(dep, key, 401), KEY_CHANGE_S, 0.1
    )
    say(f"the revoked key was refused (401) by the running API after {took:.1f} s")
    if (status := status_with(dep, dep.api_key)) != 200:
        raise CheckFailed(f"the key that was not revoked now gets {status}")
    if owner() != before:
        raise CheckFailed(f"the keys file was {before} (uid, gid, mode), now {owner()}")
    revoked_key_file(dep).write_text(key)


def step_persisted(dep: Deployment, name: str) -> None:
    video_id = stored_video_id(dep, name)
    if not succeeded(dep, video_id):
        raise CheckFailed(f"the result of {video_id} is gone from Kafka after down/up")
    doc = wait_for(
        f"the API after restart ({video_id})", lambda: _try(timeline, dep, video_id), 120
    )
    say(f"after down/up: result still on Kafka, timeline via the API ({len(doc['events'])} events)")
    if revoked_key_file(dep).is_file():
        if (status := status_with(dep, revoked_key_file(dep).read_text())) != 401:
            raise CheckFailed(f"after down/up the revoked key gets {status}")
        say("after down/up: the revoked key is still refused")


def _try(fn: Callable[..., T], *args: Any) -> T | None:
    try:
        return fn(*args)
    except (CheckFailed, httpx.HTTPError):
        return None


def step_share(dep: Deployment, count: int) -> None:
    partitions = ingest_partitions(dep)

    def shared() -> list[dict[str, Any]] | None:
        members = group_members(dep)
        if len(members) != count or any(not owned(m) for m in members):
            return None
        if set().union(*(owned(m) for m in members)) != partitions:
            return None
        return members

    members = wait_for(f"{count} workers sharing {sorted(partitions)}", shared, 180, 2)
    by_ip = worker_containers(dep)
    for member in members:
        ip = member["client_host"].lstrip("/")
        say(f"{by_ip.get(ip, ip)} owns {sorted(owned(member))} of {INGEST}")


def _wait_running(dep: Deployment, video_id: str, before: str) -> int:
    """Wait until the job of ``video_id`` is under way; the ingest partition it came on.
    Fails if it ended first (``before``: what was to happen to it mid-job)."""

    def running() -> int | None:
        stages = [
            v.get("stage") for _, v in records(dep, PROGRESS) if v.get("video_id") == video_id
        ]
        if any(s in ("done", "failed") for s in stages):
            raise CheckFailed(f"the job of {video_id} ended before {before}")
        if not any(s in ("sampling", "localizing", "merging") for s in stages):
            return None
        return next(p for p, v in records(dep, INGEST) if v.get("video_id") == video_id)

    return wait_for(f"the job of {video_id} to run", running, 300, 0.5)


def _one_result_served(dep: Deployment, video_id: str, since: float, what: str) -> None:
    """The job finishes once: one succeeded result (a replay's duplicate is given 20 s to
    show) and its timeline served by the API."""

    def result() -> list[dict[str, Any]] | None:
        try:
            return succeeded(dep, video_id)
        except KafkaError:  # a broker just started again may not answer yet: ask again
            return None

    wait_for(f"a result for {video_id}", result, 600, 2)
    say(f"job finished {time.monotonic() - since:.1f} s after the kill")
    time.sleep(20)
    results = results_for(dep, video_id)
    if len(results) != 1 or results[0]["status"] != "succeeded":
        statuses = [r.get("status") for r in results]
        raise CheckFailed(f"expected exactly one succeeded result, got {statuses}")
    timeline(dep, video_id)
    say(f"exactly one result{what}, and its timeline is served")


def step_kill_mid_job(dep: Deployment, name: str) -> None:
    video_id = upload(dep, name)
    partition = _wait_running(dep, video_id, "it could be interrupted")
    holder = next((m for m in group_members(dep) if partition in owned(m)), None)
    if holder is None:
        raise CheckFailed(f"no stable member owns {INGEST}[{partition}]")
    container = worker_containers(dep)[holder["client_host"].lstrip("/")]
    subprocess.run(
        ["podman", "kill", "--signal", "KILL", container], check=True, stdout=subprocess.DEVNULL
    )
    say(f"killed {container} while it held {INGEST}[{partition}] mid-job")
    _one_result_served(dep, video_id, time.monotonic(), "")


def _partition_leaders(dep: Deployment, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=dep.kafka)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return {int(p["partition_index"]): int(p["leader_id"]) for p in described["partitions"]}


def step_kill_broker(dep: Deployment, name: str) -> None:
    """Profile ``cluster``: SIGKILL the broker (kafka-2 or kafka-3) that leads most of
    ``video.results`` while a job runs, start it again after the session timeout: one result.
    ``name`` must be a clip not uploaded before (another key: a new video id), else its job
    has already run."""
    leaders = _partition_leaders(dep, RESULTS)
    node = max((2, 3), key=lambda n: sum(1 for leader in leaders.values() if leader == n))
    container = f"{dep.project}_kafka-{node}_1"
    video_id = upload(dep, name)
    _wait_running(dep, video_id, "the broker could be killed")
    led = sorted(p for p, leader in leaders.items() if leader == node)
    subprocess.run(
        ["podman", "kill", "--signal", "KILL", container], check=True, stdout=subprocess.DEVNULL
    )
    killed = time.monotonic()
    say(f"killed {container} (node {node}, leader of {RESULTS} {led}) mid-job")
    time.sleep(15)  # past the workers' session timeout (10 s in the compose file's defaults)
    subprocess.run(["podman", "start", container], check=True, stdout=subprocess.DEVNULL)
    say(f"started {container} again {time.monotonic() - killed:.1f} s after the kill")
    _one_result_served(dep, video_id, killed, " with a broker killed and back")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "step",
        choices=["ingest", "revoke", "persisted", "share", "kill-mid-job", "kill-broker"],
    )
    parser.add_argument("arg", nargs="?", help="clip name (short|long) or worker count")
    args = parser.parse_args(argv)
    env = os.environ
    work = Path(env.get("E2E_WORK") or tempfile.mkdtemp(prefix="compose-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    dep = Deployment(
        # Every node's host listener when the cluster profile runs: any one may be down.
        kafka=",".join(
            f"127.0.0.1:{env[var]}"
            for var in ("KAFKA_HOST_PORT", "KAFKA_2_HOST_PORT", "KAFKA_3_HOST_PORT")
            if env.get(var)
        ),
        s3=f"http://127.0.0.1:{env['S3_HOST_PORT']}",
        api=f"http://127.0.0.1:{env['API_HOST_PORT']}",
        api_key=env["E2E_API_KEY"],
        keys_file=Path(env["E2E_KEYS_FILE"]),
        project=env["COMPOSE_PROJECT_NAME"],
        access_key=env.get("VIDLOC_S3_ACCESS_KEY", "vidloc"),
        secret_key=env.get("VIDLOC_S3_SECRET_KEY", "vidloc-local-secret"),
        bucket=env.get("VIDLOC_VIDEO_BUCKET", "videos"),
        work=work,
    )
    steps: dict[str, Callable[[], None]] = {
        "ingest": lambda: step_ingest(dep, args.arg),
        "revoke": lambda: step_revoke(dep),
        "persisted": lambda: step_persisted(dep, args.arg),
        "share": lambda: step_share(dep, int(args.arg)),
        "kill-mid-job": lambda: step_kill_mid_job(dep, args.arg),
        "kill-broker": lambda: step_kill_broker(dep, args.arg),
    }
    try:
        steps[args.step]()
    except CheckFailed as exc:
        print(f"e2e {args.step}: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
