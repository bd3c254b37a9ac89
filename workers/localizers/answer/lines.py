"""Events in an answer's text, line by line: markdown tables, sentences, frame listings. Pure.

- A markdown table row is read as an object keyed by the table's header ("| Event | Start |
  End |", "| Object | Appears (s) | Disappears (s) |"), like an event object in JSON; a row
  whose header says nothing is read as a sentence.
- A sentence states spans (``prose.stated_spans``); each span's text is the text its label is
  looked for in, its whole sentence the context.
- Lines that each start with one time ("<12.0 seconds>: red circle", one per frame shown) are a
  listing: each line is one moment, and ``read`` joins a label's consecutive lines into a span.

Work is bounded: at most ``MAX_LINES`` lines of at most ``prose.MAX_SENTENCE_CHARS`` characters
are read, each once, and every character read is counted (``Notes.spend``).
"""

from __future__ import annotations

import re

from workers.localizers.answer.json_blocks import Notes
from workers.localizers.answer.objects import MAX_TEXT_CHARS, RawEvent, event_from_object
from workers.localizers.answer.prose import (
    MAX_SENTENCE_CHARS,
    listing_time,
    stated_spans,
)

MAX_LINES = 4000
MAX_EVENTS = 200
MAX_TABLE_CELLS = 16
# Where a sentence ends: ; ! ? (also full-width), 。, or a period before a space.
_SENTENCE_END = re.compile(r"[;!?。\uff01\uff1f\uff1b]|\.(?=\s|$)")
_SEPARATOR_CELL = re.compile(r":?-{1,200}:?")


def events_from_text(text: str, notes: Notes) -> list[RawEvent]:
    """Every event the text states, in order."""
    lines = text.splitlines()[:MAX_LINES]
    out: list[RawEvent] = []
    listing: list[tuple[float, str]] = []
    i = 0
    while i < len(lines) and len(out) < MAX_EVENTS:
        if _is_row(lines[i]):
            end = i
            while end < len(lines) and _is_row(lines[end]):
                end += 1
            out.extend(_table(lines[i:end], notes))
            i = end
            continue
        line = lines[i][:MAX_SENTENCE_CHARS]
        i += 1
        if not notes.spend(1 + len(line)) or not line.strip():
            continue
        found = _sentences(line)
        if found:
            out.extend(found)
        elif (listed := listing_time(line)) is not None:
            listing.append(listed)
    if len(listing) >= 2:  # one timed line alone is a remark, not a listing
        notes.note("frame-by-frame listing read", len(listing))
        out.extend(
            RawEvent(None, moment, moment, shows, shows[:MAX_TEXT_CHARS], run=index)
            for index, (moment, shows) in enumerate(listing[:MAX_EVENTS])
        )
    if out:
        notes.note("times read from text", len(out))
    return out[:MAX_EVENTS]


def _sentences(line: str) -> list[RawEvent]:
    """The spans each sentence of a line states; spans joined across the line's sentences
    when none of them states one alone ("appears at <12.0 seconds>. It leaves at <15.0
    seconds>.")."""
    out = []
    sentences = _SENTENCE_END.split(line)
    for sentence in sentences:
        sentence = sentence.strip()
        for stated in stated_spans(sentence) if sentence else ():
            text = stated.text or sentence
            out.append(RawEvent(None, *stated.span, text, text[:MAX_TEXT_CHARS], context=sentence))
    if not out and len(sentences) > 1:
        whole = line.strip()
        for stated in stated_spans(whole):
            text = stated.text or whole
            out.append(RawEvent(None, *stated.span, text, text[:MAX_TEXT_CHARS], context=whole))
    return out


def _is_row(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("|") and stripped.count("|") >= 2


def _cells(line: str) -> list[str]:
    stripped = line.strip()[:MAX_SENTENCE_CHARS].strip("|")
    return [cell.strip() for cell in stripped.split("|")[:MAX_TABLE_CELLS]]


def _table(rows: list[str], notes: Notes) -> list[RawEvent]:
    """A table's rows as objects keyed by its header (when the second row rules it off)."""
    header: list[str] | None = None
    body = rows
    if len(rows) >= 2 and all(_SEPARATOR_CELL.fullmatch(c) for c in _cells(rows[1]) if c):
        header, body = _cells(rows[0]), rows[2:]
    out: list[RawEvent] = []
    for row in body:
        if not notes.spend(1 + len(row)):
            break
        cells = _cells(row)
        found: list[RawEvent] = []
        if header is not None:
            record = {
                name or f"column {n}": cell
                for n, (name, cell) in enumerate(zip(header, cells, strict=False))
            }
            found = [
                e for e in event_from_object(record) if e.start is not None or e.end is not None
            ]
        if not found:
            found = _sentences(" | ".join(cells))
        out.extend(found)
    if out:
        notes.note("table rows read", len(out))
    return out
