"""The one place that knows which localizers exist; everything else asks a :class:`LocalizerKind`.

Registering a localizer: declare ``KIND`` in its module and add it to ``_REGISTERED``. Its name
must also be one of the wire contract's ``contracts.common.LocalizerName`` values (a test holds
the two together), since jobs name their localizer in the ingest event.
"""

from __future__ import annotations

from vidloc.errors import InputError
from workers.localizers import cv, vlm
from workers.localizers.kind import LocalizerKind

_REGISTERED: tuple[LocalizerKind, ...] = (vlm.KIND, cv.KIND)
_BY_NAME = {kind.name: kind for kind in _REGISTERED}


def localizer_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def localizer_kind(name: str) -> LocalizerKind:
    """The registered localizer called ``name``; an unknown name is the job's input error."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise InputError(f"unknown localizer {name!r} (known: {known})") from None


def source_is_refinable(source: str) -> bool:
    """Whether events tagged ``source`` (``<localizer>`` or ``<localizer>+<pass>``) may have
    their boundaries refined: those of a localizer that declares it, and those of a pass no
    localizer owns (the reader's own passes tag model events)."""
    kind = _BY_NAME.get(source.split("+", 1)[0])
    return kind is None or kind.refines_boundaries
