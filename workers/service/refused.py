"""Who sent a refused ingest message: its ids, read best-effort from bytes that failed to decode.

A refused message's failed result must reach its sender, who matches results by ``video_id``
(the results topic's key) and ``job_id`` (derived from the ``event_id`` it sent). The message
may be anything (too deep, too large, not JSON), so this reads only a bounded prefix with a flat
tokenizer: no recursion, at most :data:`SCAN_CHARS` characters, top-level fields only. What it
cannot read safely it replaces with ids derived from the bytes, so the same message always gets
the same ids. Pure; no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from contracts import derive_job_id, derive_video_id
from contracts.common import SAFE_ID_PATTERN
from vidloc import names

# The ids of a well-formed event come first (encoders write them before ``options``); a field
# that only appears after 64 K characters of something else is not worth finding.
SCAN_CHARS = 65_536
_MAX_ID_CHARS = 256  # the contracts' Text limit
_MAX_SOURCE_CHARS = 1024  # the longest valid key
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[\[\]{}:,]', re.DOTALL)
_SAFE_ID = re.compile(SAFE_ID_PATTERN)
_WANTED = (
    ("event_id",),
    ("video_id",),
    ("source", "bucket"),
    ("source", "key"),
    ("source", "etag"),
)


@dataclass(frozen=True)
class RefusedIds:
    video_id: str
    job_id: str
    event_id: str | None  # None when the message named none that could be read safely


def refused_ids(raw: bytes, kafka_key: bytes | None = None) -> RefusedIds:
    """The ids to announce a refused message under, deterministic in ``raw`` and the key.

    video id: the message's own ``video_id``, else the one derived from its ``source``, else the
    Kafka key (producers key by video id), else ``refused-<sha256 of the bytes>``.
    job id: derived from the message's ``event_id`` like any job's, else from the bytes.
    """
    digest = hashlib.sha256(raw).hexdigest()[:24]
    fields = top_level_strings(raw[: SCAN_CHARS * 4].decode("utf-8", errors="replace"))
    event_id = fields.get(("event_id",))
    if event_id is not None and not _is_text(event_id, _MAX_ID_CHARS):
        event_id = None
    video_id = fields.get(("video_id",))
    if video_id is None or not _SAFE_ID.fullmatch(video_id):
        source = [fields.get(("source", part)) for part in ("bucket", "key", "etag")]
        key = (kafka_key or b"").decode("utf-8", errors="replace")
        if all(s is not None and _is_text(s, _MAX_SOURCE_CHARS) for s in source):
            video_id = derive_video_id(*(s or "" for s in source))
        elif _SAFE_ID.fullmatch(key):
            video_id = key
        else:
            video_id = f"{names.REFUSED_VIDEO_PREFIX}{digest}"
    job_id = derive_job_id(event_id) if event_id is not None else f"job-{digest}"
    return RefusedIds(video_id=video_id, job_id=job_id, event_id=event_id)


def top_level_strings(text: str) -> dict[tuple[str, ...], str]:
    """The string values at the :data:`_WANTED` paths within the first SCAN_CHARS characters.

    A flat pass over tokens with an explicit stack, so nesting costs memory, not recursion;
    the first occurrence of a path wins. Malformed input just yields fewer fields.
    """
    found: dict[tuple[str, ...], str] = {}
    # One frame per open container: [is_object, current key, expecting a key].
    stack: list[list[object]] = []
    below = 0  # levels opened under the second one: only counted, nothing there is wanted
    for match in _TOKEN.finditer(text, 0, SCAN_CHARS):
        token = match.group()
        if token in ("{", "["):
            if len(stack) < 2:
                stack.append([token == "{", None, token == "{"])
            else:
                below += 1
        elif token in ("}", "]"):
            if below:
                below -= 1
            elif stack:
                stack.pop()
        elif below:
            continue
        elif token == ":":
            if stack and stack[-1][0]:
                stack[-1][2] = False
        elif token == ",":
            if stack and stack[-1][0]:
                stack[-1][1], stack[-1][2] = None, True
        else:
            value = _string(token)
            if not stack or not stack[-1][0]:
                continue
            if stack[-1][2]:
                stack[-1][1] = value
                continue
            if value is None:
                continue
            path = tuple(str(frame[1]) if frame[0] else "" for frame in stack)
            if path in _WANTED and path not in found:
                found[path] = value
                if len(found) == len(_WANTED):
                    break
    return found


def _string(token: str) -> str | None:
    if len(token) > 2 * _MAX_SOURCE_CHARS + 2:
        return None
    try:
        value = json.loads(token)
    except ValueError:  # unterminated or a bad escape
        return None
    return value if isinstance(value, str) else None


def _is_text(value: str, max_chars: int) -> bool:
    return 0 < len(value) <= max_chars and value.isprintable()
