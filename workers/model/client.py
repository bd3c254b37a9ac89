"""The one adapter for an OpenAI-compatible ``/chat/completions`` endpoint.

It knows HTTP, retries and the response envelope; it knows nothing about videos or answers.
Every httpx error leaves this module as a ``vidloc.errors`` exception, and the API key is
scrubbed from anything that could reach a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from vidloc.backoff import MAX_RETRY_AFTER_S, compute_backoff, parse_retry_after
from vidloc.errors import (
    ModelAnswerInvalid,
    ModelAuthFailed,
    ModelImageLimit,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
)
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from workers.model.ratelimit import RateLimiter
from workers.types import TokenTally

logger = logging.getLogger(__name__)

# Sent unless the operator's VIDLOC_VLM_PARAMS says otherwise: the generation parameters Qwen's
# model card recommends for the Qwen3-VL Instruct models. The presence penalty is what keeps
# the model out of the repetition loops it otherwise falls into until max_tokens (Qwen3-VL#1737).
DEFAULT_PARAMS: Mapping[str, Any] = {
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
    "presence_penalty": 1.5,
    "max_tokens": 4096,
}

# 408 Request Timeout and 409 Conflict are the 4xx a server uses to say "try again".
RETRY_STATUSES = frozenset({408, 409, 429})
AUTH_STATUSES = frozenset({401, 403, 404})
# Keys we own: the operator's params must not replace the conversation or switch to streaming.
RESERVED_KEYS = frozenset({"messages", "stream"})
ERROR_BODY_CHARS = 300
# vLLM: "At most 64 image(s) may be provided in one prompt." (--limit-mm-per-prompt)
_IMAGE_LIMIT = re.compile(r"at most (\d+) images?(?:\(s\))? may be provided", re.IGNORECASE)
# Structured output, from the most to the least constrained; None: the prompt alone asks for JSON.
_FORMAT_STEPS: tuple[str | None, ...] = ("json_schema", "json_object", None)
# A refusal that names vLLM's multimodal ``uuid`` field of a content part (a strict server's
# "unknown field", "extra inputs are not permitted", "unrecognized ... uuid").
_NAMES_UUID = re.compile(r"\buuid\b", re.IGNORECASE)

ImageUuids = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class ModelReply:
    content: str
    finish_reason: str
    usage: TokenTally
    model: str


class _Retryable(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(self, error: Exception, retry_after_s: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after_s = retry_after_s


class ModelClient:
    """Sends chat completions with retries; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        params: Mapping[str, Any],
        http: httpx.Client,
        *,
        max_retries: int = 6,
        max_backoff_s: float = 30.0,
        base_backoff_s: float = 0.5,
        max_retry_after_s: float = MAX_RETRY_AFTER_S,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Metrics | None = None,
        limiter: RateLimiter | None = None,
        image_uuids: ImageUuids = "auto",
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        # Whether image parts keep their ``uuid`` (vLLM's multimodal cache key): "auto" sends
        # it until a 400 names it, then leaves it out of every later request.
        self._image_uuids = image_uuids
        self._uuids_refused = False
        # Shared by every job of the worker: requests/tokens per minute, 429s obeyed by all.
        self._limiter = limiter
        self._metrics = metrics or Metrics()
        self.model = model
        self._api_key = api_key or None
        self._params = dict(params)
        self._http = http
        self._max_retries = max(0, max_retries)
        self._max_backoff_s = max_backoff_s
        self._base_backoff_s = base_backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        # The least constrained format this endpoint has needed so far (a refused format that a
        # looser one then got through), so later chunks skip the wasted 400s.
        self._format_floor = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self._url.removesuffix("/chat/completions")

    def request_body(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The JSON we POST: defaults, then the caller's format, then the operator's params."""
        body: dict[str, Any] = {"model": self.model, **DEFAULT_PARAMS}
        if response_format is not None:
            body["response_format"] = response_format
        for key, value in self._params.items():
            if key not in RESERVED_KEYS:
                body[key] = value
        with self._lock:
            floor = self._format_floor
        step = _format_step(body.get("response_format"))
        if step is not None and step < floor:
            _set_format(body, _FORMAT_STEPS[floor])
        with self._lock:
            send_uuids = self._image_uuids == "on" or (
                self._image_uuids == "auto" and not self._uuids_refused
            )
        body["messages"] = messages if send_uuids else _without_uuids(messages)
        body["stream"] = False
        return body

    def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> ModelReply:
        body = self.request_body(messages, response_format)
        step = _format_step(body.get("response_format"))
        uuids_dropped = False
        while True:
            try:
                reply = self._post_with_retries(body)
            except ModelImageLimit:
                raise  # about the images, not the format: the caller splits the request
            except ModelRequestRejected as exc:
                if self._uuids_refused_by(exc, body):
                    # A server that does not know vLLM's image uuid and says so: the same
                    # request without them (the images themselves are still there).
                    logger.warning(
                        "model endpoint %s refused image uuids (%s); sending none from now on",
                        self.base_url,
                        exc,
                    )
                    body = {**body, "messages": _without_uuids(body["messages"])}
                    uuids_dropped = True
                    continue
                # Endpoints refuse a format they cannot guide in many words (or none that name
                # it: "Invalid request", a grammar compiler's error), so any 400 with a format
                # is taken as a refusal of that format: json_schema, then json_object, then the
                # prompt alone, which asks for the same JSON anyway.
                if step is None or step + 1 >= len(_FORMAT_STEPS) or exc.status_code != 400:
                    raise
                step += 1
                logger.warning(
                    "model endpoint %s answered 400 to response_format %s (%s); trying %s",
                    self.base_url,
                    _FORMAT_STEPS[step - 1],
                    exc,
                    _FORMAT_STEPS[step] or "no response_format",
                )
                body = dict(body)
                _set_format(body, _FORMAT_STEPS[step])
                continue
            if step is not None:
                # Remembered only once a looser format got through: a 400 that was about
                # something else fails every format and must not downgrade later requests.
                with self._lock:
                    self._format_floor = max(self._format_floor, step)
            if uuids_dropped:
                with self._lock:
                    self._uuids_refused = True
            return reply

    def _uuids_refused_by(self, exc: ModelRequestRejected, body: dict[str, Any]) -> bool:
        return (
            self._image_uuids == "auto"
            and exc.status_code == 400
            and _NAMES_UUID.search(str(exc)) is not None
            and _has_uuids(body["messages"])
        )

    def _post_with_retries(self, body: dict[str, Any]) -> ModelReply:
        attempt = 0
        while True:
            reserved = 0.0
            if self._limiter is not None:
                wait, reserved = self._limiter.reserve()
                if wait > 0:
                    self._sleep(wait)
            try:
                reply = self._timed_post(body)
                if self._limiter is not None:
                    used = reply.usage.prompt_tokens + reply.usage.completion_tokens
                    self._limiter.succeeded(reserved, used)
                return reply
            except _Retryable as failure:
                error = failure.error
                if self._limiter is not None and isinstance(error, ModelRateLimited):
                    pause = failure.retry_after_s
                    if pause is not None:
                        pause = min(pause, self._max_retry_after_s)
                    self._limiter.rate_limited(pause)
                if attempt >= self._max_retries:
                    raise error from failure.__cause__
                too_long = (
                    failure.retry_after_s is not None
                    and failure.retry_after_s > self._max_retry_after_s
                )
                if too_long:
                    # Parking a worker thread that long is worse than failing the job now.
                    raise error from failure.__cause__
                delay = compute_backoff(
                    attempt,
                    base_s=self._base_backoff_s,
                    cap_s=self._max_backoff_s,
                    retry_after_s=failure.retry_after_s,
                    max_retry_after_s=self._max_retry_after_s,
                )
                attempt += 1
                logger.warning(
                    "model request failed (%s: %s); retry %d/%d in %.2fs",
                    type(error).__name__,
                    error,
                    attempt,
                    self._max_retries,
                    delay,
                )
                self._sleep(delay)

    def _timed_post(self, body: dict[str, Any]) -> ModelReply:
        started = time.monotonic()
        try:
            reply = self._post_once(body)
        except Exception as exc:
            self._metrics.model_request(*_outcome_of(exc), time.monotonic() - started)
            raise
        self._metrics.model_request("ok", "2xx", time.monotonic() - started)
        self._metrics.add_cached_tokens(reply.usage.cached_tokens)
        return reply

    def _post_once(self, body: dict[str, Any]) -> ModelReply:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            response = self._http.post(self._url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise _Retryable(
                ModelUnavailable(f"model endpoint timed out: {self._scrub(str(exc))}")
            ) from exc
        except httpx.TransportError as exc:
            # Connect errors, dropped connections, protocol errors: the world, not the input.
            raise _Retryable(
                ModelUnavailable(
                    f"model endpoint unreachable ({type(exc).__name__}): {self._scrub(str(exc))}"
                )
            ) from exc
        except httpx.HTTPError as exc:  # e.g. an invalid URL: a configuration problem
            raise ModelAuthFailed(f"cannot call model endpoint: {self._scrub(str(exc))}") from exc
        return self._reply_from(response)

    def _reply_from(self, response: httpx.Response) -> ModelReply:
        status = response.status_code
        if status >= 400:
            raise self._status_error(response)
        try:
            payload = response.json()
            choice = payload["choices"][0]
            message = choice.get("message") or {}
            content = _text_of(message.get("content"))
            finish_reason = str(choice.get("finish_reason") or "stop")
            usage_data = payload.get("usage") or {}
            usage = TokenTally(
                prompt_tokens=int(usage_data.get("prompt_tokens") or 0),
                completion_tokens=int(usage_data.get("completion_tokens") or 0),
                requests=1,
                cached_tokens=_cached_tokens(usage_data),
            )
            model = str(payload.get("model") or self.model)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            # A 200 without a chat-completion envelope usually comes from a proxy in trouble.
            raise _Retryable(
                ModelAnswerInvalid(
                    f"model endpoint returned no chat completion: {self._snippet(response)}"
                )
            ) from exc
        return ModelReply(content=content, finish_reason=finish_reason, usage=usage, model=model)

    def _status_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        detail = f"HTTP {status} from model endpoint: {self._snippet(response)}"
        cause = httpx.HTTPStatusError(detail, request=response.request, response=response)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error: Exception = ModelRateLimited(detail, retry_after_s=retry_after)
            return _chain(_Retryable(error, retry_after), cause)
        if status in RETRY_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return _chain(_Retryable(ModelUnavailable(detail), retry_after), cause)
        if status in AUTH_STATUSES:
            return _chain(ModelAuthFailed(detail), cause)
        limit = _IMAGE_LIMIT.search(detail)
        if limit is not None:
            return _chain(
                ModelImageLimit(detail, status_code=status, limit=int(limit.group(1))), cause
            )
        return _chain(ModelRequestRejected(detail, status_code=status), cause)

    def _snippet(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
            error = payload.get("error") if isinstance(payload, dict) else None
            text = error.get("message") if isinstance(error, dict) else None
            if not isinstance(text, str):
                text = json.dumps(payload)
        except ValueError:
            text = response.text
        return self._scrub(text[:ERROR_BODY_CHARS])

    def _scrub(self, text: str) -> str:
        # Some gateways echo the key back ("invalid api key sk-..."); never let it through.
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return text


def _outcome_of(exc: Exception) -> tuple[str, int | None]:
    """The metrics labels (outcome, HTTP status) of one failed attempt."""
    error = exc.error if isinstance(exc, _Retryable) else exc
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPStatusError):
        return "http_error", cause.response.status_code
    if isinstance(error, ModelAnswerInvalid):
        return "invalid", None
    if isinstance(cause, httpx.TimeoutException):
        return "timeout", None
    return "unreachable", None


def _chain(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


def _format_step(response_format: Any) -> int | None:
    """Where ``response_format`` stands in ``_FORMAT_STEPS``; None for anything else."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    return _FORMAT_STEPS.index(kind) if kind in ("json_schema", "json_object") else None


def _set_format(body: dict[str, Any], kind: str | None) -> None:
    if kind is None:
        body.pop("response_format", None)
    else:
        body["response_format"] = {"type": kind}


def _cached_tokens(usage: Any) -> int:
    """Prompt tokens served from the server's prefix cache: OpenAI's and vLLM's
    ``usage.prompt_tokens_details.cached_tokens`` (vLLM: only with
    ``--enable-prompt-tokens-details``, and absent when none hit); 0 when not reported."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    try:
        return max(0, int(cached or 0))
    except (TypeError, ValueError):
        return 0


def _has_uuids(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(part, dict) and "uuid" in part
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
    )


def _without_uuids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with every content part's ``uuid`` left out (the parts are copied)."""
    if not _has_uuids(messages):
        return messages
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = [
                {k: v for k, v in part.items() if k != "uuid"} if isinstance(part, dict) else part
                for part in content
            ]
            message = {**message, "content": parts}
        out.append(message)
    return out


def _text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "output_text")
        )
    raise TypeError(f"unexpected message content type {type(content).__name__}")


