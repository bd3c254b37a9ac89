"""``vidloc stream URL``: cut a live source into segments and queue each as an ingest event.

FFmpeg reads the source (anything it opens: RTSP, HLS, SRT, UDP/TCP MPEG-TS, a growing file)
and its segment muxer cuts at keyframes without re-encoding (``-c copy``), listing each finished
segment in a CSV file. Each listed segment is uploaded to the video bucket under
``[tenants/<t>/]streams/<stream-id>/<seq>.ts`` and announced on ``video.ingest`` keyed by the
stream id, so all of a stream's segments share a partition and are localized in order
(docs/streams.md).

When FFmpeg exits without being asked to (the source dropped), the producer reconnects until
``reconnect_for_s`` passes; the lost span is announced as a gap on the next segment. On SIGTERM
or when the source stays gone, FFmpeg is stopped gracefully (its last segment is flushed and
sent) and the end of the stream is announced.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import IngestEvent, IngestOptions, SourceObject, encode
from contracts.stream import StreamPolicy, StreamSegment
from producers.notifications import SUBMITTED_META
from producers.segments import (
    ConnectionClock,
    ListedSegment,
    Placement,
    ProducerState,
    parse_segment_list,
    segment_event_id,
    segment_key,
    state_key,
)
from vidloc import names
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import InputError, ObjectMissing
from vidloc.settings import Settings
from vidloc.tenancy import tenant_of_key

log = logging.getLogger(__name__)

POLL_S = 0.1
RETRY_S = 0.5  # between reconnection attempts while the source is gone
STOP_GRACE_S = 10.0  # FFmpeg's time to flush its last segment after SIGINT
_NETWORK = ("tcp:", "udp:", "srt:", "http:", "https:", "rtmp:")


@dataclass(frozen=True)
class StreamConfig:
    url: str
    stream_id: str
    segment_s: float = 4.0
    options: IngestOptions = field(default_factory=IngestOptions)
    policy: StreamPolicy = "catch_up"
    max_lag_s: float | None = None
    reconnect_for_s: float = 30.0
    ffmpeg: str = "ffmpeg"
    # The tenant the stream is for: its segments and state go under tenants/<tenant>/.
    tenant: str | None = None


def ffmpeg_args(config: StreamConfig, workdir: Path) -> list[str]:
    """Segments at keyframes, stream copy, source timestamps kept (``-reset_timestamps 0``)."""
    args = [config.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin"]
    if config.url.startswith(_NETWORK):
        args += ["-rw_timeout", "5000000"]  # a silent network source counts as dropped after 5 s
    return [
        *args,
        # FFmpeg's default 5 s of probing would hold the first segment back by as much.
        "-analyzeduration",
        "1000000",
        "-i",
        config.url,
        "-map",
        "0:v:0",
        "-c",
        "copy",
        # Keep the packets before a connection's first keyframe (FFmpeg drops them by default):
        # the segment list counts time from the first packet, and so must the segment's own
        # timestamps, or the first segment after every (re)connection is shifted by them.
        "-copyinkf",
        "-f",
        "segment",
        "-segment_time",
        f"{config.segment_s:g}",
        "-segment_format",
        "mpegts",
        "-reset_timestamps",
        "0",
        "-segment_list",
        str(workdir / "list.csv"),
        "-segment_list_type",
        "csv",
        str(workdir / "%06d.ts"),
    ]


class StreamProducer:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        publisher: EventPublisher,
        config: StreamConfig,
        stop: threading.Event | None = None,
        wall_clock: Any = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._publisher = publisher
        self._config = config
        self.stop = stop or threading.Event()
        self._now = wall_clock
        self._state = ProducerState(config.stream_id)
        self._last_source: SourceObject | None = None
        self.published: list[IngestEvent] = []

    def run(self) -> int:
        """Produce until the source ends for good or ``stop`` is set; the number of segments."""
        self._state = self._load_state()
        if self._state.last_event is not None:
            # Maybe never published before the last run died; the worker folds a seq once.
            self._publish(IngestEvent.model_validate(self._state.last_event))
        sent = 0
        gone_since: float | None = None
        with tempfile.TemporaryDirectory(prefix="vidloc-stream-") as tmp:
            attempt = 0
            while not self.stop.is_set():
                workdir = Path(tmp) / f"conn-{attempt}"
                workdir.mkdir()
                attempt += 1
                got = self._connection(workdir)
                sent += got
                if self.stop.is_set():
                    break
                if got:
                    gone_since = None
                now = self._now()
                gone_since = gone_since or now
                if now - gone_since >= self._config.reconnect_for_s:
                    log.info("source gone for %.0f s; ending the stream", now - gone_since)
                    break
                if not got:
                    self.stop.wait(RETRY_S)
                else:
                    log.warning("source dropped; reconnecting to %s", self._config.url)
        self._announce_end()
        return sent

    def _connection(self, workdir: Path) -> int:
        """One FFmpeg run: publish each segment it finishes; the number published."""
        proc = subprocess.Popen(
            ffmpeg_args(self._config, workdir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        clock: ConnectionClock | None = None
        done = 0
        listing = workdir / "list.csv"
        stopping = False
        while True:
            exited = proc.poll() is not None
            if listing.exists():
                listed = parse_segment_list(listing.read_text())
                for seg in listed[done:]:
                    if clock is None:
                        # A live source delivers in real time: the first segment was listed
                        # when its last packet arrived, its length after the first one did.
                        clock = self._clock_for_connection(seg.end - seg.start)
                    self._send(workdir / seg.file, seg, clock.place(seg))
                    done += 1
            if exited:
                break
            if self.stop.is_set() and not stopping:
                stopping = True
                proc.send_signal(signal.SIGINT)  # graceful: FFmpeg closes and lists the last
                threading.Timer(STOP_GRACE_S, _kill_if_running, (proc,)).start()
            time.sleep(POLL_S)
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        proc.wait()
        if err and not stopping:
            log.info("ffmpeg ended (exit %s): %s", proc.returncode, err[-500:])
        return done

    def _clock_for_connection(self, received_s: float) -> ConnectionClock:
        now = self._now() - max(0.0, received_s)
        if self._state.origin_wall is None:
            self._state = replace(self._state, origin_wall=now)
        assert self._state.origin_wall is not None
        return ConnectionClock(self._state.end_s, now - self._state.origin_wall)

    def _send(self, path: Path, listed: ListedSegment, where: Placement) -> None:
        c = self._config
        seq = self._state.next_seq
        info = self._store.upload_file(
            self._settings.video_bucket,
            segment_key(c.stream_id, seq, c.tenant),
            path,
            content_type="video/mp2t",
            metadata={SUBMITTED_META: "1"},  # the bridge must not queue it a second time
        )
        path.unlink(missing_ok=True)
        source = SourceObject(bucket=info.bucket, key=info.key, etag=info.etag, size=info.size)
        self._last_source = source
        event = self._event(seq, source, where.start_s, where.duration_s, where.gap_before_s)
        self._commit(event, seq + 1, where.start_s + where.duration_s)
        if where.gap_before_s > 0:
            log.warning(
                "segment %d follows a gap of %.1f s (source drop)",
                seq,
                where.gap_before_s,
                extra={"video_id": c.stream_id},
            )

    def _event(
        self,
        seq: int,
        source: SourceObject,
        start: float,
        duration: float,
        gap: float,
        *,
        end: bool = False,
    ) -> IngestEvent:
        c = self._config
        origin = self._state.origin_wall or self._now()
        return IngestEvent(
            event_id=segment_event_id(c.stream_id, seq, source),
            video_id=c.stream_id,
            tenant=tenant_of_key(source.key),
            source=source,
            options=c.options,
            submitted_at=datetime.now(UTC),
            stream=StreamSegment(
                stream_id=c.stream_id,
                seq=seq,
                start_s=start,
                duration_s=duration,
                wall_clock=datetime.fromtimestamp(origin + start, UTC),
                end_of_stream=end,
                gap_before_s=gap,
                policy=c.policy,
                max_lag_s=c.max_lag_s,
            ),
        )

    def _commit(
        self, event: IngestEvent, next_seq: int, end_s: float, *, ended: bool = False
    ) -> None:
        """Remember the event, then publish it (see ProducerState for why in that order)."""
        self._state = replace(
            self._state,
            next_seq=next_seq,
            end_s=end_s,
            ended=ended,
            last_event=event.model_dump(mode="json", by_alias=True, exclude_none=True),
        )
        self._store.put_bytes(
            self._settings.video_bucket,
            state_key(self._config.stream_id, self._config.tenant),
            self._state.encode(),
        )
        self._publish(event)

    def _publish(self, event: IngestEvent) -> None:
        self._publisher.publish(names.TOPIC_INGEST, self._config.stream_id, encode(event))
        self.published.append(event)
        assert event.stream is not None
        log.info(
            "stream %s segment %d at %.2f s (%.2f s)%s",
            event.stream.stream_id,
            event.stream.seq,
            event.stream.start_s,
            event.stream.duration_s,
            ", end of stream" if event.stream.end_of_stream else "",
        )

    def _announce_end(self) -> None:
        """A media-less last event; it names the last segment, which the worker won't fetch."""
        source = self._last_source
        last = self._state.last_event
        if source is None and last is not None:
            source = IngestEvent.model_validate(last).source
        if source is None:
            log.warning("stream %s produced no segment; no end to announce", self._config.stream_id)
            return
        seq = self._state.next_seq
        end = self._event(seq, source, self._state.end_s, 0.0, 0.0, end=True)
        self._commit(end, seq + 1, self._state.end_s, ended=True)

    def _load_state(self) -> ProducerState:
        key = state_key(self._config.stream_id, self._config.tenant)
        try:
            data = self._store.get_bytes(self._settings.video_bucket, key)
        except ObjectMissing:
            return ProducerState(self._config.stream_id)
        try:
            state = ProducerState.decode(data, self._config.stream_id)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"stream state s3://{self._settings.video_bucket}/{key}: {exc}"
            ) from exc
        log.info(
            "resuming stream %s at segment %d (%.1f s on its clock)",
            self._config.stream_id,
            state.next_seq,
            state.end_s,
        )
        return replace(state, ended=False)


def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
