"""Times written in sentences: which spans a sentence states, and which text each belongs to. Pure.

Besides the ranges ``times.find_ranges`` reads ("31.5 - 40.5 seconds", "0:00-0:05"), a person
writes a start and an end apart, each a single time: the ``<12.0 seconds>`` stamps the request
showed ("visible from <12.0 seconds> to <15.0 seconds>"), times with a unit ("starts at 12.0 s
and ends at 15.0 s"), clocks ("first seen at 0:12, last seen at 0:15"), Chinese ("在<12.0秒>出现,
在<15.0秒>消失") or a bracketed pair ("[00:15, 00:32]"). Two single times make a span only when
what lies between them says so (a dash, "to", "until", "and disappears at", "到") and holds no
other words: "a red circle at <12.0 seconds> and a blue square at <14.0 seconds>" is two
moments, not one span.

Every repetition in these patterns is bounded, and each pattern is run on text of bounded
length, so the work is linear in the answer's length whatever it holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.localizers.answer.times import Span, clock_seconds, range_matches

MAX_SENTENCE_CHARS = 2000  # the part of one sentence that is read
MAX_MENTIONS = 64  # single times read in one sentence
MAX_BETWEEN_CHARS = 80  # text between a start and an end that may still join them

_NUMBER = r"\d{1,9}(?:\.\d{1,16})?|\.\d{1,16}"
_CLOCK = r"(?:\d{1,3}:)?\d{1,3}:\d{2}(?:\.\d{1,6})?"
_UNIT = r"(?:seconds?|secs?\.?|s(?![a-z])|秒钟?)"
_MENTION = re.compile(
    rf"<\s{{0,3}}(?P<stamp>{_CLOCK}|{_NUMBER})\s{{0,3}}(?:{_UNIT})?\s{{0,3}}>"
    rf"|(?<![A-Za-z0-9_.:])(?P<clock>{_CLOCK})(?![\d:])(?:\s{{0,3}}{_UNIT})?"
    rf"|(?<![A-Za-z0-9_.:])(?P<number>{_NUMBER})\s{{0,3}}{_UNIT}",
    re.IGNORECASE,
)
_BRACKET_PAIR = re.compile(
    rf"[\[(]\s{{0,3}}<?(?P<a>{_CLOCK}|{_NUMBER})\s{{0,3}}(?:{_UNIT})?>?\s{{0,3}},"
    rf"\s{{0,3}}<?(?P<b>{_CLOCK}|{_NUMBER})\s{{0,3}}(?:{_UNIT})?>?\s{{0,3}}[\])]",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z]{1,32}|[\u4e00-\u9fff]", re.IGNORECASE)
# What may stand between a start and its end: words that carry no other subject...
_FILLER = frozenset(
    {"and", "then", "it", "its", "they", "is", "was", "are", "were", "be", "been", "being"}
    | {"still", "visible", "seen", "present", "shown", "remains", "remain", "stays", "stay"}
    | {"continues", "continue", "lasting", "lasts", "last", "at", "in", "on", "from", "frame"}
    | {"frames", "the", "a", "an", "after", "around", "about", "approximately", "roughly"}
    | {"until", "till", "to", "through", "thru", "up", "by", "of", "onward", "onwards"}
    | {"again", "also", "time", "timestamp", "second", "seconds", "s", "sec", "secs"}
    | {"moment", "shows", "show", "appears", "appear", "appeared", "enters", "enter", "starts"}
    | {"start", "begins", "begin", "first", "ends", "end", "ending", "ended", "disappears"}
    | {"disappear", "disappeared", "vanishes", "vanish", "leaves", "leaving", "left", "exits"}
    | {"exit", "stops", "stop", "stopped", "gone", "out", "view", "screen", "picture", "scene"}
    | {"where", "when", "which"}
)
# ...and at least one of these says that the second time ends what the first began.
_CUES = frozenset(
    {"to", "until", "till", "through", "thru", "and", "ends", "end", "ending", "ended"}
    | {"disappears", "disappear", "disappeared", "vanishes", "vanish", "leaves", "leaving"}
    | {"left", "exits", "exit", "stops", "stop", "stopped", "last", "lasts", "gone"}
)
_END_CUES = frozenset(
    {"ends", "end", "ending", "disappears", "disappear", "vanishes", "leaves", "exits", "stops"}
)
_CJK_FILLER = ("出现", "开始", "一直", "持续", "可见", "画面", "然后", "为止", "左右", "并且")
_CJK_CUES = ("直到", "结束", "消失", "离开", "到", "至")
_CJK_END_CUES = ("消失", "结束", "离开")
_CJK_SINGLE_FILLER = frozenset("在时从于并后再中的了秒")
_DASHES = frozenset("-\u2013\u2014~\uff5e\u2192")
# Spaces and punctuation, ASCII and full-width (comma, ideographic comma and full stop,
# semicolon, colon, parentheses).
_JOINING_PUNCTUATION = frozenset(" \t,;:.()[]*\"'/>\uff0c\u3001\u3002\uff1b\uff1a\uff08\uff09")
_LEADING_WORDS = frozenset({"from", "between", "at", "in", "during", "since", "从", "在"})
# A listing line: a bullet or number, maybe "at"/"frame", then the time first.
_LISTING_HEAD = re.compile(
    r"\s{0,8}(?:[-*\u2022]\s{0,3}|\d{1,3}[.)]\s{0,3})?(?:(?:at|frame|time)\s{1,3})?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    """One single time written in a sentence, and where."""

    seconds: float
    start: int
    end: int


@dataclass(frozen=True)
class Stated:
    """A span a sentence states, where it is written, and the text it belongs to."""

    span: Span
    start: int
    end: int
    text: str = ""


def mentions(text: str) -> list[Mention]:
    """The single times in ``text``, in order: stamps, clocks, and numbers with a unit."""
    out: list[Mention] = []
    for match in _MENTION.finditer(text[:MAX_SENTENCE_CHARS]):
        written = match.group("stamp") or match.group("clock") or match.group("number")
        value = clock_seconds(written)
        if value is not None:
            out.append(Mention(value, match.start(), match.end()))
            if len(out) >= MAX_MENTIONS:
                break
    return out


def stated_spans(sentence: str) -> list[Stated]:
    """The spans one sentence states, in order, each with the text that names its subject."""
    text = sentence[:MAX_SENTENCE_CHARS]
    found = [Stated(span, a, b) for span, a, b in range_matches(text)]
    for match in _BRACKET_PAIR.finditer(text):
        if not _overlaps(match.start(), match.end(), found):
            a, b = clock_seconds(match.group("a")), clock_seconds(match.group("b"))
            if a is not None and b is not None:
                found.append(Stated((a, b), match.start(), match.end()))
    singles = [m for m in mentions(text) if not _overlaps(m.start, m.end, found)]
    found.extend(_joined(text, singles))
    found.sort(key=lambda s: s.start)
    return _attributed(text, found)


def listing_time(line: str) -> tuple[float, str] | None:
    """(time, what follows it) for a listing line, one that starts with its only time
    ("<12.0 seconds>: red circle", "- 0:12 red circle"); else None."""
    head = _LISTING_HEAD.match(line)
    found = mentions(line)
    if head is None or len(found) != 1 or found[0].start != head.end():
        return None
    return found[0].seconds, line[found[0].end :].strip(" \t:-\u2013\u2014,;.")


def whole_span(text: str) -> Span | None:
    """A span when ``text`` is nothing but one ("<12.0 seconds> - <15.0 seconds>"), else None."""
    stated = stated_spans(text)
    if len(stated) != 1:
        return None
    rest = text[: stated[0].start] + text[stated[0].end :]
    return None if _WORD.search(rest) else stated[0].span


def _joined(text: str, singles: list[Mention]) -> list[Stated]:
    """Pairs of single times whose in-between text makes them a start and an end."""
    out: list[Stated] = []
    i = 0
    while i + 1 < len(singles):
        first, second = singles[i], singles[i + 1]
        between = text[first.end : second.start]
        after = text[second.end : second.end + 12]
        if _joins(between, after):
            out.append(Stated((first.seconds, second.seconds), first.start, second.end))
            i += 2
        else:
            i += 1
    return out


def _joins(between: str, after: str) -> bool:
    if len(between) > MAX_BETWEEN_CHARS:
        return False
    cue = any(c in _DASHES for c in between)
    rest = between
    for word in (*_CJK_CUES, *_CJK_FILLER):
        if word in rest:
            cue = cue or word in _CJK_CUES
            rest = rest.replace(word, " ")
    for word in _WORD.findall(rest):
        lowered = word.lower()
        if lowered not in _FILLER and lowered not in _CJK_SINGLE_FILLER:
            return False
        cue = cue or lowered in _CUES
    if any(c not in _JOINING_PUNCTUATION and c not in _DASHES for c in _WORD.sub("", rest)):
        return False
    if not cue:  # "出现, 在<15.0秒>消失": the end is said after the second time
        cue = any(w.lower() in _END_CUES for w in _WORD.findall(after)) or any(
            c in after for c in _CJK_END_CUES
        )
    return cue


def _attributed(text: str, found: list[Stated]) -> list[Stated]:
    """Each span with its own part of the sentence when it states several: the text before
    each span when the sentence names its subjects first ("a red circle between 12 and 15 s
    and a blue square between 16 and 18.5 s"), the text after it when it starts with a time."""
    if len(found) <= 1:
        return [Stated(s.span, s.start, s.end, text) for s in found]
    lead = _WORD.findall(_LISTING_HEAD.sub("", text[: found[0].start], count=1))
    times_first = all(w.lower() in _LEADING_WORDS for w in lead)
    out = []
    for i, stated in enumerate(found):
        if times_first:
            until = found[i + 1].start if i + 1 < len(found) else len(text)
            part = text[stated.start : until]
        else:
            since = found[i - 1].end if i else 0
            part = text[since : stated.end]
        out.append(Stated(stated.span, stated.start, stated.end, part.strip(" ,;")))
    return out


def _overlaps(start: int, end: int, found: list[Stated]) -> bool:
    return any(start < s.end and s.start < end for s in found)
