"""The ranged reader: a seekable file over one object version, read in blocks, pinned to its etag.

The store is a stand-in HTTP pool here (the real versitygw: tests/integration/
test_span_ranged_reads.py): every GET it answers is recorded, so the tests see which ranges were
asked for, with which headers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from vidloc.adapters.ranged_reader import (
    MAX_BLOCK_BYTES,
    MIN_BLOCK_BYTES,
    RangedReader,
    RemoteObject,
    block_bytes,
)
from vidloc.errors import ObjectMissing, StorageUnavailable

DATA = bytes(range(256)) * 400  # 102,400 bytes
ETAG = "abc123"
REMOTE = RemoteObject(url="http://store/videos/a.mp4?sig", etag=ETAG, size=len(DATA), where="v/a")


@dataclass
class Answer:
    status: int
    data: bytes
    headers: dict[str, str]


@dataclass
class Store:
    """Answers ranged GETs of ``DATA`` like S3; ``etag``/``status`` change what it says."""

    data: bytes = DATA
    etag: str = ETAG
    status: int | None = None  # forced status (e.g. 503)
    ignore_range: bool = False
    asked: list[dict[str, str]] = field(default_factory=list)

    def request(self, method: str, url: str, headers: dict[str, str], **_: Any) -> Answer:
        assert method == "GET" and url == REMOTE.url
        self.asked.append(dict(headers))
        if self.status is not None:
            return Answer(self.status, b"", {})
        if headers.get("If-Match") != f'"{self.etag}"':
            return Answer(412, b"", {})
        tag = {"ETag": f'"{self.etag}"'}
        if self.ignore_range:
            return Answer(200, self.data, tag)
        first, last = (int(x) for x in headers["Range"].removeprefix("bytes=").split("-"))
        body = self.data[first : last + 1]
        return Answer(206, body, {**tag, "Content-Range": f"bytes {first}-{last}/{len(self.data)}"})


def reader(store: Store, block: int = 10_000, keep: int = 2) -> RangedReader:
    return RangedReader(REMOTE, block=block, keep=keep, http=store)  # type: ignore[arg-type]


def test_blocks_grow_with_the_object_within_bounds() -> None:
    assert block_bytes(1_000) == MIN_BLOCK_BYTES
    assert block_bytes(64 * 1_000_000) == 1_000_000
    assert block_bytes(50 * 1024**3) == MAX_BLOCK_BYTES


def test_reads_and_seeks_give_the_objects_bytes() -> None:
    store = Store()
    f = reader(store)
    assert f.read(5) == DATA[:5]
    f.seek(9_998)
    assert f.read(4) == DATA[9_998:10_002]  # across a block edge
    f.seek(-3, io.SEEK_END)
    assert f.read(10) == DATA[-3:]  # short at the end
    assert f.read(10) == b""
    f.seek(50_000)
    f.seek(7, io.SEEK_CUR)
    assert f.tell() == 50_007
    assert f.read(3) == DATA[50_007:50_010]
    assert f.seekable() and f.readable()


def test_each_block_is_fetched_once_while_kept() -> None:
    store = Store()
    f = reader(store, keep=2)
    for offset in (0, 100, 5_000, 9_999, 10_000, 19_999, 0):
        f.seek(offset)
        f.read(1)
    assert [a["Range"] for a in store.asked] == ["bytes=0-9999", "bytes=10000-19999"]
    f.seek(30_000)
    f.read(1)  # a third block pushes out the least recently used (the second: 0 was read last)
    f.seek(10_000)
    f.read(1)
    assert [a["Range"] for a in store.asked][2:] == ["bytes=30000-39999", "bytes=10000-19999"]
    assert f.stats.requests == 4 and f.stats.fetched == 40_000 and f.stats.size == len(DATA)


def test_every_range_names_the_version() -> None:
    store = Store()
    f = reader(store)
    f.read(1)
    assert store.asked[0]["If-Match"] == f'"{ETAG}"'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"etag": "new"}, "replaced while reading it", id="if-match-412"),
        pytest.param({"status": 404}, "does not exist", id="gone"),
    ],
)
def test_a_replaced_or_deleted_object_is_object_missing(
    change: dict[str, Any], message: str
) -> None:
    store = Store()
    f = reader(store)
    f.read(1)
    for name, value in change.items():
        setattr(store, name, value)
    f.seek(60_000)
    with pytest.raises(ObjectMissing, match=message):
        f.read(1)


class IgnoresIfMatch(Store):
    """A store that does not honour If-Match: the response's own ETag still tells."""

    def request(self, method: str, url: str, headers: dict[str, str], **kw: Any) -> Answer:
        return super().request(method, url, {**headers, "If-Match": f'"{self.etag}"'}, **kw)


def test_a_response_of_another_version_is_refused_even_without_if_match() -> None:
    store = IgnoresIfMatch(etag="other")
    with pytest.raises(ObjectMissing, match="etag other"):
        reader(store).read(1)


def test_a_response_of_another_size_is_refused() -> None:
    store = Store(data=DATA + b"more")
    with pytest.raises(ObjectMissing, match="size changed"):
        reader(store).read(1)


def test_a_store_that_ignores_range_still_gives_the_right_bytes() -> None:
    store = Store(ignore_range=True)
    f = reader(store)
    f.seek(12_345)
    assert f.read(10) == DATA[12_345:12_355]


def test_an_unreachable_store_is_transient() -> None:
    store = Store(status=503)
    with pytest.raises(StorageUnavailable, match="HTTP 503"):
        reader(store).read(1)


def test_a_remote_object_crosses_processes() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(REMOTE)) == REMOTE
