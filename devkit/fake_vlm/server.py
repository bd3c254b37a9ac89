"""The fake model's HTTP surface: OpenAI-style chat completions, models, and an admin API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from devkit.asgi import run_in_thread
from devkit.fake_vlm.faults import CONTENT_FAULTS, Fault, FaultQueue, parse_faults, render_answer
from devkit.fake_vlm.prefix import DEFAULT_CAPACITY_BLOCKS, PrefixCache
from devkit.fake_vlm.styles import ANSWER_STYLES, render_style
from devkit.fake_vlm.vision import Sighting, events_from_sightings, image_tokens, visible_labels
from workers.model.tokens import split_tokens

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen/qwen3-vl-8b-instruct"
_TIMESTAMP = re.compile(r"^\s*<\s*(\d+(?:\.\d+)?)\s*seconds?\s*>\s*$")
_LABELS = re.compile(r"Only report these labels:\s*(\[.*?\])")
_DATA_URI = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,(.*)$", re.DOTALL)
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
# Content-part fields an OpenAI-strict server knows; vLLM also takes ``uuid`` on media parts.
_OPENAI_PART_FIELDS = frozenset({"type", "text", "image_url"})


@dataclass(frozen=True)
class FakeConfig:
    model: str = DEFAULT_MODEL
    api_key: str | None = None  # when set, requests must carry "Authorization: Bearer <key>"
    json_schema_supported: bool = True
    faults: tuple[Fault, ...] = ()
    answer_style: str = "canonical"  # how correct answers are worded (see styles.py)
    # Like vLLM's --limit-mm-per-prompt: more images than this in one request is a 400.
    max_images: int | None = None
    # Blocks of 16 tokens the simulated prefix cache keeps (0: no cache, cached_tokens never
    # reported), like vLLM's KV cache of that many blocks.
    prefix_cache_blocks: int = DEFAULT_CAPACITY_BLOCKS
    # Refuse content-part fields OpenAI's schema does not have (vLLM's image ``uuid``) with a
    # 400 that names them, like a strict OpenAI-style server; vLLM itself takes the uuid.
    strict_content_parts: bool = False

    def __post_init__(self) -> None:
        if self.answer_style not in ANSWER_STYLES:
            raise ValueError(
                f"unknown answer style {self.answer_style!r}; known: {', '.join(ANSWER_STYLES)}"
            )


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.code = code


@dataclass
class Stats:
    requests: int = 0
    images: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    faults_applied: Counter[str] = field(default_factory=Counter)
    frames_seen_times: list[float] = field(default_factory=list)
    last_params: dict[str, Any] = field(default_factory=dict)
    # Requests being answered now, and the most at once since the last reset (a bench measures
    # whether a worker keeps its model budget full).
    in_flight: int = 0
    peak_in_flight: int = 0
    # Prompt tokens answered, and how many of them the prefix cache held (usage reported).
    prompt_tokens: int = 0
    cached_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "images": self.images,
            "by_status": dict(self.by_status),
            "faults_applied": dict(self.faults_applied),
            "frames_seen_times": list(self.frames_seen_times),
            "last_params": self.last_params,
        }


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": str(error), "type": error.kind, "code": error.code}}
    return JSONResponse(body, status_code=error.status, headers=headers)


class DeliberateDrop(ConnectionAbortedError):
    """Raised mid-response so uvicorn closes the socket; not a bug, so not logged as one."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DeliberateDrop))


def _silence_deliberate_drops() -> None:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_QuietDrops())


