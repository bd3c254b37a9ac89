"""The VLM localizer: frames -> prompt -> model endpoint -> defensive parse -> events."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace

import httpx

from vidloc.metrics import Metrics
from vidloc.settings import Settings
from workers.localizers.answer.read import ParsedAnswer, parse_answer
from workers.localizers.answer.reask import reask_messages
from workers.localizers.capped import ImageCapLocalizer, part_chunks, split_evenly, stitch
from workers.localizers.kind import LocalizerKind
from workers.localizers.prompt import build_messages, response_format_for_answer
from workers.model.client import ModelClient, model_client_from_settings
from workers.priority import PrioritySlots
from workers.types import (
    AnswerReport,
    Chunk,
    ChunkResult,
    FrameSample,
    LocalizeRequest,
    TokenTally,
)

logger = logging.getLogger(__name__)


class VlmLocalizer:
    """Implements ``workers.types.Localizer`` with a vision-language model.

    Thread-safe: it holds no per-call state, and a semaphore caps how many requests are in
    flight at once however many worker threads call it.
    """

    name = "vlm"  # the name registered for it (KIND below)

    def __init__(
        self,
        client: ModelClient,
        *,
        answer_retries: int = 1,
        jpeg_quality: int = 85,
        max_concurrency: int = 4,
        use_response_format: bool = True,
        max_request_bytes: int | None = None,
    ) -> None:
        self.client = client
        self.max_request_bytes = max_request_bytes
        self.answer_retries = max(0, answer_retries)
        self.jpeg_quality = jpeg_quality
        self.use_response_format = use_response_format
        # Shared by every job of the worker; a span order's requests wait for the others'.
        self._slots = PrioritySlots(max(1, max_concurrency))

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult:
        if not frames:
            return ChunkResult(chunk_index=chunk.index, events=())
        messages = build_messages(frames, request, chunk, jpeg_quality=self.jpeg_quality)
        if self.max_request_bytes is not None and len(frames) > 1:
            size = len(json.dumps(messages))
            if size > self.max_request_bytes:
                # An endpoint refuses (413/400) or truncates an oversized body; two requests
                # of half the frames each cost the same tokens and both get through.
                logger.info(
                    "chunk %d: request of %d bytes over the %d byte limit; splitting %d frames",
                    chunk.index,
                    size,
                    self.max_request_bytes,
                    len(frames),
                )
                halves = split_evenly(len(frames), 2)
                parts = part_chunks(chunk, [f.t_s for f in frames], halves)
                first = self.localize(parts[0], frames[: halves[0][1]], request)
                second = self.localize(parts[1], frames[halves[1][0] :], request)
                return ChunkResult(
                    chunk_index=chunk.index,
                    events=stitch(
                        [(first.events, parts[0].times), (second.events, parts[1].times)]
                    ),
                    usage=first.usage + second.usage,
                    rejected_events=first.rejected_events + second.rejected_events,
                    answer=first.answer + second.answer,
                )
        response_format = (
            response_format_for_answer(request.labels) if self.use_response_format else None
        )
        frame_times = [f.t_s for f in frames]
        usage = TokenTally()
        rejected = 0
        report = AnswerReport()
        parsed: ParsedAnswer | None = None
        for attempt in range(1 + self.answer_retries):
            with self._slots:
                reply = self.client.complete(messages, response_format)
            usage += reply.usage
            parsed = parse_answer(
                reply.content,
                reply.finish_reason,
                chunk=chunk,
                video_duration_s=request.video_duration_s,
                labels=request.labels,
                frame_times=frame_times,
            )
            rejected += parsed.rejected
            report += AnswerReport(
                answers=1,
                unusable=0 if parsed.usable else 1,
                relative_shifted=parsed.relative_shifted,
                dropped=parsed.dropped,
            )
            if parsed.problems:
                logger.info(
                    "chunk %d answer (attempt %d): %d events, %d rejected: %s",
                    chunk.index,
                    attempt + 1,
                    len(parsed.events),
                    parsed.rejected,
                    "; ".join(parsed.problems),
                )
            if parsed.usable:
                break
            logger.warning(
                "chunk %d: model answer unusable, %s (attempt %d/%d, finish_reason=%s)",
                chunk.index,
                parsed.why_unusable,
                attempt + 1,
                1 + self.answer_retries,
                reply.finish_reason,
            )
            if attempt < self.answer_retries:
                # Say what was wrong and restate the format, in the same conversation: that
                # fixes most unusable answers where asking the same question again would not.
                messages = reask_messages(
                    messages, reply.content, parsed.why_unusable, request.labels
                )
                report += AnswerReport(reasked=1)
        failed = parsed is None or not parsed.usable
        report = replace(report, failed=failed)
        return ChunkResult(
            chunk_index=chunk.index,
            events=() if parsed is None else parsed.events,
            usage=usage,
            rejected_events=rejected,
            answer=report,
        )


def vlm_localizer_from_settings(
    settings: Settings, http: httpx.Client, metrics: Metrics | None = None
) -> ImageCapLocalizer:
    """The VLM localizer, every request held to ``VIDLOC_VLM_MAX_IMAGES_PER_REQUEST`` images."""
    vlm = VlmLocalizer(
        model_client_from_settings(settings, http, metrics=metrics),
        answer_retries=settings.vlm_answer_retries,
        jpeg_quality=settings.vlm_jpeg_quality,
        max_concurrency=settings.vlm_concurrency,
        max_request_bytes=settings.vlm_max_request_bytes,
    )
    return ImageCapLocalizer(vlm, settings.vlm_max_images_per_request)


KIND = LocalizerKind(
    name="vlm",
    build=lambda deps: vlm_localizer_from_settings(deps.settings, deps.http, deps.metrics),
    asks_model=True,
    sees_jpeg=True,
    shared=True,
    refines_boundaries=True,
    samples_adaptively=True,
)
