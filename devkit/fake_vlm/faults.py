"""Scripted misbehaviour for the fake model server, and how each answer is worded.

Tests queue fault specs; each spec applies to its next ``count`` requests, in order. The answer
renderers are pure so the shapes the parser must survive are visible in one place.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# reject_json_schema and reject_unknown_fields answer 400 to a request that has the thing
# they name (a json_schema response_format; a content-part field OpenAI's schema lacks, such
# as vLLM's image uuid), as a server without it would.
HTTP_FAULTS = frozenset(
    {"429", "500", "502", "503", "drop_connection", "reject_json_schema", "reject_unknown_fields"}
)
CONTENT_FAULTS = frozenset(
    {"fenced", "prose", "broken_json", "truncated", "empty", "huge", "garbage_times"}
)
FAULT_KINDS = HTTP_FAULTS | CONTENT_FAULTS | {"slow"}
HUGE_EVENTS = 5000


@dataclass(frozen=True)
class Fault:
    kind: str
    count: int = 1
    retry_after: float | None = None  # 429: seconds for the Retry-After header
    delay_s: float = 0.0  # slow: how long to stall before answering


def parse_faults(data: Any) -> list[Fault]:
    """Fault specs from admin-API JSON (one object or a list); ValueError says what is wrong."""
    specs = data if isinstance(data, list) else [data]
    faults = []
    for spec in specs:
        if not isinstance(spec, dict):
            raise ValueError(f"fault spec must be an object, got {spec!r}")
        kind = str(spec.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        count = spec.get("count", 1)
        retry_after = spec.get("retry_after")
        delay_s = spec.get("delay_s", 5.0 if kind == "slow" else 0.0)
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        if retry_after is not None and not isinstance(retry_after, int | float):
            raise ValueError(f"retry_after must be a number, got {retry_after!r}")
        if not isinstance(delay_s, int | float) or delay_s < 0:
            raise ValueError(f"delay_s must be a non-negative number, got {delay_s!r}")
        faults.append(
            Fault(
                kind,
                count,
                None if retry_after is None else float(retry_after),
                float(delay_s),
            )
        )
    return faults


class FaultQueue:
    """Faults waiting to be applied, consumed one request at a time; thread-safe."""

    def __init__(self, faults: Sequence[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._pending: list[list[Any]] = [[f, f.count] for f in faults]

    def add(self, faults: Sequence[Fault]) -> None:
        with self._lock:
            self._pending.extend([f, f.count] for f in faults)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def take(self) -> Fault | None:
        """The fault for the next request, if any, using up one of its count."""
        with self._lock:
            if not self._pending:
                return None
            head = self._pending[0]
            head[1] -= 1
            if head[1] <= 0:
                self._pending.pop(0)
            fault: Fault = head[0]
            return fault

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"kind": f.kind, "remaining": n} for f, n in self._pending]


def render_answer(
    events: list[dict[str, Any]], fault_kind: str | None, json_mode: bool
) -> tuple[str, str]:
    """(content, finish_reason) for the events the fake saw, worded as the fault dictates."""
    body = json.dumps({"events": events})
    if fault_kind == "fenced":
        return f"```json\n{body}\n```", "stop"
    if fault_kind == "prose":
        return (
            f"Looking at the frames, here is what I found: {body} "
            "Let me know if you need anything else.",
            "stop",
        )
    if fault_kind == "broken_json":
        # Unquoted keys and values: no JSON parser (or repair) can recover it.
        broken = ", ".join(
            f"{{label: {e['label']}, start_s: {e['start_s']}, end_s: {e['end_s']}}}" for e in events
        )
        return f"{{events: [{broken or 'none'}]}}", "stop"
    if fault_kind == "truncated":
        return body[: max(1, int(len(body) * 0.6))], "length"
    if fault_kind == "empty":
        return "", "stop"
    if fault_kind == "huge":
        return json.dumps({"events": huge_events(events)}), "stop"
    if fault_kind == "garbage_times":
        return json.dumps({"events": garbage_time_events(events)}), "stop"
    if json_mode:
        return body, "stop"
    # Without response_format real models like to chat around their JSON.
    return f"Here are the events I found in the frames.\n```json\n{body}\n```", "stop"


def huge_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    label = events[0]["label"] if events else "red circle"
    start = float(events[0]["start_s"]) if events else 0.0
    return [
        {
            "label": label,
            "start_s": round(start + i * 0.01, 2),
            "end_s": round(start + i * 0.01 + 1.0, 2),
            "description": f"occurrence {i}",
            "confidence": 0.5,
        }
        for i in range(HUGE_EVENTS)
    ]


def garbage_time_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The real events reversed, plus negative and NaN times (json writes NaN as a bare token)."""
    label = events[0]["label"] if events else "red circle"
    reversed_events = [{**e, "start_s": e["end_s"], "end_s": e["start_s"]} for e in events]
    junk = [
        {"label": label, "start_s": -5.0, "end_s": -1.0, "description": "", "confidence": 0.9},
        {"label": label, "start_s": float("nan"), "end_s": 2.0, "description": "", "confidence": 1},
        {"label": label, "start_s": 1.0, "end_s": float("inf"), "description": "", "confidence": 1},
    ]
    return reversed_events + junk