class _DroppedConnection(Response):
    """Starts a response, then dies mid-body: the client sees the connection drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "chatcm', "more_body": True})
        raise DeliberateDrop("fake_vlm: dropping the connection on purpose")


def create_app(config: FakeConfig | None = None) -> FastAPI:
    config = config or FakeConfig()
    _silence_deliberate_drops()
    app = FastAPI(title="vidloc fake VLM", docs_url=None, redoc_url=None, openapi_url=None)
    faults = FaultQueue(config.faults)
    stats = Stats()
    prefix_cache = PrefixCache(config.prefix_cache_blocks)
    lock = threading.Lock()
    style = {"answer": config.answer_style}  # switched at run time through the admin API

    def count(status: int) -> None:
        with lock:
            stats.by_status[str(status)] += 1

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        entry = {"id": config.model, "object": "model", "created": 0, "owned_by": "vidloc"}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        with lock:
            stats.requests += 1
            stats.in_flight += 1
            stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            return await answer(request)
        finally:
            with lock:
                stats.in_flight -= 1

    async def answer(request: Request) -> Response:
        # A "slow" model answers delay_s after the request arrived, however long reading it took
        # here: the reading runs off the event loop, so concurrent requests do not queue behind
        # each other's images the way they would not on a real server.
        arrived = time.monotonic()
        fault: Fault | None = None
        try:
            _check_auth(request, config)
            fault = faults.take()
            if fault is not None:
                with lock:
                    stats.faults_applied[fault.kind] += 1
                early = await _http_fault(fault)
                if early is not None:
                    count(200 if isinstance(early, _DroppedConnection) else early.status_code)
                    return early
            raw = await request.body()
            body, json_mode, (sightings, prompt_text, tokens) = await asyncio.to_thread(
                _read_request, raw, config, fault
            )
            cached = await asyncio.to_thread(prefix_cache.admit, tokens)
        except ApiError as exc:
            await _answer_time(arrived, fault)
            count(exc.status)
            return error_response(exc)
        await _answer_time(arrived, fault)
        with lock:
            stats.images += len(sightings)
            stats.prompt_tokens += len(tokens)
            stats.cached_tokens += cached
            stats.frames_seen_times.extend(s.t_s for s in sightings)
            stats.last_params = {k: v for k, v in body.items() if k != "messages"}
        events = events_from_sightings(sightings, _wanted_labels(prompt_text))
        if fault is not None and fault.kind in CONTENT_FAULTS:
            content, finish_reason = render_answer(events, fault.kind, json_mode)
        else:
            first = min((s.t_s for s in sightings), default=0.0)
            with lock:
                answer_style = style["answer"]
            content, finish_reason = render_style(
                answer_style, events, first_frame_s=first, json_mode=json_mode
            )
        count(200)
        return JSONResponse(_completion(body, config, content, finish_reason, len(tokens), cached))

    @app.post("/_fake/faults")
    async def add_faults(request: Request) -> Response:
        try:
            new = parse_faults(await _json_body(request))
        except (ValueError, ApiError) as exc:
            return error_response(ApiError(400, str(exc), "invalid_request_error"))
        faults.add(new)
        return JSONResponse({"pending": faults.pending()})

    @app.post("/_fake/style")
    async def set_style(request: Request) -> Response:
        """``{"style": "range_field"}``: word every later correct answer that way."""
        try:
            body = await _json_body(request)
        except ApiError as exc:
            return error_response(exc)
        wanted = body.get("style") if isinstance(body, dict) else None
        if wanted not in ANSWER_STYLES:
            message = f"unknown answer style {wanted!r}; known: {', '.join(ANSWER_STYLES)}"
            return error_response(ApiError(400, message, "invalid_request_error"))
        with lock:
            style["answer"] = wanted
        return JSONResponse({"style": wanted})

    @app.post("/_fake/reset")
    async def reset() -> dict[str, Any]:
        """Faults and counters cleared, the answer style back to the configured one."""
        faults.clear()
        with lock:
            style["answer"] = config.answer_style
            fresh = Stats()
            counters = ("requests", "images", "by_status", "faults_applied", "peak_in_flight")
            for name in (*counters, "prompt_tokens", "cached_tokens"):
                setattr(stats, name, getattr(fresh, name))
            stats.frames_seen_times = []
            stats.last_params = {}
        return {"ok": True}

    @app.get("/_fake/stats")
    async def get_stats() -> dict[str, Any]:
        with lock:
            return {
                **stats.as_json(),
                "pending_faults": faults.pending(),
                "answer_style": style["answer"],
                "prefix_cache_blocks": len(prefix_cache),
            }

    return app


def _check_auth(request: Request, config: FakeConfig) -> None:
    if config.api_key is None:
        return
    if request.headers.get("authorization", "") != f"Bearer {config.api_key}":
        # Like the real APIs, never echo the key that was sent.
        raise ApiError(
            401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
        )


async def _answer_time(arrived: float, fault: Fault | None) -> None:
    """Wait until a slow fault's answer is due (``delay_s`` after the request arrived)."""
    if fault is not None and fault.kind == "slow":
        await asyncio.sleep(max(0.0, fault.delay_s - (time.monotonic() - arrived)))


