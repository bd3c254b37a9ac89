"""One object version read by HTTP ranges, as a seekable file: a span worker's video.

A span worker decodes minutes of a video that may be hours long. Downloading the whole object
(and probing every packet of it) before decoding its span cost more than the span's own work
(issue 22: the first partial timeline came 2.6x a chunk's time after the hand-off), so the decoder
opens the object through :class:`RangedReader` instead: FFmpeg reads the container's index and
then only the bytes around the span, and the reader turns those reads into ranged GETs.

The reader runs in the decoder child (frames are decoded in a killable child process,
:mod:`workers.frames.isolated`), so what crosses the process boundary is a
:class:`RemoteObject`: a presigned GET URL (no credentials), the etag and the size the worker
checked. Every range names the version: ``If-Match`` with the etag, and the response's own
``ETag`` and ``Content-Range`` total are checked too, so an object replaced mid-read fails the
span with :class:`~vidloc.errors.ObjectMissing` (never a picture of one version decoded with the
index of another). A store that cannot be reached is :class:`~vidloc.errors.StorageUnavailable`
(the span retries).

Reads come in blocks (read-ahead): a block is fetched whole and the last few are kept, so
FFmpeg's small reads and its short seeks back (MP4 ``moov`` then ``mdat``, a keyframe a little
before the target) cost one request per block, not one per read. Memory: ``keep`` blocks.
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vidloc.errors import ObjectMissing, StorageUnavailable

if TYPE_CHECKING:
    import urllib3

log = logging.getLogger(__name__)

# Blocks are the object's size / this, within the bounds below: a small object is not fetched
# whole for its first read, a large one is not read in thousands of tiny requests.
_BLOCKS_PER_OBJECT = 64
MIN_BLOCK_BYTES = 64 * 1024  # FFmpeg's own read size over the reader (probe.open_ranged)
MAX_BLOCK_BYTES = 4 * 1024 * 1024
# Blocks kept: the MP4 index at one end of the file and the decoder's place in the other. A
# third cost a span's child 4 MiB and saved no request: a 240 s span of the 2-hour 1080p bench
# video took 6 requests with 3 kept and with 2 (bench/README.md, "A 2-hour 1080p span run").
KEEP_BLOCKS = 2


def block_bytes(size: int) -> int:
    """The read-ahead block for an object of ``size`` bytes (pure)."""
    return max(MIN_BLOCK_BYTES, min(MAX_BLOCK_BYTES, size // _BLOCKS_PER_OBJECT))


@dataclass(frozen=True)
class RemoteObject:
    """One version of one object, readable by ranges without credentials (picklable)."""

    url: str  # presigned GET
    etag: str  # bare, as :func:`vidloc.adapters.object_store.normalize_etag` gives it
    size: int
    where: str  # bucket/key, for messages
    ca_file: str | None = None
    timeout_s: float = 60.0


@dataclass
class ReadStats:
    """What reading one object took: bytes and GET requests."""

    fetched: int = 0
    requests: int = 0
    size: int = 0

    def add(self, other: ReadStats) -> None:
        self.fetched += other.fetched
        self.requests += other.requests
        self.size = max(self.size, other.size)


class RangedReader(io.RawIOBase):
    """A read-only, seekable file over :class:`RemoteObject` (what ``av.open`` takes)."""

    def __init__(
        self,
        remote: RemoteObject,
        *,
        block: int | None = None,
        keep: int = KEEP_BLOCKS,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        super().__init__()
        self.remote = remote
        self.block = block or block_bytes(remote.size)
        self.keep = max(1, keep)
        self.stats = ReadStats(size=remote.size)
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        # Imported here, not with the module: the decoder server preloads this module for every
        # decoder child, and urllib3 with ssl is 10 MB of its memory (bench/README.md, "A 2-hour
        # 1080p span run"); only a span's child reads by ranges, and pays 0.06 CPU s for it.
        import certifi
        import urllib3

        self._http = http or urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            timeout=urllib3.Timeout(connect=10.0, read=remote.timeout_s),
            cert_reqs="CERT_REQUIRED",
            ca_certs=remote.ca_file or certifi.where(),
            retries=urllib3.Retry(
                total=3,
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
                allowed_methods=["GET"],
                raise_on_status=False,
            ),
        )

    # -- io.RawIOBase -------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.remote.size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.remote.size - self._pos))
        done = 0
        while done < wanted:
            index, offset = divmod(self._pos, self.block)
            data = self._block(index)
            take = min(wanted - done, len(data) - offset)
            if take <= 0:  # the store sent less than the size it was stat'ed at
                raise ObjectMissing(f"{self.remote.where} ended early: it was replaced")
            view[done : done + take] = data[offset : offset + take]
            done += take
            self._pos += take
        return done

    def close(self) -> None:
        self._blocks.clear()
        super().close()

    # -- blocks -------------------------------------------------------------------------------

    def _block(self, index: int) -> bytes:
        data = self._blocks.get(index)
        if data is not None:
            self._blocks.move_to_end(index)
            return data
        # Room first: the oldest block goes before the new one arrives, not after, so that a
        # read holds ``keep`` blocks at most and never one more (4 MiB each in a span's child).
        while len(self._blocks) >= self.keep:
            self._blocks.popitem(last=False)
        start = index * self.block
        end = min(self.remote.size, start + self.block) - 1
        data = self._get(start, end)
        self._blocks[index] = data
        return data

    def _get(self, start: int, end: int) -> bytes:
        import urllib3  # loaded by __init__ already

        remote = self.remote
        headers = {"Range": f"bytes={start}-{end}", "If-Match": f'"{remote.etag}"'}
        try:
            response = self._http.request(
                "GET", remote.url, headers=headers, preload_content=True, redirect=False
            )
        except urllib3.exceptions.HTTPError as exc:
            raise StorageUnavailable(
                f"reading {remote.where} bytes {start}-{end} failed: {type(exc).__name__}: {exc}"
            ) from exc
        self.stats.requests += 1
        status = response.status
        if status == 412:
            raise ObjectMissing(f"{remote.where} was replaced while reading it (etag changed)")
        if status == 404:
            raise ObjectMissing(f"{remote.where} does not exist any more")
        if status not in (200, 206):
            raise StorageUnavailable(f"reading {remote.where} bytes {start}-{end}: HTTP {status}")
        etag = (response.headers.get("ETag") or "").strip().removeprefix("W/").strip('"')
        if etag and etag != remote.etag:
            raise ObjectMissing(f"{remote.where} was replaced while reading it: etag {etag}")
        data: bytes = response.data
        if status == 200:
            # A store that ignores Range sends the whole object: take our part of it.
            if len(data) != remote.size:
                raise ObjectMissing(f"{remote.where} was replaced while reading it: size changed")
            self.stats.fetched += len(data)
            return data[start : end + 1]
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        if total.isdigit() and int(total) != remote.size:
            raise ObjectMissing(f"{remote.where} was replaced while reading it: size changed")
        self.stats.fetched += len(data)
        return data
