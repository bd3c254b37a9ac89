"""What a localizer needs and offers, declared once beside it (``KIND`` in its module).

The pipeline, the service loop and the warnings ask these questions instead of comparing
localizer names, so a third localizer (a captioning model, an audio model) is its own module
plus one line in :mod:`workers.localizers.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from vidloc.metrics import Metrics
from vidloc.settings import Settings
from workers.types import DetectedEvent, Localizer


@dataclass(frozen=True)
class LocalizerDeps:
    """What building a localizer may use: the worker's settings and its shared clients."""

    settings: Settings
    http: httpx.Client
    metrics: Metrics | None = None


@dataclass(frozen=True)
class LocalizerKind:
    """One localizer's declaration.

    ``asks_model``: it calls the model endpoint, so jobs wait on the circuit breaker, pay a token
    bill, name the model in the timeline, fan chunks out to the endpoint's concurrency and fail
    loudly when no answer could be read. ``shared``: one instance serves every job of a worker
    (its semaphore is the worker's one model budget); otherwise each job builds its own.
    ``reports_labels``: the only labels it can give (``None``: whatever the job asks), so a job
    asking for others is warned. ``after_merge``: a step over the merged events of the whole
    video (the cv localizer turns merged cuts into shots there). ``sees_jpeg``: it is sent each
    frame as its JPEG and never reads the pixels, so a job hands it JPEGs alone (what the job
    itself needs pixels for, thumbnails, has taken them by then).
    """

    name: str
    build: Callable[[LocalizerDeps], Localizer]
    asks_model: bool = False
    shared: bool = False
    refines_boundaries: bool = False
    samples_adaptively: bool = False
    joins_instants: bool = True
    reports_labels: tuple[str, ...] | None = None
    sees_jpeg: bool = False
    after_merge: Callable[[Sequence[DetectedEvent], float], tuple[DetectedEvent, ...]] | None = None
