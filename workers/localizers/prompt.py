"""What we say to the vision-language model: pure functions from frames and a request to messages.

Qwen3-VL reads time from text: each frame is preceded by ``<t seconds>`` (its own timestamp
format), so the model can answer in absolute video seconds without knowing the sampling plan.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import cv2

from contracts import answer_response_format
from workers.types import Chunk, FrameSample, LocalizeRequest, RGBImage

DEFAULT_PROMPT = (
    "Find every distinct visible event or object appearance and when it starts and ends"
)

SYSTEM_PROMPT = (
    "You are a precise video event localizer. You are shown frames sampled from a video in "
    "time order; each frame is preceded by its timestamp in the video, written as "
    "<T seconds>. Report when things happen. Answer with one JSON object and nothing else, "
    'exactly of the form {"events": [{"label": string, "start_s": number, "end_s": number, '
    '"description": string, "confidence": number}]}. '
    "start_s and end_s are absolute times in seconds of the video, read from the timestamps "
    "shown: start_s is the time of the first frame where the event is visible, end_s the time "
    "of the last frame where it is still visible. label is a short lowercase noun phrase. "
    "description is one short sentence. confidence is between 0 and 1. Report each "
    'continuous occurrence once. If nothing relevant is visible, answer {"events": []}.'
)


# Labels never need more than millisecond precision: decoders report times as float32.
MAX_TIMESTAMP_DECIMALS = 3


def timestamp_text(t_s: float, decimals: int = 1) -> str:
    return f"<{t_s:.{decimals}f} seconds>"


def timestamp_decimals(times: Sequence[float]) -> int:
    """Fewest decimals (at least one, Qwen3-VL's own format) that give each frame its own label.

    At 10 fps or less one decimal tells frames apart; at 20 fps ``12.35`` and ``12.40`` need
    two. Two frames under one label would let the model place an event on either of them.
    """
    distinct = {round(t, 6) for t in times}
    for decimals in range(1, MAX_TIMESTAMP_DECIMALS):
        if len({f"{t:.{decimals}f}" for t in distinct}) == len(distinct):
            return decimals
    return MAX_TIMESTAMP_DECIMALS


def labels_instruction(labels: Sequence[str]) -> str:
    # JSON list syntax keeps labels that contain commas unambiguous for model and fake server.
    return "Only report these labels: " + json.dumps(list(labels)) + "."


def encode_jpeg(image: RGBImage, *, jpeg_quality: int = 85) -> bytes:
    """An RGB frame as the JPEG bytes the model is sent."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV encoders expect BGR channel order
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ValueError(f"cannot JPEG-encode a frame of shape {image.shape}")
    return bytes(buffer.tobytes())


def encode_jpeg_data_uri(image: RGBImage, *, jpeg_quality: int = 85) -> str:
    """A ``data:image/jpeg;base64,...`` URI for an RGB frame."""
    return jpeg_data_uri(encode_jpeg(image, jpeg_quality=jpeg_quality))


def jpeg_data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def frame_data_uri(frame: FrameSample, *, jpeg_quality: int = 85) -> str:
    """The frame's own JPEG when it carries one (encoded once, or from the frame cache)."""
    if frame.jpeg is not None:
        return jpeg_data_uri(frame.jpeg)
    return encode_jpeg_data_uri(frame.pixels(), jpeg_quality=jpeg_quality)


def build_messages(
    frames: Sequence[FrameSample],
    request: LocalizeRequest,
    chunk: Chunk,
    *,
    jpeg_quality: int = 85,
) -> list[dict[str, Any]]:
    """System + user messages for one chunk: timestamped images, then the question.

    Laid out for the server's prefix cache: a system prompt that never varies, the frames in
    time order with their timestamps, and all that differs between two questions about the
    same frames (prompt, labels, the chunk's span) last, so a second analysis of a video
    repeats the first one's requests token for token up to the question.
    """
    content: list[dict[str, Any]] = []
    decimals = timestamp_decimals([f.t_s for f in frames])
    for frame in frames:
        content.append({"type": "text", "text": timestamp_text(frame.t_s, decimals)})
        content.append(
            {
                "type": "image_url",
                "image_url": {"url": frame_data_uri(frame, jpeg_quality=jpeg_quality)},
            }
        )
        if request.media_id:
            content[-1]["uuid"] = image_uuid(request.media_id, frame.t_s, content[-1])
    content.append({"type": "text", "text": question_text(request, chunk, decimals)})
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": content},
    ]


def question_text(request: LocalizeRequest, chunk: Chunk, decimals: int = 1) -> str:
    span = (
        f"These frames cover {chunk.start_s:.{decimals}f} to {chunk.end_s:.{decimals}f} "
        "seconds of the video"
    )
    if request.video_duration_s > 0:
        span += f" (total length {request.video_duration_s:.1f} seconds)"
    prompt = (request.prompt or "").strip() or DEFAULT_PROMPT
    if prompt[-1] not in ".?!":
        prompt += "."
    parts = [span + ".", prompt]
    if request.labels:
        parts.append(labels_instruction(request.labels))
    parts.append("Answer with the JSON object only.")
    return " ".join(parts)


def image_uuid(media_id: str, t_s: float, part: dict[str, Any]) -> str:
    """The stable name of one image part as sent, for the server's multimodal caches.

    vLLM takes a content part's ``uuid`` as the image's identity in its processor, encoder and
    prefix caches instead of hashing the pixels, and trusts it: two different images under one
    uuid would share one embedding. So beside the video version and the presentation time it
    carries a digest of the image data, which tells apart what else changes the bytes at one
    instant (refinement sends it smaller; another JPEG quality).
    """
    url = str(part["image_url"]["url"]).encode()
    return f"{media_id}:{t_s:.6f}:{hashlib.blake2b(url, digest_size=6).hexdigest()}"


def response_format_for_answer(labels: Sequence[str] = ()) -> dict[str, Any]:
    """The structured-output request for the model-answer contract; with labels, guided
    decoding can only emit the labels asked for. Built by the contract, the one source."""
    return answer_response_format(labels)