async def _http_fault(fault: Fault) -> Response | None:
    """The response an HTTP-level fault gives instead of an answer (None: answer, maybe late)."""
    if fault.kind == "slow":
        return None
    if fault.kind == "429":
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        error = ApiError(429, "Rate limit reached, slow down.", "rate_limit_error", "rate_limit")
        return error_response(error, headers)
    if fault.kind in ("500", "502", "503"):
        return error_response(ApiError(int(fault.kind), "The server had an error.", "server_error"))
    if fault.kind == "drop_connection":
        return _DroppedConnection()
    return None


async def _json_body(request: Request) -> Any:
    return _parse_json(await request.body())


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not JSON: {exc}", "invalid_request_error") from exc


def _read_request(
    raw: bytes, config: FakeConfig, fault: Fault | None
) -> tuple[Any, bool, tuple[list[Sighting], str, list[bytes]]]:
    """The body, whether it asked for JSON, and what its frames show (or ApiError: a 400)."""
    body = _parse_json(raw)
    _validate(body)
    if config.strict_content_parts or (fault is not None and fault.kind == "reject_unknown_fields"):
        _check_part_fields(body["messages"])
    _check_image_limit(body["messages"], config.max_images)
    json_mode = _json_mode(body.get("response_format"), config, fault)
    return body, json_mode, _read_messages(body["messages"])


def _validate(body: Any) -> None:
    def bad(message: str, param: str) -> ApiError:
        return ApiError(400, message, "invalid_request_error", f"invalid_{param}")

    if not isinstance(body, dict):
        raise bad("request body must be a JSON object", "body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("'model' is a required string", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise bad(f"messages[{i}] needs a valid 'role'", "messages")
        if not isinstance(message.get("content"), str | list):
            raise bad(f"messages[{i}].content must be a string or an array", "messages")
    if body.get("stream"):
        raise bad("streaming is not supported by the fake server", "stream")


def _check_part_fields(messages: list[dict[str, Any]]) -> None:
    """A strict OpenAI-style server's 400 for a content-part field it does not know."""
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            unknown = sorted(set(part) - _OPENAI_PART_FIELDS) if isinstance(part, dict) else []
            if unknown:
                raise ApiError(
                    400,
                    f"Unknown parameter: 'messages[{i}].content[{j}].{unknown[0]}'.",
                    "invalid_request_error",
                    "unknown_parameter",
                )


def _check_image_limit(messages: list[dict[str, Any]], limit: int | None) -> None:
    """Refuse, before decoding anything and with vLLM's words, more images than allowed."""
    if limit is None:
        return
    images = sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    )
    if images > limit:
        raise ApiError(
            400, f"At most {limit} image(s) may be provided in one prompt.", "BadRequestError"
        )


def _json_mode(response_format: Any, config: FakeConfig, fault: Fault | None) -> bool:
    if response_format is None:
        return False
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise ApiError(400, f"invalid response_format type {kind!r}", "invalid_request_error")
    if kind == "json_schema":
        refused = not config.json_schema_supported or (
            fault is not None and fault.kind == "reject_json_schema"
        )
        if refused:
            raise ApiError(
                400,
                "response_format type 'json_schema' is not supported by this model",
                "invalid_request_error",
                "unsupported_response_format",
            )
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ApiError(
                400, "response_format.json_schema.schema is required", "invalid_request_error"
            )
    return kind != "text"


