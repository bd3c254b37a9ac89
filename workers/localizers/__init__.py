"""Localizers: turn the frames of one chunk into events.

Which localizers exist and what each needs and offers is the registry's to say
(:mod:`workers.localizers.registry`); the rest of the worker asks a :class:`LocalizerKind`.
"""

from workers.localizers.kind import LocalizerDeps, LocalizerKind
from workers.localizers.registry import localizer_kind, localizer_names, source_is_refinable

__all__ = [
    "LocalizerDeps",
    "LocalizerKind",
    "localizer_kind",
    "localizer_names",
    "source_is_refinable",
]
