"""The per-key daily submission count shared by every API replica (vidloc/api/quota.py): the
pure window, and compare-and-set on a store that refuses a write over a changed version."""

from __future__ import annotations

import hashlib

import pytest

from vidloc.adapters.object_store import ObjectInfo
from vidloc.api.quota import SubmitQuota, admit, quota_key
from vidloc.errors import ObjectMissing, StorageUnavailable

BUCKET = "timelines"


class CasStore:
    """Objects in a dict with S3's conditional PUT; ``meddle`` writes before a given write
    (another replica winning the race)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.meddle: list[bytes] = []
        self.writes = 0

    def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]:
        try:
            data = self.objects[key]
        except KeyError:
            raise ObjectMissing(key) from None
        return data, hashlib.md5(data).hexdigest()

    def put_bytes_if(
        self, bucket: str, key: str, data: bytes, *, etag: str | None, content_type: str = ""
    ) -> ObjectInfo | None:
        if self.meddle:
            self.objects[key] = self.meddle.pop(0)
        current = self.objects.get(key)
        if (etag is None) != (current is None):
            return None
        if current is not None and hashlib.md5(current).hexdigest() != etag:
            return None
        self.objects[key] = data
        self.writes += 1
        return ObjectInfo(bucket, key, len(data), hashlib.md5(data).hexdigest())


def test_submit_quota_counts_per_key_over_a_rolling_window() -> None:
    quota = SubmitQuota(CasStore(), BUCKET, 2, window_s=100.0)
    assert quota.take("a", 0.0) == 0 and quota.take("a", 1.0) == 0
    assert quota.take("a", 2.0) == pytest.approx(98.0)
    assert quota.take("b", 2.0) == 0
    assert quota.take("a", 100.5) == 0


def test_replicas_share_one_count() -> None:
    store = CasStore()
    one, two = (SubmitQuota(store, BUCKET, 3, window_s=100.0) for _ in range(2))
    assert [one.take("k", 1.0), two.take("k", 2.0), one.take("k", 3.0)] == [0, 0, 0]
    assert two.take("k", 4.0) == pytest.approx(97.0)
    assert one.take("k", 4.0) == pytest.approx(97.0)


def test_a_lost_race_reads_again_and_counts_the_winner() -> None:
    store = CasStore()
    quota = SubmitQuota(store, BUCKET, 2, window_s=100.0)
    # Another replica counts a submission between this one's read and write.
    store.meddle = [b'{"stamps": [5.0]}']
    assert quota.take("k", 6.0) == 0
    assert store.objects[quota_key("k")] == b'{"stamps": [5.0, 6.0]}'
    assert quota.take("k", 7.0) == pytest.approx(98.0)


def test_a_count_that_never_settles_is_a_transient_error() -> None:
    store = CasStore()
    quota = SubmitQuota(store, BUCKET, 5)
    store.meddle = [f'{{"stamps": [{n}]}}'.encode() for n in range(100)]
    with pytest.raises(StorageUnavailable):
        quota.take("k", 1000.0)
    assert store.writes == 0


def test_an_unreadable_count_starts_again() -> None:
    store = CasStore()
    store.objects[quota_key("k")] = b"not json"
    assert SubmitQuota(store, BUCKET, 1).take("k", 10.0) == 0
    assert store.objects[quota_key("k")] == b'{"stamps": [10.0]}'


@pytest.mark.parametrize(
    ("stamps", "now", "limit", "kept", "wait_s"),
    [
        pytest.param([], 5.0, 1, [5.0], 0.0, id="first"),
        pytest.param([1.0, 50.0], 120.0, 2, [50.0, 120.0], 0.0, id="old-one-leaves"),
        pytest.param([30.0, 10.0], 60.0, 2, [10.0, 30.0], 50.0, id="full-unsorted"),
        # The limit was lowered: two of three must leave before one more fits.
        pytest.param([10.0, 20.0, 30.0], 40.0, 1, [10.0, 20.0, 30.0], 90.0, id="over-limit"),
        pytest.param([0.0], 100.0, 1, [100.0], 0.0, id="edge-is-out"),
    ],
)
def test_admit(
    stamps: list[float], now: float, limit: int, kept: list[float], wait_s: float
) -> None:
    assert admit(stamps, now, limit, window_s=100.0) == (kept, pytest.approx(wait_s))


def test_quota_keys_are_key_ids_or_digests() -> None:
    assert quota_key("abcdefgh2345") == "submit-quota/abcdefgh2345.json"
    assert quota_key("-") == "submit-quota/-.json"
    odd = quota_key("../x y")
    assert odd.startswith("submit-quota/") and "/" not in odd.removeprefix("submit-quota/")
