"""One job's chunk checkpoints in the timeline bucket: found, read and written (the I/O side of
:mod:`workers.pipeline.checkpoint`, which encodes them).

A checkpoint is reused only under the same fingerprint: the plan's chunks, the frame size, the
question, and the object version (bucket, key, version tag), and it lives under the tenant's
prefix, so neither another tenant's job nor another upload of one key can resume it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import IngestEvent
from vidloc import names
from vidloc.errors import ObjectMissing
from workers.pipeline.checkpoint import decode_checkpoint, encode_checkpoint, plan_fingerprint
from workers.pipeline.planning import JobPlan
from workers.types import Chunk, ChunkResult


class CheckpointStore(Protocol):
    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/json"
    ) -> Any: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]: ...


def job_fingerprint(event: IngestEvent, plan: JobPlan) -> str:
    return plan_fingerprint(
        plan.localizer,
        plan.chunks,
        {
            "size": plan.frame_size,
            "prompt": event.options.prompt,
            "labels": list(event.options.labels),
            "object": [event.source.bucket, event.source.key, event.version_tag],
        },
    )


@dataclass(frozen=True)
class JobCheckpoints:
    """The checkpoints of one job (video id, job id, tenant) under one fingerprint."""

    store: CheckpointStore
    bucket: str
    video_id: str
    job_id: str
    tenant: str | None
    fingerprint: str

    def key(self, chunk_index: int) -> str:
        return names.checkpoint_key(self.video_id, self.job_id, chunk_index, self.tenant)

    def resume(self, chunks: Sequence[Chunk]) -> tuple[dict[int, ChunkResult], int]:
        """The ``chunks`` a previous attempt finished, by index, and how many checkpoints of
        the job's other chunks exist (other spans' work, for progress).

        One LIST of the job's checkpoints, then a GET for each one there (not a GET per chunk:
        a fresh job has none, and a long video has hundreds of chunks).
        """
        prefix = names.checkpoint_prefix(self.video_id, self.job_id, self.tenant)
        stored = set(self.store.list_keys(self.bucket, prefix))
        results: dict[int, ChunkResult] = {}
        for chunk in chunks:
            key = self.key(chunk.index)
            if key in stored and (found := self._load(key)) is not None:
                results[chunk.index] = found
        mine = {self.key(c.index) for c in chunks}
        elsewhere = sum(1 for k in stored - mine if k.rsplit("/", 1)[-1].startswith("chunk-"))
        return results, elsewhere

    def save(self, result: ChunkResult) -> None:
        data = encode_checkpoint(result, self.fingerprint)
        self.store.put_bytes(self.bucket, self.key(result.chunk_index), data)

    def _load(self, key: str) -> ChunkResult | None:
        try:
            data = self.store.get_bytes(self.bucket, key)
        except ObjectMissing:
            return None
        return decode_checkpoint(data, self.fingerprint)
