"""One adapter per external system: Kafka (:mod:`.kafka`) and the S3 store (:mod:`.object_store`).

Each adapter takes a :class:`vidloc.settings.Settings` (or plain values), builds its client on
demand and translates library errors into :mod:`vidloc.errors` at the edge.
"""

from vidloc.adapters.object_store import ObjectStore

__all__ = ["ObjectStore"]
