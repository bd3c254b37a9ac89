"""Logging, configured once at the entrypoint: text or JSON lines, secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_CONTEXT_FIELDS = ("video_id", "job_id")

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
        return json.dumps(doc, ensure_ascii=False)


class ContextText(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in _CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        return f"{text} [{context}]" if context else text


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
