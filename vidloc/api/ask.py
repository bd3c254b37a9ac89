"""A video's analyses over HTTP: ``POST /videos/{id}/analyses`` asks a new question of an
analysed video (scope ``submit``); ``GET /videos/{id}/analyses[/{aid}[/timeline|/view]]`` read
them (scope ``read``). The first analysis is ``default``: the video's own job and timeline,
which the routes without ``/analyses`` keep serving unchanged.

An ask publishes a ``vidloc.ingest.v2`` event for the object version the first analysis read
(its timeline's ``source``: bucket, key, etag, size), so the workers answer it from the frames
they kept. Nothing is started for a video the caller's tenant does not have (404, the same
answer as an unknown id), a video whose own job still runs or that has no timeline (409), or an
empty or oversized question (422). ``Idempotency-Key`` makes a retried ask the same analysis.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response
from fastapi.responses import HTMLResponse

from contracts import (
    DEFAULT_ANALYSIS_ID,
    ContractError,
    IngestOptions,
    Timeline,
    derive_analysis_id,
    encode,
)
from contracts.common import SAFE_ID_PATTERN
from producers.analyses import (
    ask_event_id,
    load_record,
    new_analysis,
    question_options,
    question_problem,
    refusal,
    start_analysis,
)
from vidloc import names
from vidloc.api.analyses import first_analysis
from vidloc.api.auth import Caller, Reader
from vidloc.api.errors import ApiError
from vidloc.api.front import Front, FrontDoor, Submitter
from vidloc.api.models import ErrorResponse
from vidloc.api.routes import _HTML_ERRORS, Deps, Services, VideoId, _not_found, _page, _state
from vidloc.client.models import Analysis, AnalysisList, AskRequest
from vidloc.tenancy import tenant_of_key

log = logging.getLogger(__name__)

router = APIRouter(tags=["analyses"])

AnalysisId = Annotated[
    str,
    Path(
        pattern=f"^{SAFE_ID_PATTERN}$",
        description="'default' (the video's first analysis) or an id from POST .../analyses",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="the same key (per video) asks once: a retry answers the analysis it "
        "started (200) instead of starting another",
    ),
]


def _responses(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": text} for code, text in pairs}


_READ_ERRORS = _responses(
    (401, "no API key, or not a valid one"),
    (403, "the API key lacks the read scope"),
    (404, "unknown video or analysis (or another tenant's)"),
    (414, "URL longer than VIDLOC_API_MAX_URL_BYTES"),
    (422, "invalid parameters"),
    (429, "rate limited (see Retry-After)"),
    (500, "internal error"),
    (503, "S3 or Kafka unreachable"),
)
_ASK_ERRORS = _responses(
    (400, "the body is not JSON (bad_request)"),
    (401, "no API key, or not a valid one"),
    (403, "the API key lacks the submit scope"),
    (404, "unknown video, or another tenant's (video_not_found)"),
    (
        409,
        "the video's own job is still running (video_running), it has no timeline "
        "(video_not_analysed), or it is a live stream (stream_not_analysable)",
    ),
    (413, "request body over VIDLOC_API_MAX_BODY_BYTES"),
    (
        422,
        "invalid request: no prompt and no labels (empty_question), a prompt over 8000 "
        "characters (prompt_too_long), an idempotency key reused for another question "
        "(idempotency_key_reused), or another invalid value (invalid_request)",
    ),
    (429, "rate limited, or over VIDLOC_API_SUBMIT_PER_DAY (submit_quota_exceeded)"),
    (500, "internal error"),
    (503, "S3 or Kafka unreachable"),
)


def _question(body: AskRequest) -> tuple[str | None, list[str]]:
    """The question: the body's fields, else the same ones in ``options``."""
    prompt = body.prompt if body.prompt is not None else body.options.prompt
    labels = body.labels or list(body.options.labels)
    problem = question_problem(prompt, labels)
    if problem is not None:
        raise ApiError(422, problem.code, problem.message)
    return prompt, labels


def _askable(deps: Services, caller: Caller, video_id: str) -> Timeline:
    """The first timeline of a video ``caller`` may ask about now, or the error saying why not."""
    timeline = deps.timelines.load(video_id, caller.tenant)
    state = deps.derive(caller, video_id, has_timeline=timeline is not None, stored=timeline)
    if state is None:
        raise _not_found(video_id)
    why = refusal(timeline, running=state.status in ("running", "stalled"))
    if why is not None:
        raise ApiError(409, why.code, why.message)
    assert timeline is not None
    if caller.tenant is not None and tenant_of_key(timeline.source.key) != caller.tenant:
        # A timeline under this tenant's prefix naming another's object: never ask it.
        log.warning("timeline of %s names a source outside tenant %s", video_id, caller.tenant)
        raise _not_found(video_id)
    return timeline


def _first(deps: Services, caller: Caller, video_id: str) -> Analysis:
    """The video's first analysis (``default``), 404 for a video ``caller`` may not see."""
    state = _state(deps, caller, video_id)
    timeline = deps.timelines.load(video_id, caller.tenant) if state.has_timeline else None
    return first_analysis(state, timeline)


