"""The job's plan, decided before the first frame is decoded (pure).

Probe facts, the user's options and settings (plus, for adaptive sampling, the pre-pass's change
scores) become sample times, chunks and frame size.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from contracts import IngestEvent
from vidloc.errors import InputError, VideoTooLong
from workers.frames.adaptive import changes_over, frames_for_budget, plan_adaptive_times
from workers.frames.plan import frame_size_for, plan_chunks, plan_sample_times
from workers.frames.prepass import Prepass
from workers.localizers.kind import LocalizerKind
from workers.localizers.prompt import timestamp_text
from workers.model.tokens import frame_tokens
from workers.types import Chunk, VideoInfo


@dataclass(frozen=True)
class JobPlan:
    """Everything decided before the first frame is decoded."""

    info: VideoInfo
    kind: LocalizerKind
    sample_fps: float
    chunk_s: float
    overlap_s: float
    frame_size: tuple[int, int]
    times: tuple[float, ...]
    chunks: tuple[Chunk, ...]
    mode: str = "uniform"  # or "adaptive"
    token_budget_per_min: float | None = None
    refine: bool = False
    cuts: tuple[float, ...] = ()  # frame-accurate cuts from the adaptive pre-pass

    @property
    def localizer(self) -> str:
        """The localizer's name, as the timeline and metrics carry it."""
        return self.kind.name


@dataclass(frozen=True)
class PlanConfig:
    """What planning needs of the worker's settings: the defaults a job's options override and
    the limits a video must fit. Fields carry the settings' own names, so the entry point slices
    them with ``from_settings`` and this module never sees the rest of the configuration."""

    sample_fps: float
    chunk_s: float
    chunk_overlap_s: float
    max_frames_per_chunk: int
    vlm_max_images_per_request: int
    frame_long_side: int
    sampling_mode: Literal["uniform", "adaptive"]
    token_budget_per_min: float | None
    adaptive_min_fps: float
    adaptive_change_threshold: float
    refine: bool
    max_duration_s: float
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: object) -> PlanConfig:
        """The planning slice of a ``vidloc.settings.Settings`` (or anything with its names)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


def frame_budget_tokens(size: tuple[int, int], duration_s: float) -> int:
    """Prompt tokens one frame costs, for token budgets: the image as the server bills it, its
    vision markers and a timestamp label as long as the video's last one."""
    return frame_tokens(*size, timestamp_text(duration_s))


def wants_adaptive(event: IngestEvent, config: PlanConfig) -> bool:
    return (event.options.sampling or config.sampling_mode) == "adaptive"


def make_plan(
    info: VideoInfo,
    event: IngestEvent,
    config: PlanConfig,
    kind: LocalizerKind,
    prepass: Prepass | None = None,
) -> JobPlan:
    """Pure: turn probe facts, user options and worker defaults into a sampling and chunking plan.

    With adaptive sampling (and the ``prepass`` it needs) the instants come from the change
    scores within the token budget; otherwise they are uniform at ``sample_fps``.
    """
    if info.duration_s > config.max_duration_s:
        raise VideoTooLong(
            f"video is {info.duration_s:.0f} s long; the limit is {config.max_duration_s:.0f} s"
        )
    if info.width * info.height > config.max_pixels:
        raise InputError(
            f"resolution {info.width}x{info.height} is over the limit of "
            f"{config.max_pixels} pixels",
            code="resolution_too_large",
        )
    opts = event.options
    sample_fps = opts.sample_fps or config.sample_fps
    chunk_s = opts.chunk_s or config.chunk_s
    overlap_s = min(config.chunk_overlap_s, chunk_s / 2)
    size = frame_size_for(info.width, info.height, config.frame_long_side)
    budget = opts.token_budget_per_min or config.token_budget_per_min
    refine = opts.refine if opts.refine is not None else config.refine
    adaptive = wants_adaptive(event, config) and prepass is not None
    if adaptive and prepass is not None:
        per_frame = frame_budget_tokens(size, info.duration_s)
        times = plan_adaptive_times(
            info.duration_s,
            changes_over(prepass.times, prepass.scores, config.adaptive_change_threshold),
            min_fps=config.adaptive_min_fps,
            max_frames=frames_for_budget(info.duration_s, budget, per_frame),
        )
    else:
        times = plan_sample_times(info.duration_s, sample_fps)
    max_frames = min(config.max_frames_per_chunk, config.vlm_max_images_per_request)
    chunks = plan_chunks(times, chunk_s, overlap_s, max_frames)
    return JobPlan(
        info,
        kind,
        sample_fps,
        chunk_s,
        overlap_s,
        size,
        times,
        chunks,
        mode="adaptive" if adaptive else "uniform",
        token_budget_per_min=budget if adaptive else None,
        refine=refine and kind.refines_boundaries,
        cuts=prepass.cuts if adaptive and prepass is not None else (),
    )
