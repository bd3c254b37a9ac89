"""Schema version ids and addresses: the one place a contract's version is spelled.

A document's ``schema`` field carries the version id; the JSON Schema file that describes it is
``schemas/<name>.v1.json`` with ``$id`` ``https://vidloc.dev/schemas/<name>.v1.json``. A breaking
change gets a new id (``.v2``) and a new file beside the old one; adding optional fields does not.
"""

from __future__ import annotations

from typing import Final

SCHEMA_BASE_URL: Final = "https://vidloc.dev/schemas/"

INGEST_V1: Final = "vidloc.ingest.v1"
PROGRESS_V1: Final = "vidloc.progress.v1"
RESULT_V1: Final = "vidloc.result.v1"
TIMELINE_V1: Final = "vidloc.timeline.v1"
DLQ_V1: Final = "vidloc.dlq.v1"
# The model answer carries no ``schema`` field (the model writes it); the id names its schema file.
ANSWER_V1: Final = "vidloc.answer.v1"

# contract name -> version id; the name is also the schema file's stem.
SCHEMA_IDS: Final[dict[str, str]] = {
    "ingest": INGEST_V1,
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
