"""One adapter per external system: Kafka (:mod:`.kafka`) and the S3 store (:mod:`.object_store`,
and :mod:`.ranged_reader` for reading one object version by ranges).

Each adapter takes a :class:`vidloc.settings.Settings` (or plain values), builds its client on
demand and translates library errors into :mod:`vidloc.errors` at the edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any as _Any

if TYPE_CHECKING:
    from vidloc.adapters.object_store import ObjectStore

__all__ = ["ObjectStore"]


def __getattr__(name: str) -> _Any:
    # Lazy: the decoder children import .ranged_reader, and must not pay for minio and the
    # settings model (the decoder server preloads what they import, in every worker).
    if name == "ObjectStore":
        from vidloc.adapters.object_store import ObjectStore

        return ObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
