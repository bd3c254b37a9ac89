"""Limits a JSON document must meet before it is parsed at all (pure, no I/O).

``json.loads`` recurses once per nesting level, so a 200 KB message of nested brackets raises
``RecursionError`` (or worse) inside the parser. These checks never recurse and run at C speed
(regular expressions, ``str.count``, ``itertools.accumulate``), so a hostile message is refused
in linear time with a code of its own before any recursive parser sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate

# One JSON string, escapes included. Possessive and allowed to run to the end of the text, so it
# always matches at a quote: the scan is linear even for an unterminated string full of escaped
# quotes (a backtracking pattern would restart at every one of them).
_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


@dataclass(frozen=True)
class JsonLimits:
    """``None`` switches a limit off. Strings are measured in characters as sent (escapes
    count as written); items are array elements plus object members over the whole document."""

    max_bytes: int | None = None
    max_depth: int = 64
    max_string_chars: int | None = None
    max_items: int | None = None


# Enough for every document vidloc writes itself (timelines, DLQ records holding a quarter
# of a message); only the nesting is bounded, since that is what breaks the parser.
DOCUMENT_LIMITS = JsonLimits()
# A message kept as JSON inside a document (a DLQ record's ``original``) sits one level down.
EMBEDDED_LIMITS = JsonLimits(max_depth=DOCUMENT_LIMITS.max_depth - 1)
# Messages anyone can put on a topic (ingest events, bucket notifications). A real ingest event
# is a few KB with strings under 8,000 characters; these leave room for ``options.extra``.
MESSAGE_LIMITS = JsonLimits(
    max_bytes=4 * 1024 * 1024, max_depth=64, max_string_chars=65_536, max_items=50_000
)


class LimitExceeded(ValueError):
    """A document breaks one of its limits; ``code`` says which (see docs/errors.md)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def check_size(size: int, limits: JsonLimits) -> None:
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise LimitExceeded("message_too_large", f"{size} bytes; the limit is {limits.max_bytes}")


def check_shape(text: str, limits: JsonLimits) -> None:
    """Raise :class:`LimitExceeded` when ``text`` is too deep, too long or has too many items.

    Works on any text, JSON or not: a malformed document that passes is left to the parser.
    """
    if limits.max_string_chars is not None:
        longest = max(map(len, _STRING.findall(text)), default=2) - 2
        if longest > limits.max_string_chars:
            raise LimitExceeded(
                "string_too_long",
                f"a string of {longest} characters; the limit is {limits.max_string_chars}",
            )
    skeleton = _STRING.sub('""', text)  # brackets and commas inside strings are not structure
    brackets = _NOT_BRACKET.sub("", skeleton)
    deepest = max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)
    if deepest > limits.max_depth:
        raise LimitExceeded(
            "message_too_deep",
            f"nested {deepest} levels deep; the limit is {limits.max_depth}",
        )
    if limits.max_items is not None:
        # Every element or member but the first of its container follows a comma.
        items = skeleton.count(",") + brackets.count("[") + brackets.count("{")
        if items > limits.max_items:
            raise LimitExceeded(
                "message_too_complex",
                f"about {items} keys and items; the limit is {limits.max_items}",
            )
