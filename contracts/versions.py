"""Schema version ids and addresses: the one place a contract's version is spelled.

A document's ``schema`` field carries the version id; the JSON Schema file that describes it is
``schemas/<name>.v1.json`` with ``$id`` ``https://vidloc.dev/schemas/<name>.v1.json``. A breaking
change gets a new id (``.v2``) and a new file beside the old one; adding optional fields does not.
"""

from __future__ import annotations

from typing import Final

SCHEMA_BASE_URL: Final = "https://vidloc.dev/schemas/"

INGEST_V1: Final = "vidloc.ingest.v1"
# v2: an ingest event that asks a new question of an already analysed video (``analysis``).
# A new id, not an optional field: a v1 worker would ignore the field and overwrite the
# video's first timeline; with v2 it refuses the event instead (unknown schema).
INGEST_V2: Final = "vidloc.ingest.v2"
PROGRESS_V1: Final = "vidloc.progress.v1"
RESULT_V1: Final = "vidloc.result.v1"
TIMELINE_V1: Final = "vidloc.timeline.v1"
DLQ_V1: Final = "vidloc.dlq.v1"
# The model answer carries no ``schema`` field (the model writes it); the id names its schema file.
ANSWER_V1: Final = "vidloc.answer.v1"

# contract name -> version id; the file name comes from the id (``ingest.v2.json``).
SCHEMA_IDS: Final[dict[str, str]] = {
    "ingest": INGEST_V1,
    "ingest_v2": INGEST_V2,
    "progress": PROGRESS_V1,
    "result": RESULT_V1,
    "timeline": TIMELINE_V1,
    "answer": ANSWER_V1,
    "dlq": DLQ_V1,
}


def schema_file(name: str) -> str:
    """File name of a contract's JSON Schema inside ``contracts/schemas``."""
    return SCHEMA_IDS[name].removeprefix("vidloc.") + ".json"


def schema_url(name: str) -> str:
    """The ``$id`` of a contract's JSON Schema."""
    return SCHEMA_BASE_URL + schema_file(name)
