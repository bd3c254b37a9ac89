"""Everything that consumes ``video.ingest``, one room per part of the worker:

- ``service``: the service loop (Kafka consumer, ingest handler, outbox, policies, dedup);
- ``pipeline``: one job (plan, sample, fan out, checkpoint, merge, join, timeline);
- ``frames``: frame sampling (pure plans, the PyAV and decord adapters, the choice between them);
- ``localizers``: frames of a chunk to events (the registry, VLM, cv; ``answer``: model answers);
- ``model``: the model endpoint (client, rate limit, circuit breaker, tokens, cost);
- ``refinement``: boundary refinement;
- ``live``: live streams, one growing timeline per stream.

The package itself offers the vocabulary the rooms share (:mod:`workers.types`) and the
slots their jobs share, span orders last (:mod:`workers.priority`).
"""

from workers.types import (
    Chunk,
    ChunkResult,
    DetectedEvent,
    FrameSample,
    FrameSource,
    Localizer,
    LocalizeRequest,
    TokenTally,
    VideoInfo,
    normalise_label,
)

__all__ = [
    "Chunk",
    "ChunkResult",
    "DetectedEvent",
    "FrameSample",
    "FrameSource",
    "LocalizeRequest",
    "Localizer",
    "TokenTally",
    "VideoInfo",
    "normalise_label",
]
