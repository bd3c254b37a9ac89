"""Thumbnails from the frame cache, for the events of a job that saw none of their frames.

A long video merged from its spans is the case: the merging member localizes nothing itself
(every chunk comes from a span's checkpoint), so its ``FrameKeeper`` holds no frame. But each
span kept the frames it sent the model in the frame cache, which the merge seals
(:mod:`workers.pipeline.frame_store`). So an event still without a thumbnail gets the kept
frame nearest its middle (:func:`~workers.pipeline.thumbnails.pick_times`, the keeper's rule,
the sampling period as spacing, the planned times as the frames' times), read from only the
parts holding the picked frames and shrunk like a kept JPEG. With the cache off, without a
manifest, or with a part that does not read back, those events keep no thumbnail and the log
says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from contracts import Timeline
from vidloc.errors import FrameCacheUnreadable
from workers.pipeline.frame_cache import CACHE_OFF, Manifest, Miss, owners
from workers.pipeline.frame_store import FrameStore
from workers.pipeline.thumbnails import (
    Thumbnail,
    pick_times,
    shrink_jpeg,
    thumbnail_name,
    with_thumbnails,
)

log = logging.getLogger(__name__)


def kept_times(manifest: Manifest) -> list[float]:
    """The planned times of every frame the cache keeps, ascending."""
    return sorted(owners(manifest.sampling.chunks))


def store_cached_thumbnails(
    timeline: Timeline,
    cache: FrameStore | None,
    prefix: str,
    sealed: Manifest | None,
    put: Callable[[str, bytes], None],
) -> Timeline:
    """``timeline`` with a thumbnail for each event lacking one that a kept frame serves, each
    ``put(name, jpeg)`` first (like :func:`~workers.pipeline.thumbnails.store_thumbnails`).
    ``sealed``: the manifest this job wrote, if any (else the one under ``prefix`` is read)."""
    lacking = [e for e in timeline.events if e.thumbnail is None]
    if not lacking:
        return timeline
    found: Manifest | Miss
    if cache is None:
        found = Miss(CACHE_OFF)
    else:
        found = sealed if sealed is not None else cache.manifest(prefix)
    if isinstance(found, Miss):
        log.info(
            "%d events get no thumbnail: no kept frames to take them from (%s%s)",
            len(lacking),
            found.reason,
            f": {found.detail}" if found.detail else "",
        )
        return timeline
    assert cache is not None
    rate = found.sampling.sample_fps
    picked = pick_times(lacking, kept_times(found), 1.0 / rate if rate > 0 else 0.0)
    wanted = sorted(set(picked.values()))
    try:
        # One frame per wanted time, in order; only the parts owning them are read.
        read = dict(zip(wanted, cache.frames(prefix, found, wanted), strict=True))
        thumbs = []
        for event_id, t in picked.items():
            frame = read[t]
            assert frame.jpeg is not None
            thumbs.append(
                Thumbnail(event_id, thumbnail_name(event_id), frame.t_s, shrink_jpeg(frame.jpeg))
            )
    except (FrameCacheUnreadable, ValueError) as exc:
        log.warning("%d events get no thumbnail: kept frames unreadable (%s)", len(lacking), exc)
        return timeline
    for thumb in thumbs:
        put(thumb.name, thumb.jpeg)
    if len(thumbs) < len(lacking):
        log.info("%d events get no thumbnail: no kept frame near them", len(lacking) - len(thumbs))
    return with_thumbnails(timeline, thumbs)
