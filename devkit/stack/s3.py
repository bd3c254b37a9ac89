"""The local S3 store: versitygw built once with `go install`, POSIX backend, Kafka notifications.

versitygw publishes its own notification JSON (AWS-style ``Records[]``) straight to the
``s3.events`` topic for every bucket; no per-bucket notification configuration is needed (or
supported in v1.8.0: the sender is gateway-global). Its Kafka writer sends one fixed key.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from devkit.stack.layout import StackLayout
from devkit.stack.processes import port_open
from vidloc import names
from vidloc.errors import StackError
from vidloc.settings import Settings

log = logging.getLogger(__name__)

COMPONENT = "s3"
HOST = "127.0.0.1"
VERSITYGW_MODULE = "github.com/versity/versitygw/cmd/versitygw"
VERSITYGW_VERSION = "v1.8.0"
# versitygw sends this as the Kafka key of every notification (it cannot key per object).
EVENT_KEY = "versitygw"


def markers(layout: StackLayout) -> tuple[str, ...]:
    """What must be on the gateway's command line for `down` to believe it started it."""
    return (str(layout.versitygw_bin), str(layout.s3_data))


def ensure_binary(layout: StackLayout) -> bool:
    """Build the pinned versitygw into the cache once; True if it had to build."""
    stamp = layout.versitygw_dir / "VERSION"
    if (
        layout.versitygw_bin.is_file()
        and stamp.is_file()
        and stamp.read_text().strip() == VERSITYGW_VERSION
    ):
        return False
    go = shutil.which("go")
    if go is None:
        raise StackError(
            "go not found: versitygw is built with `go install` (install Go 1.25+ from go.dev;"
            " Debian bookworm's golang package is too old)"
        )
    env = dict(os.environ)
    env["GOBIN"] = str(layout.versitygw_bin.parent)
    # Module and build caches outside the work tree, so a fresh CI clone reuses them.
    cache = Path.home() / ".cache"
    env.setdefault("GOMODCACHE", str(cache / "go-mod"))
    env.setdefault("GOCACHE", str(cache / "go-build"))
    env.setdefault("GOFLAGS", "-buildvcs=false")
    layout.versitygw_bin.parent.mkdir(parents=True, exist_ok=True)
    cmd = [go, "install", f"{VERSITYGW_MODULE}@{VERSITYGW_VERSION}"]
    log.info("building versitygw: %s", " ".join(cmd))
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=1200)
    except subprocess.CalledProcessError as exc:
        raise StackError(f"`go install` of versitygw failed:\n{exc.stderr[-4000:]}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"`go install` of versitygw failed: {exc}") from exc
    stamp.write_text(VERSITYGW_VERSION + "\n")
    return True


def server_argv(settings: Settings, layout: StackLayout) -> list[str]:
    return [
        str(layout.versitygw_bin),
        "--port",
        f"{HOST}:{settings.s3_port}",
        "--region",
        settings.s3_region,
        "--quiet",
        "--event-kafka-url",
        f"{HOST}:{settings.kafka_port}",
        "--event-kafka-topic",
        names.TOPIC_S3_EVENTS,
        "--event-kafka-key",
        EVENT_KEY,
        "--event-filter",
        str(layout.event_filter),
        "posix",
        str(layout.s3_data),
    ]


def server_env(settings: Settings) -> dict[str, str]:
    """The root keys go in the environment, not argv, so `ps` does not show the secret."""
    env = dict(os.environ)
    env["ROOT_ACCESS_KEY_ID"] = settings.s3_access_key.get_secret_value()
    env["ROOT_SECRET_ACCESS_KEY"] = settings.s3_secret_key.get_secret_value()
    return env


def client(settings: Settings) -> Minio:
    """A minio client for the local gateway that fails fast instead of retrying for a minute."""
    url = urlsplit(settings.s3_endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=2.0, read=10.0),
        retries=urllib3.Retry(total=1, backoff_factor=0.2),
    )
    return Minio(
        url.netloc,
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=url.scheme == "https",
        region=settings.s3_region,
        http_client=http,
    )


def wait_ready(settings: Settings, timeout_s: float, alive: Callable[[], bool]) -> None:
    """Block until list_buckets succeeds; fail fast if the gateway process died."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise StackError("versitygw exited during start-up")
        if port_open(HOST, settings.s3_port):
            try:
                client(settings).list_buckets()
                return
            except (S3Error, urllib3.exceptions.HTTPError) as exc:
                last = exc
        time.sleep(0.3)
    raise StackError(
        f"versitygw did not answer on {HOST}:{settings.s3_port} within {timeout_s:.0f} s"
        f" (last error: {last})"
    )


def ensure_buckets(settings: Settings) -> list[str]:
    """Create the video and timeline buckets if missing; return the names it created."""
    s3 = client(settings)
    created = []
    for bucket in (settings.video_bucket, settings.timeline_bucket):
        try:
            if s3.bucket_exists(bucket):
                continue
            s3.make_bucket(bucket)
            created.append(bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StackError(f"could not create bucket {bucket}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StackError(f"could not create bucket {bucket}: {exc}") from exc
    return created