def _analysis(deps: Services, caller: Caller, video_id: str, analysis_id: str) -> Analysis:
    if analysis_id == DEFAULT_ANALYSIS_ID:
        return _first(deps, caller, video_id)
    found = deps.later_analysis(caller, video_id, analysis_id)
    if found is None:
        if (
            deps.derive(
                caller, video_id, has_timeline=deps.timelines.exists(video_id, caller.tenant)
            )
            is None
        ):
            raise _not_found(video_id)
        raise ApiError(
            404, "analysis_not_found", f"video {video_id!r} has no analysis {analysis_id!r}"
        )
    return found


@router.post(
    "/videos/{video_id}/analyses",
    status_code=202,
    response_model=Analysis,
    responses={
        **_ASK_ERRORS,
        200: {"model": Analysis, "description": "a repeat of an Idempotency-Key: nothing new"},
    },
)
def ask(
    deps: Deps,
    door: Front,
    caller: Submitter,
    video_id: VideoId,
    body: AskRequest,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Analysis:
    """Ask a new question (prompt and/or labels, optional localizer and sampling options) of
    an analysed video: its frames are reused, so the model is what it costs. Answers 202 with
    the analysis (status ``running``, stage ``queued``) and its links."""
    prompt, labels = _question(body)
    try:
        options = question_options(prompt, labels, body.options)
    except ContractError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    tenant = caller.tenant
    event_id = ask_event_id(tenant, video_id, idempotency_key)
    aid = derive_analysis_id(event_id)
    if idempotency_key is not None and _repeated(door, tenant, video_id, aid, options):
        # Asked before (its record is under this tenant's prefix): what it started, as it is.
        response.status_code = 200
        return _analysis(deps, caller, video_id, aid)
    timeline = _askable(deps, caller, video_id)
    # An ask pays the model like a submission: it counts against the same daily quota.
    door.count_submission(caller.key_id)
    event, record = new_analysis(
        timeline.source,
        video_id=video_id,
        tenant=tenant,
        options=options,
        event_id=event_id,
        now=datetime.now(UTC),
        key_id=caller.key_id,
    )

    def publish() -> None:
        door.publisher().publish(names.TOPIC_INGEST, video_id, encode(event))

    if not start_analysis(door.store, door.settings.timeline_bucket, record, publish):
        # The same key raced this request; the other one publishes (the same event anyway).
        response.status_code = 200
        return _analysis(deps, caller, video_id, aid)
    log.info(
        "asked analysis %s of %s (key id %s)", aid, video_id, caller.key_id or "-",
        extra={"video_id": video_id, "job_id": event.job_id},
    )  # fmt: skip
    response.headers["Location"] = f"/videos/{video_id}/analyses/{aid}"
    return _analysis(deps, caller, video_id, aid)


def _repeated(
    door: FrontDoor, tenant: str | None, video_id: str, aid: str, options: IngestOptions
) -> bool:
    """True when the idempotency key already asked this question (422 when another one)."""
    stored = load_record(door.store, door.settings.timeline_bucket, video_id, aid, tenant)
    if stored is None:
        return False
    if not stored.same_question(options):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key already asked another question of this video",
        )
    return True


@router.get("/videos/{video_id}/analyses", response_model=AnalysisList, responses=_READ_ERRORS)
def list_analyses(deps: Deps, caller: Reader, video_id: VideoId) -> AnalysisList:
    """The video's analyses: the first (``default``) first, then each later one by when it
    was asked, with its question, status (running, succeeded, failed, stalled) and links."""
    first = _first(deps, caller, video_id)
    later = deps.later_analyses(caller, video_id)
    return AnalysisList(video_id=video_id, analyses=[first, *later])


@router.get(
    "/videos/{video_id}/analyses/{analysis_id}", response_model=Analysis, responses=_READ_ERRORS
)
def get_analysis(
    deps: Deps, caller: Reader, video_id: VideoId, analysis_id: AnalysisId
) -> Analysis:
    """One analysis: its question, status and links."""
    return _analysis(deps, caller, video_id, analysis_id)


def _analysis_timeline(deps: Services, caller: Caller, video_id: str, analysis_id: str) -> Timeline:
    timeline = deps.timelines.load(video_id, caller.tenant, analysis_id)
    if timeline is not None:
        return timeline
    _analysis(deps, caller, video_id, analysis_id)  # 404 for an unknown video or analysis
    raise ApiError(
        404, "timeline_not_found", f"analysis {analysis_id!r} of {video_id!r} has no timeline yet"
    )


@router.get(
    "/videos/{video_id}/analyses/{analysis_id}/timeline",
    response_model=Timeline,
    responses=_READ_ERRORS,
)
def get_analysis_timeline(
    deps: Deps, caller: Reader, video_id: VideoId, analysis_id: AnalysisId
) -> Timeline:
    """The analysis' timeline (contract ``vidloc.timeline.v1``; ``default`` is the one
    ``/videos/{id}/timeline`` serves)."""
    return _analysis_timeline(deps, caller, video_id, analysis_id)


@router.get(
    "/videos/{video_id}/analyses/{analysis_id}/view",
    response_class=HTMLResponse,
    tags=["viewer"],
    responses={
        **_HTML_ERRORS,
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "page"},
    },
)
def view_analysis(
    deps: Deps, caller: Reader, video_id: VideoId, analysis_id: AnalysisId
) -> HTMLResponse:
    """The timeline viewer on one analysis, with links to the video's other analyses."""
    timeline = _analysis_timeline(deps, caller, video_id, analysis_id)
    return _page(deps, caller, timeline, analysis_id, base="../../")
