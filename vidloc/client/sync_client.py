"""The blocking client: ``Client(base_url, api_key)``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from contracts import Timeline, TimelineEvent
from vidloc.client.common import (
    DEFAULT_TIMEOUT_S,
    UPLOAD_TIMEOUT_S,
    analyses_path,
    analysis_finished,
    ask_body,
    ask_headers,
    event_params,
    finished,
    headers,
    object_request,
    upload_request,
)
from vidloc.client.errors import NotFound, TransportError, WaitTimeout, raise_for
from vidloc.client.models import (
    Analysis,
    AnalysisList,
    Cancel,
    CompletedPart,
    CompleteUpload,
    SubmitRequest,
    SubmitResponse,
    UploadPlan,
    Video,
    WebhookCreated,
    WebhookInfo,
    WebhookList,
    WebhookSpec,
)


class Job:
    """A submitted video: ``wait()`` for its result, then read its ``timeline()``/``events()``."""

    def __init__(self, client: Client, submitted: SubmitResponse) -> None:
        self._client = client
        self.submitted = submitted
        self.video_id = submitted.video_id
        self.job_id = submitted.job_id

    def status(self) -> Video:
        return self._client.video(self.video_id)

    def cancel(self) -> Cancel:
        """Cancel this job while it runs (see :meth:`Client.cancel`)."""
        return self._client.cancel(self.video_id)

    def wait(self, timeout_s: float = 600.0, poll_s: float = 1.0) -> Video:
        """Block until the job succeeded (its Video), or raise JobFailed / WaitTimeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                video = self.status()
                if finished(video, self.job_id):
                    return video
            except NotFound:
                pass  # the upload is not announced on the bus yet
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"video {self.video_id} not finished in {timeout_s:.0f} s")
            time.sleep(poll_s)

    def timeline(self) -> Timeline:
        return self._client.timeline(self.video_id)

    def events(
        self,
        label: str | Iterable[str] | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> list[TimelineEvent]:
        return self._client.events(self.video_id, label=label, start_s=start_s, end_s=end_s)


class AnalysisJob:
    """An analysis asked of a video: ``wait()`` for it, then read its ``timeline()``."""

    def __init__(self, client: Client, analysis: Analysis) -> None:
        self._client = client
        self.asked = analysis
        self.video_id = analysis.video_id
        self.analysis_id = analysis.analysis_id

    def status(self) -> Analysis:
        return self._client.analysis(self.video_id, self.analysis_id)

    def wait(self, timeout_s: float = 600.0, poll_s: float = 1.0) -> Analysis:
        """Block until the analysis succeeded, or raise JobFailed / WaitTimeout."""
        deadline = time.monotonic() + timeout_s
        while not analysis_finished(
            analysis := self.status(), deadline=deadline, timeout_s=timeout_s
        ):
            time.sleep(poll_s)
        return analysis

    def timeline(self) -> Timeline:
        return self._client.analysis_timeline(self.video_id, self.analysis_id)


class Client:
    """The query API over HTTP. ``transport`` is for tests (an ``httpx.MockTransport``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=headers(api_key), timeout=timeout_s, transport=transport
        )
        # Upload URLs go to the S3 store: never with the API key.
        self._s3 = httpx.Client(timeout=UPLOAD_TIMEOUT_S, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._s3.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {path}: {exc}") from exc
        raise_for(response)
        return response

    # -- submitting ---------------------------------------------------------------------

    def submit(
        self,
        file: str | Path,
        *,
        prompt: str | None = None,
        labels: Iterable[str] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Job:
        """Upload a local video and start its job (which starts when the upload completes)."""
        path = Path(file)
        request = upload_request(path, prompt=prompt, labels=labels, options=options)
        submitted = self._submit(request)
        assert submitted.upload is not None
        self._upload(path, submitted, submitted.upload)
        return Job(self, submitted)

    def submit_object(
        self,
        key: str,
        *,
        prompt: str | None = None,
        labels: Iterable[str] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Job:
        """Start a job for an object already under the tenant's prefix of the video bucket."""
        request = object_request(key, prompt=prompt, labels=labels, options=options)
        return Job(self, self._submit(request))

    def _submit(self, request: SubmitRequest) -> SubmitResponse:
        body = request.model_dump(mode="json", exclude_defaults=True)
        return SubmitResponse.model_validate(self._call("POST", "/videos", json=body).json())

    def _upload(self, path: Path, submitted: SubmitResponse, plan: UploadPlan) -> None:
        try:
            if plan.upload_id is None:
                assert plan.url is not None
                with path.open("rb") as fh:
                    raise_for(self._s3.put(plan.url, content=fh.read(), headers=plan.headers))
                return
            parts = []
            with path.open("rb") as fh:
                for part in plan.parts:
                    response = self._s3.put(part.url, content=fh.read(part.size))
                    raise_for(response)
                    etag = response.headers.get("etag", "").strip('"')
                    parts.append(CompletedPart(part_number=part.part_number, etag=etag))
        except httpx.HTTPError as exc:
            raise TransportError(f"uploading {path}: {exc}") from exc
        assert plan.complete_url is not None
        done = CompleteUpload(upload_id=plan.upload_id, parts=parts)
        self._call("POST", plan.complete_url, json=done.model_dump(mode="json"))

    # -- reading ------------------------------------------------------------------------

    def job(self, video_id: str) -> Job:
        video = self.video(video_id)
        submitted = SubmitResponse(video_id=video_id, status="queued", job_id=video.job_id)
        return Job(self, submitted)

    def video(self, video_id: str) -> Video:
        return Video.model_validate(self._call("GET", f"/videos/{video_id}").json())

    def cancel(self, video_id: str) -> Cancel:
        """Cancel the video's running job (202): its workers stop between chunks and it ends
        with a failed result ``cancelled``. NotFound for an unknown video (or another
        tenant's), Conflict (``video_not_running``) once it succeeded or failed."""
        response = self._call("POST", f"/videos/{video_id}/cancel")
        return Cancel.model_validate(response.json())

    def timeline(self, video_id: str) -> Timeline:
        return Timeline.model_validate(self._call("GET", f"/videos/{video_id}/timeline").json())

    def events(
        self,
        video_id: str,
        *,
        label: str | Iterable[str] | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> list[TimelineEvent]:
        params = event_params(label, start_s, end_s)
        body = self._call("GET", f"/videos/{video_id}/events", params=params).json()
        return [TimelineEvent.model_validate(e) for e in body["events"]]

    # -- analyses -----------------------------------------------------------------------

    def ask(
        self,
        video_id: str,
        *,
        prompt: str | None = None,
        labels: Iterable[str] = (),
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> AnalysisJob:
        """Ask a new question of an analysed video (its frames are reused); ``wait()`` on the
        answer. The same ``idempotency_key`` asks once."""
        response = self._call(
            "POST",
            analyses_path(video_id),
            json=ask_body(prompt, labels, options),
            headers=ask_headers(idempotency_key),
        )
        return AnalysisJob(self, Analysis.model_validate(response.json()))

    def analyses(self, video_id: str) -> list[Analysis]:
        """The video's analyses, its first ('default') first."""
        response = self._call("GET", analyses_path(video_id))
        return AnalysisList.model_validate(response.json()).analyses

    def analysis(self, video_id: str, analysis_id: str) -> Analysis:
        response = self._call("GET", analyses_path(video_id, analysis_id))
        return Analysis.model_validate(response.json())

    def analysis_timeline(self, video_id: str, analysis_id: str) -> Timeline:
        path = analyses_path(video_id, analysis_id, "timeline")
        return Timeline.model_validate((self._call("GET", path)).json())

    # -- webhooks -----------------------------------------------------------------------

    def add_webhook(
        self, url: str, *, events: Iterable[str] = ("result",), scope: str = "tenant"
    ) -> WebhookCreated:
        spec = WebhookSpec.model_validate({"url": url, "events": list(events), "scope": scope})
        response = self._call("POST", "/webhooks", json=spec.model_dump(mode="json"))
        return WebhookCreated.model_validate(response.json())

    def webhooks(self) -> list[WebhookInfo]:
        return WebhookList.model_validate(self._call("GET", "/webhooks").json()).webhooks

    def remove_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", f"/webhooks/{webhook_id}")
