"""Which requested label a raw event is about. Pure.

An event names its label outright (``"label": "Red_Circle"``), or in its text ("A red circle is
visible ..."), or only where it was found: the key it sat under (``{"red circle": [{...}]}``) or
the sentence around it. When one label was asked, an event that names none answers that one,
except a line of a frame listing, which names what it shows or shows nothing asked for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from workers.localizers.answer.json_blocks import Notes
from workers.localizers.answer.objects import RawEvent

MAX_LABEL_CHARS = 120
_SEPARATORS = re.compile(r"[_\-]{1,64}")


def labels_for(item: RawEvent, allowed: dict[str, str], notes: Notes) -> list[str]:
    """The requested labels this raw event is about (several when its text names several).

    ``allowed``: the requested labels by their plain form; empty when none were asked, and then
    the event's own label (or text) is its label.
    """
    if item.label is not None and norm_label(item.label):
        label = norm_label(item.label)[:MAX_LABEL_CHARS]
        if not allowed:
            return [label]
        canonical = allowed.get(plain_label(label))
        if canonical is not None:
            return [canonical]
        named = labels_in_text(item.label, list(allowed.values()))
        if len(named) == 1:  # "a red circle" for "red circle"
            return named
        notes.reject("label not asked for")
        return []
    if allowed:
        asked = list(allowed.values())
        named = labels_in_text(item.text, asked) or labels_in_text(item.context, asked)
        if named:
            return named
        if item.run is not None:
            notes.note("listing line naming no requested label")
            return []
        only = set(asked)
        if len(only) == 1:
            # One question asked: an answer that names no label answers that one.
            return [only.pop()]
        notes.reject("no requested label in the text" if item.text else "event without a label")
        return []
    label = (norm_label(item.text) or norm_label(item.context))[:MAX_LABEL_CHARS]
    if not label:
        notes.reject("event without a label")
        return []
    return [label]


def labels_in_text(text: str, labels: Sequence[str]) -> list[str]:
    """The labels named in ``text`` (case-insensitive, singular or plural), in order of mention."""
    if not isinstance(text, str) or not text:
        return []
    plain = norm_label(text)
    found: list[tuple[int, str]] = []
    for label in dict.fromkeys(labels):
        wanted = norm_label(label)
        if not wanted:
            continue
        if wanted.isascii():
            stem = plain_label(wanted)
            if stem not in plain:  # the cheap look first: most labels are not named at all
                continue
            match = re.search(rf"(?<![a-z0-9]){re.escape(stem)}(?:e?s)?(?![a-z0-9])", plain)
            position = match.start() if match else -1
        else:
            position = plain.find(wanted)  # no word boundaries in CJK text
        if position >= 0:
            found.append((position, label))
    return [label for _, label in sorted(found)]


def norm_label(label: str) -> str:
    """Lower case, ``_`` and ``-`` as spaces, whitespace collapsed."""
    return " ".join(_SEPARATORS.sub(" ", label).lower().split())


def plain_label(label: str) -> str:
    """ "red circles" asked as "red circle": singular and plural alike."""
    return label[:-1] if label.endswith("s") and len(label) > 3 else label