def _read_messages(messages: list[dict[str, Any]]) -> tuple[list[Sighting], str, list[bytes]]:
    """Frames with the time from the ``<t seconds>`` part before each, the prompt, and the
    prompt's tokens in order (stand-ins: see ``devkit.fake_vlm.prefix``), laid out like
    Qwen's chat template: ``<|im_start|>role\n ... <|im_end|>\n`` per message, each image
    ``<|vision_start|>`` + its visual tokens + ``<|vision_end|>``, then the answer's header."""
    sightings: list[Sighting] = []
    prompt: list[str] = []
    tokens: list[bytes] = []
    for message in messages:
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        tokens += [b"<|im_start|>", str(message["role"]).encode(), b"\n"]
        pending_t: float | None = None
        for part in parts:
            if not isinstance(part, dict):
                raise ApiError(400, "content parts must be objects", "invalid_request_error")
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                text = part["text"]
                tokens += [piece.encode() for piece in split_tokens(text)]
                stamp = _TIMESTAMP.match(text)
                if stamp:
                    pending_t = float(stamp.group(1))
                elif message["role"] == "user":
                    prompt.append(text)
            elif part.get("type") == "image_url":
                labels, image_cost, digest = _SEEN.read(part.get("image_url"))
                t = pending_t if pending_t is not None else float(len(sightings))
                sightings.append(Sighting(t, labels, image_cost))
                pending_t = None
                # Like vLLM: the part's uuid, when given, is the image's identity in the cache
                # (trusted, never checked against the pixels); else the image's own hash.
                uuid = part.get("uuid")
                identity = b"uuid:" + str(uuid).encode() if uuid is not None else b"sha:" + digest
                visual = max(0, image_cost - 2)
                tokens += [b"<|vision_start|>", *([b"\x00image:" + identity] * visual)]
                tokens.append(b"<|vision_end|>")
            else:
                raise ApiError(
                    400, f"unsupported content part {part.get('type')!r}", "invalid_request_error"
                )
        tokens += [b"<|im_end|>", b"\n"]
    tokens += [b"<|im_start|>", b"assistant", b"\n"]
    return sightings, "\n".join(prompt), tokens


class _SeenImages:
    """What each image shows and costs, remembered by digest (LRU).

    Reading a frame costs ~7 ms here (JPEG decode + palette count); the same frames come back
    in re-asks, retries and the benches' copies of one clip, and this process shares the test
    machine's cores with the workers being measured.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._known: OrderedDict[bytes, tuple[frozenset[str], int]] = OrderedDict()

    def read(self, image_url: Any) -> tuple[frozenset[str], int, bytes]:
        """Labels seen, token cost, and the digest of the image's URL."""
        url = image_url.get("url") if isinstance(image_url, dict) else None
        digest = hashlib.sha256(url.encode()).digest() if isinstance(url, str) else b""
        with self._lock:
            known = self._known.get(digest) if digest else None
            if known is not None:
                self._known.move_to_end(digest)
                return (*known, digest)
        image = _decode_image(image_url)  # ApiError (400) for anything unreadable
        seen = (visible_labels(image), image_tokens(image.shape[1], image.shape[0]))
        with self._lock:
            self._known[digest] = seen
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return (*seen, digest)


_SEEN = _SeenImages()


def _decode_image(image_url: Any) -> np.ndarray[Any, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else None
    match = _DATA_URI.match(url) if isinstance(url, str) else None
    if match is None:
        raise ApiError(
            400,
            "image_url.url must be a data:image/...;base64 URI",
            "invalid_request_error",
            "invalid_image_url",
        )
    try:
        data = np.frombuffer(base64.b64decode(match.group(1), validate=True), dtype=np.uint8)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "image data is not valid base64", "invalid_request_error") from exc
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ApiError(
            400, "image data could not be decoded", "invalid_request_error", "invalid_image"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _wanted_labels(prompt: str) -> list[str] | None:
    match = _LABELS.search(prompt)
    if match is None:
        return None
    try:
        labels = json.loads(match.group(1))
    except ValueError:
        return None
    return [str(label) for label in labels] if isinstance(labels, list) else None


def _completion(
    body: dict[str, Any],
    config: FakeConfig,
    content: str,
    finish_reason: str,
    prompt_tokens: int,
    cached_tokens: int,
) -> dict[str, Any]:
    completion_tokens = max(1, len(content) // 4)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens:
        # As vLLM (--enable-prompt-tokens-details) writes it: only when some tokens hit.
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or config.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def serve_in_thread(
    port: int = 0, *, config: FakeConfig | None = None, host: str = "127.0.0.1"
) -> tuple[str, Callable[[], None]]:
    """Run the server on a real socket in a daemon thread: (base URL ending in /v1, stop)."""
    base_url, stop = run_in_thread(create_app(config), host=host, port=port, lifespan="off")
    return f"{base_url}/v1", stop
