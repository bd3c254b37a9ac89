"""Log injection: untrusted strings cannot forge a log line or reach the terminal as controls."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from vidloc.logs import ContextText, JobContext, JsonLines, escape_text, job_context

HOSTILE_KEY = "up/a.mp4\n2026-11-29 12:00:00 INFO producers.bridge: all clear\x1b[31m red\x07"
# Everything a terminal or a line-based reader treats as more than text.
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x202E, 0x2066)]


@pytest.fixture
def emit() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(JobContext())
    log = logging.getLogger("vidloc.test.escaping")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        yield log, stream, handler
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
        log.propagate = True


def test_a_hostile_key_stays_on_one_line_without_control_bytes(
    emit: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, stream, handler = emit
    handler.setFormatter(ContextText("%(levelname)s %(name)s: %(message)s"))
    with job_context("vid\n1", "job\x1b[2J"):
        log.info("skipped %s: not a video", HOSTILE_KEY)
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")  # the handler's own terminator only
    assert "\x1b" not in out and "\x07" not in out
    line = out.rstrip("\n")
    assert line == (
        "INFO vidloc.test.escaping: skipped up/a.mp4\\n2026-11-29 12:00:00 INFO "
        "producers.bridge: all clear\\x1b[31m red\\x07: not a video "
        "[video_id=vid\\n1 job_id=job\\x1b[2J]"
    )


def test_every_control_character_is_spelled_out() -> None:
    escaped = escape_text("".join(CONTROLS))
    assert escaped.isprintable() and escaped.isascii()
    assert escape_text("tab\there, cr\r, ESC\x1b, NEL\x85, LS\u2028, RLO\u202e") == (
        "tab\\there, cr\\r, ESC\\x1b, NEL\\x85, LS\\u2028, RLO\\u202e"
    )
    assert escape_text("vidéo 東京 ☃.mp4") == "vidéo 東京 ☃.mp4"  # text is left alone


def test_a_traceback_keeps_its_lines_but_cannot_forge_one(
    emit: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, stream, handler = emit
    handler.setFormatter(ContextText("%(levelname)s %(message)s"))
    try:
        raise ValueError(f"bad key {HOSTILE_KEY}")
    except ValueError:
        log.exception("job crashed")
    first, *rest = stream.getvalue().rstrip("\n").split("\n")
    assert first == "ERROR job crashed"
    assert rest and all(line.startswith("  | ") for line in rest)
    assert "\x1b" not in stream.getvalue()
    # The exception's own text breaks the traceback's lines, but every one stays marked.
    assert "  | ValueError: bad key up/a.mp4" in rest
    assert "  | 2026-11-29 12:00:00 INFO producers.bridge: all clear\\x1b[31m red\\x07" in rest


def test_json_lines_stay_valid_json_and_round_trip_the_original(
    emit: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, stream, handler = emit
    handler.setFormatter(JsonLines())
    hostile = HOSTILE_KEY + "".join(CONTROLS)
    with job_context("vid-1", "job-1"):
        log.warning("refused %s", hostile)
        try:
            raise RuntimeError(hostile)
        except RuntimeError:
            log.exception("crash")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.isprintable() for line in lines)  # no raw control reaches the terminal
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == f"refused {hostile}"
    assert (first["video_id"], first["job_id"]) == ("vid-1", "job-1")
    assert hostile in second["exception"]
