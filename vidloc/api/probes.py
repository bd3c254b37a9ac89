"""Readiness probes: can this API reach Kafka and the S3 store right now?

Each probe raises a VidlocError saying what is wrong, or returns a short "ok" note. Results
are cached briefly so a burst of /readyz calls does not open a burst of connections.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vidloc.adapters.kafka import TopicReader
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import VidlocError
from vidloc.settings import Settings

log = logging.getLogger(__name__)

Probe = Callable[[], str]


def kafka_probe(settings: Settings) -> Probe:
    def probe() -> str:
        # connect() fails fast on a closed port; topics() needs a real metadata answer.
        with TopicReader.connect(
            settings, bootstrap_timeout_ms=3000, request_timeout_ms=5000
        ) as stream:
            topics = stream.topics()
        return f"ok ({len(topics)} topics)"

    return probe


def s3_probe(store: ObjectStore, bucket: str) -> Probe:
    def probe() -> str:
        # One LIST of an empty prefix: proves the endpoint, the credentials and the bucket.
        next(iter(store.list_keys(bucket, "_readyz/")), None)
        return "ok"

    return probe


@dataclass(frozen=True)
class Report:
    """One round of probes: each probe's note ("ok ..." or what failed, naming servers,
    buckets and errors: for operators only), and the names of those that failed."""

    notes: Mapping[str, str]
    failing: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.failing


class Readiness:
    """Runs named probes, caching the combined answer for ``ttl_s`` seconds. A failure is
    logged (at most once per ``ttl_s``) with its details, which /readyz shows admin keys only."""

    def __init__(self, probes: Mapping[str, Probe], *, ttl_s: float = 2.0) -> None:
        self._probes = dict(probes)
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, Report] | None = None

    def check(self) -> Report:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl_s:
                return self._cached[1]
            notes: dict[str, str] = {}
            failing: list[str] = []
            for name, probe in self._probes.items():
                try:
                    notes[name] = probe()
                except VidlocError as exc:
                    failing.append(name)
                    notes[name] = f"{exc.code}: {exc}"
                    log.warning("not ready: %s: %s", name, notes[name])
            report = Report(notes, tuple(failing))
            self._cached = (now, report)
            return report
