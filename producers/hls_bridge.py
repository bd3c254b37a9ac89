"""The bridge's I/O half for HLS written to the bucket: playlist version -> segment ingest events.

Pure parts (parsing, the stream clock, the stream of a key) live in :mod:`producers.hls`. Here:
read the playlist and the stream's bridge state, stat each new segment for its etag, build the
ingest events, and hand back a ``commit`` that stores the new state. The caller publishes the
events *before* committing, so a bridge that dies in between bridges the same segments again
with the same event ids, and the worker (which folds each sequence number once) makes the
repeat harmless: at-least-once in, no duplicate events on the timeline.

Ordering: every version of one playlist is notified under the same ``s3.events`` key (the
playlist's path), so one bridge at a time handles a stream's playlists, in order, and the
events go to ``video.ingest`` keyed by the stream id, as ``vidloc stream``'s do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from contracts import IngestEvent, IngestOptions, SourceObject
from contracts.stream import StreamSegment
from producers.hls import (
    BridgeState,
    HlsPrefix,
    PlannedSegment,
    PlaylistError,
    hls_prefix_of,
    parse_playlist,
    plan_segments,
    segment_object_key,
    state_key,
)
from producers.notifications import CreatedObject
from producers.segments import segment_event_id
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import InputError, ObjectMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HlsUpdate:
    """What one playlist version asks for: events to publish (keyed by ``stream_id``), then
    ``commit`` to remember them."""

    stream_id: str
    events: list[IngestEvent]
    commit: Callable[[], None]


def _nothing() -> None:
    return None


class HlsFollower:
    """Turns playlist versions into stream-segment ingest events; one per bridge."""

    def __init__(
        self, store: ObjectStore, *, video_bucket: str, options: IngestOptions | None = None
    ) -> None:
        self._store = store
        self._bucket = video_bucket
        self._options = options or IngestOptions()

    def __call__(self, playlist: CreatedObject, now: datetime) -> HlsUpdate:
        prefix = hls_prefix_of(playlist.key)
        assert prefix is not None, "only playlists under hls/<stream-id>/ come here"
        idle = HlsUpdate(prefix.stream_id, [], _nothing)
        try:
            text = self._store.get_bytes(self._bucket, playlist.key).decode("utf-8", "replace")
            parsed = parse_playlist(text)
        except ObjectMissing:
            log.info("playlist %s is gone; nothing to bridge", playlist.key)
            return idle
        except PlaylistError as exc:
            log.warning("skipping playlist %s: %s", playlist.key, exc)
            return idle
        state = self._load_state(prefix)
        plan = plan_segments(parsed, state, now=now.timestamp())
        events: list[IngestEvent] = []
        last = state.last_source
        for seg in plan.segments:
            source = self._segment_source(prefix, seg)
            if source is None:
                continue  # its span stays uncovered: the worker records a gap there
            events.append(self._event(prefix, seg, source, now))
            last = source.model_dump(mode="json")
        new_state = replace(plan.state, last_source=last)
        if plan.end_of_stream:
            if last is None:
                log.warning(
                    "stream %s ended without a segment; no end to announce", prefix.stream_id
                )
            else:
                marker = PlannedSegment(
                    seq=new_state.next_seq - 1,
                    uri="",
                    start_s=new_state.end_s,
                    duration_s=0.0,
                    gap_before_s=0.0,
                    wall_clock=(new_state.origin_wall or now.timestamp()) + new_state.end_s,
                )
                source = SourceObject.model_validate(last)
                events.append(self._event(prefix, marker, source, now, end=True))
        if not events and new_state == state:
            return idle
        key = state_key(prefix)

        def commit() -> None:
            self._store.put_bytes(self._bucket, key, new_state.encode())

        log.info(
            "playlist %s: %d new segment(s)%s",
            playlist.key,
            len(plan.segments),
            ", end of stream" if plan.end_of_stream else "",
            extra={"video_id": prefix.stream_id},
        )
        return HlsUpdate(prefix.stream_id, events, commit)

    def _load_state(self, prefix: HlsPrefix) -> BridgeState:
        key = state_key(prefix)
        try:
            data = self._store.get_bytes(self._bucket, key)
        except ObjectMissing:
            return BridgeState(prefix.stream_id)
        try:
            return BridgeState.decode(data, prefix.stream_id)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"HLS bridge state s3://{self._bucket}/{key}: {exc}") from exc

    def _segment_source(self, prefix: HlsPrefix, seg: PlannedSegment) -> SourceObject | None:
        key = segment_object_key(prefix, seg.uri)
        if key is None:
            log.warning(
                "stream %s: segment URI %r is outside its prefix", prefix.stream_id, seg.uri
            )
            return None
        try:
            info = self._store.stat(self._bucket, key)
        except ObjectMissing:
            log.warning("stream %s: segment %d (%s) is missing", prefix.stream_id, seg.seq, key)
            return None
        return SourceObject(bucket=self._bucket, key=key, etag=info.etag, size=info.size)

    def _event(
        self,
        prefix: HlsPrefix,
        seg: PlannedSegment,
        source: SourceObject,
        now: datetime,
        *,
        end: bool = False,
    ) -> IngestEvent:
        return IngestEvent(
            event_id=segment_event_id(prefix.stream_id, seg.seq, source),
            video_id=prefix.stream_id,
            tenant=prefix.tenant,
            source=source,
            options=self._options,
            submitted_at=now,
            stream=StreamSegment(
                stream_id=prefix.stream_id,
                seq=seg.seq,
                start_s=seg.start_s,
                duration_s=seg.duration_s,
                wall_clock=datetime.fromtimestamp(seg.wall_clock, UTC),
                end_of_stream=end,
                gap_before_s=seg.gap_before_s,
            ),
        )
