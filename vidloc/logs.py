"""Logging, configured once at the entrypoint: text or JSON lines, secrets redacted.

Log lines carry strings nobody vetted (object keys, prompts, labels, error text from other
systems). A newline in one would forge a log line, an ESC would drive the operator's terminal.
So both formatters escape control characters centrally: a text line is always one line with no
control character but the tracebacks' own line breaks (whose continuation lines are marked), and
a JSON line is valid JSON that decodes back to the original strings.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_CONTEXT_FIELDS = ("video_id", "job_id")
# C0 and C1 controls, DEL, Unicode line/paragraph separators and bidi overrides (which reorder
# what a terminal shows): everything that can break a line or change how the rest reads.
_UNSAFE = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_SHORT = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_TEXT_ESCAPES = {c: _SHORT.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}
# In a JSON line the C0 controls are escaped by json.dumps already; the rest are legal raw in
# JSON but not on a terminal, and \uXXXX keeps the document (and every string in it) the same.
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _UNSAFE if c >= 0x20}


def escape_text(value: str) -> str:
    """``value`` with every control character spelled out (``\\n``, ``\\x1b``), on one line."""
    return value.translate(_TEXT_ESCAPES)


# The job the current thread works for. A ContextVar rather than a thread-local so that pools
# can carry it into their threads with ``contextvars.copy_context().run``.
_JOB: ContextVar[dict[str, str] | None] = ContextVar("vidloc_job", default=None)


def bind_job(video_id: str, job_id: str) -> None:
    """Tag every later log line in this context with the job; for code that owns its context
    (e.g. a function run under ``copy_context().run``), so nothing needs resetting."""
    _JOB.set({"video_id": video_id, "job_id": job_id})


@contextmanager
def job_context(video_id: str, job_id: str) -> Iterator[None]:
    """Tag log lines with the job for the duration of the block."""
    token = _JOB.set({"video_id": video_id, "job_id": job_id})
    try:
        yield
    finally:
        _JOB.reset(token)


def current_job() -> dict[str, str] | None:
    return _JOB.get()


class JobContext(logging.Filter):
    """Put the current job's ids on records that did not pass them with ``extra=``.

    Deeper modules (frames, localizers, model client) log without knowing the job; this is what
    makes every line of a job carry video_id and job_id anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        job = _JOB.get()
        if job is not None:
            for name, value in job.items():
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True


class RedactSecrets(logging.Filter):
    """Replace every configured secret value in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False).translate(_JSON_ESCAPES)


class ContextText(logging.Formatter):
    """One line per record, ids appended; a traceback follows on lines marked ``  | ``, so no
    string inside it can pass for a log line of its own."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_text(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        context = " ".join(
            f"{name}={escape_text(str(getattr(record, name)))}"
            for name in _CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        if context:
            text = f"{text} [{context}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if block:
                text += "".join(f"\n  | {escape_text(line)}" for line in block.splitlines())
        return text


def configure_logging(
    level: str = "INFO", *, json_lines: bool = False, secrets: Iterable[str] = ()
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobContext())
    handler.addFilter(RedactSecrets(secrets))
    if json_lines:
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(ContextText("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kafka", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
