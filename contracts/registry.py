"""The JSON Schema files, read from the installed package (package data, not I/O on the world)."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from contracts.versions import SCHEMA_IDS, schema_file

SCHEMA_NAMES: tuple[str, ...] = tuple(SCHEMA_IDS)


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("contracts").joinpath("schemas", schema_file(name)).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a contract, by name: ``schema_for("ingest")``.

    Returns a copy; callers may change it freely.
    """
    if name not in SCHEMA_IDS:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return copy.deepcopy(_load(name))