def http_client_from_settings(settings: Settings) -> httpx.Client:
    """The httpx client for the model endpoint; the caller owns it and must close it."""
    # httpx deprecates a CA path as ``verify``; an SSL context is the supported spelling.
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=settings.vlm_ca_file) if settings.vlm_ca_file else True
    )
    limits = httpx.Limits(max_connections=settings.vlm_concurrency * 2)
    timeout = httpx.Timeout(settings.vlm_timeout_s, connect=min(10.0, settings.vlm_timeout_s))
    return httpx.Client(timeout=timeout, limits=limits, verify=verify)


def model_client_from_settings(
    settings: Settings,
    http: httpx.Client,
    *,
    sleep: Callable[[float], None] = time.sleep,
    metrics: Metrics | None = None,
) -> ModelClient:
    key = settings.vlm_api_key.get_secret_value() if settings.vlm_api_key else None
    limiter = RateLimiter(settings.vlm_requests_per_min, settings.vlm_tokens_per_min)
    return ModelClient(
        settings.effective_vlm_base_url,
        settings.vlm_model,
        key,
        settings.vlm_params,
        http,
        max_retries=settings.vlm_max_retries,
        max_backoff_s=settings.vlm_max_backoff_s,
        sleep=sleep,
        metrics=metrics,
        limiter=limiter,
        image_uuids=settings.vlm_image_uuids,
    )
