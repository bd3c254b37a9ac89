"""Pure parts of the local Kafka launcher."""

from __future__ import annotations

import base64
import re

from vidloc.stack.kafka import new_cluster_id


def test_cluster_id_never_starts_with_a_dash() -> None:
    # 0xf8 encodes to "-" as the first URL-safe base64 character: StorageTool would take
    # "-t -..." for an option. The generator must draw again.
    draws = iter([b"\xf8" + b"\x00" * 15, b"\x10" * 16])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x10" * 16).rstrip(b"=").decode()


def test_cluster_id_has_kafkas_shape() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id), cluster_id
