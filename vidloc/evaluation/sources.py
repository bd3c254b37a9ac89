"""Read ground truth (JSONL) and timelines (a folder or an S3 prefix) into metric inputs.

Ground-truth JSONL, one object per line::

    {"video": "h264_mp4", "label": "red circle", "start_s": 1.0, "end_s": 3.0}

``video`` names the video: a timeline belongs to it when it equals the timeline's
``video_id``, the file name of its ``source.key`` or that name without its extension. Lines
with a ``kind`` other than ``"event"`` (the synthetic generator also writes cuts, black and
frozen stretches) are skipped, as are blank lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from contracts import Timeline, decode_timeline
from vidloc import names
from vidloc.errors import InputError, VidlocError
from vidloc.evaluation.metrics import PredictedEvent, TruthEvent, VideoUsage

log = logging.getLogger(__name__)


class TimelineStore(Protocol):
    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...


def parse_truth_lines(lines: Iterable[str]) -> list[TruthEvent]:
    out: list[TruthEvent] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row.get("kind", "event") != "event":
                continue
            event = TruthEvent(
                str(row["video"]), str(row["label"]), float(row["start_s"]), float(row["end_s"])
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"ground truth line {number}: {exc!r}", code="bad_truth") from exc
        if event.end_s < event.start_s:
            raise InputError(f"ground truth line {number}: end before start", code="bad_truth")
        out.append(event)
    return out


def read_truth(path: Path) -> list[TruthEvent]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}", code="bad_truth") from exc
    return parse_truth_lines(text.splitlines())


def video_names(timeline: Timeline) -> tuple[str, ...]:
    """Every name a ground-truth ``video`` may use for this timeline."""
    name = PurePosixPath(timeline.source.key).name
    return (timeline.video_id, name, PurePosixPath(name).stem)


@dataclass(frozen=True)
class Loaded:
    predicted: list[PredictedEvent]
    usage: list[VideoUsage]
    missing: tuple[str, ...]
    extra: tuple[str, ...]


def usage_of(video: str, timeline: Timeline) -> VideoUsage:
    usage = timeline.usage
    refine = usage.refine
    return VideoUsage(
        video=video,
        duration_s=timeline.video.duration_s,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
        refine_prompt_tokens=refine.prompt_tokens if refine else 0,
        refine_completion_tokens=refine.completion_tokens if refine else 0,
        refine_cost=refine.cost if refine else 0.0,
        currency=usage.currency,
    )


def pair_timelines(truth: Iterable[TruthEvent], timelines: Iterable[Timeline]) -> Loaded:
    """Name each timeline after the truth video it belongs to; the newest wins a tie."""
    wanted = {t.video for t in truth}
    chosen: dict[str, Timeline] = {}
    extra: list[str] = []
    for timeline in timelines:
        match = next((n for n in video_names(timeline) if n in wanted), None)
        if match is None:
            extra.append(timeline.video_id)
            continue
        held = chosen.get(match)
        if held is None or held.created_at < timeline.created_at:
            chosen[match] = timeline
    predicted = [
        PredictedEvent(video, e.label, e.start_s, e.end_s, e.confidence)
        for video, timeline in chosen.items()
        for e in timeline.events
    ]
    usage = [usage_of(video, timeline) for video, timeline in chosen.items()]
    missing = tuple(sorted(wanted - set(chosen)))
    return Loaded(predicted, usage, missing, tuple(sorted(extra)))


def timelines_from_folder(folder: Path) -> list[Timeline]:
    """Every ``*.json`` under ``folder`` that is a timeline (other JSON is skipped)."""
    out = []
    for path in sorted(folder.rglob("*.json")):
        try:
            out.append(decode_timeline(path.read_bytes()))
        except VidlocError as exc:
            log.debug("skipping %s: %s", path, exc)
    return out


def timelines_from_store(store: TimelineStore, bucket: str, prefix: str) -> list[Timeline]:
    """Every video's ``.../timeline.json`` under ``prefix`` in ``bucket``: its first analysis.
    A later analysis (``.../analyses/<id>/timeline.json``) answered another question, so it is
    not scored against the video's ground truth."""
    out = []
    later = f"/{names.ANALYSES_FOLDER}/"
    for key in store.list_keys(bucket, prefix):
        if key.endswith("timeline.json") and later not in key:
            out.append(decode_timeline(store.get_bytes(bucket, key)))
    return out


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)``."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InputError(f"no bucket in {url!r}", code="bad_argument")
    return bucket, prefix
