"""What the sync and async clients share: no I/O here."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from contracts import IngestOptions
from vidloc.client.errors import JobFailed, WaitTimeout
from vidloc.client.models import Analysis, AskRequest, SubmitRequest, Video

DEFAULT_TIMEOUT_S = 30.0
UPLOAD_TIMEOUT_S = 600.0


def headers(api_key: str | None) -> dict[str, str]:
    out = {"User-Agent": "vidloc-client/1"}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def upload_request(
    path: Path,
    *,
    prompt: str | None,
    labels: Iterable[str],
    options: Mapping[str, Any] | None,
) -> SubmitRequest:
    return SubmitRequest(
        file_name=path.name,
        size=path.stat().st_size,
        content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        prompt=prompt,
        labels=list(labels),
        options=IngestOptions(**(options or {})),
    )


def object_request(
    key: str, *, prompt: str | None, labels: Iterable[str], options: Mapping[str, Any] | None
) -> SubmitRequest:
    return SubmitRequest(
        key=key, prompt=prompt, labels=list(labels), options=IngestOptions(**(options or {}))
    )


def finished(video: Video, job_id: str | None) -> bool:
    """Whether ``video`` shows the final outcome of the job (any job when ``job_id`` is None);
    raises JobFailed for a failed one."""
    if job_id is not None and video.job_id != job_id:
        return False
    if video.status == "failed":
        error = video.error or {}
        raise JobFailed(video.video_id, error.get("code", "failed"), error.get("message", ""))
    return video.status == "succeeded"


def event_params(
    label: str | Iterable[str] | None, start_s: float | None, end_s: float | None
) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if label is not None:
        for one in [label] if isinstance(label, str) else label:
            params.append(("label", one))
    if start_s is not None:
        params.append(("start_s", repr(float(start_s))))
    if end_s is not None:
        params.append(("end_s", repr(float(end_s))))
    return params


def analyses_path(video_id: str, *under: str) -> str:
    """``/videos/{id}/analyses``, or a route below it (an analysis id, then ``timeline``)."""
    return "/".join([f"/videos/{video_id}/analyses", *under])


def ask_body(
    prompt: str | None, labels: Iterable[str], options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The JSON body of ``POST /videos/{id}/analyses`` (an ``AskRequest``)."""
    request = AskRequest(
        prompt=prompt, labels=list(labels), options=IngestOptions(**(options or {}))
    )
    return request.model_dump(mode="json", exclude_defaults=True)


def ask_headers(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}


def analysis_finished(analysis: Analysis, *, deadline: float, timeout_s: float) -> bool:
    """Whether ``analysis`` has its final outcome; raises JobFailed for a failed one, and
    WaitTimeout when it has not and ``deadline`` (``time.monotonic()``) has passed."""
    if analysis.status == "failed":
        error = analysis.error or {}
        raise JobFailed(
            f"{analysis.video_id} analysis {analysis.analysis_id}",
            error.get("code", "failed"),
            error.get("message", ""),
        )
    if analysis.status == "succeeded":
        return True
    if time.monotonic() >= deadline:
        raise WaitTimeout(
            f"analysis {analysis.analysis_id} of {analysis.video_id} not finished in "
            f"{timeout_s:.0f} s"
        )
    return False
