"""The one S3 adapter (``minio`` client): works with versitygw, MinIO, AWS S3, Ceph RGW, ...

Library errors become :mod:`vidloc.errors` here: a missing key/bucket (or an object replaced
under us) is :class:`ObjectMissing`, everything else the store or the network does wrong is
:class:`StorageUnavailable`. Messages name bucket and key, never credentials.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from minio.helpers import DictType

from vidloc.adapters.ranged_reader import RemoteObject
from vidloc.errors import ConfigError, ObjectMissing, ObjectTooLarge, StorageUnavailable
from vidloc.settings import Settings

log = logging.getLogger(__name__)

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
# If-Match failing on GET means the object was replaced between stat and download.
_REPLACED_CODES = frozenset({"PreconditionFailed"})
_CHUNK_BYTES = 1024 * 1024
# 64 MiB parts: few enough requests for multi-GB videos, small enough to retry cheaply.
MULTIPART_PART_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about one object; ``etag`` is stored without quotes."""

    bucket: str
    key: str
    size: int
    etag: str
    content_type: str | None = None
    # User metadata (``x-amz-meta-*``), lower-case names without the prefix; only from stat().
    metadata: Mapping[str, str] = field(default_factory=dict)


_META_PREFIX = "x-amz-meta-"


def normalize_etag(etag: str | None) -> str:
    """S3 quotes etags in headers and notifications inconsistently; compare them bare."""
    return (etag or "").strip().removeprefix("W/").strip('"')


def parse_endpoint(url: str) -> tuple[str, bool]:
    """``http://host:port`` -> (``host:port``, secure); a bare ``host:port`` means https."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"VIDLOC_S3_ENDPOINT must be http(s)://host[:port], got {url!r}")
    if parts.path not in ("", "/"):
        raise ConfigError(f"VIDLOC_S3_ENDPOINT must not carry a path, got {url!r}")
    return parts.netloc.rsplit("@", 1)[-1], parts.scheme == "https"


class _ProgressAdapter:
    """minio wants an object with ``set_meta``/``update``; callers just want a byte callback."""

    def __init__(self, callback: Callable[[int], None]) -> None:
        self._callback = callback

    def set_meta(self, object_name: str, total_length: int) -> None:
        del object_name, total_length

    def update(self, length: int) -> None:
        self._callback(length)


class ObjectStore:
    """Blocking S3 operations used by submit, the bridge, the workers and the query API."""

    def __init__(
        self,
        settings: Settings,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        retries: int = 2,
    ) -> None:
        endpoint, secure = parse_endpoint(settings.s3_endpoint)
        self._where = f"{'https' if secure else 'http'}://{endpoint}"
        self._ca_file = settings.s3_ca_file
        # A bounded pool: a dead store fails a request in seconds, not minio's default minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.s3_ca_file or certifi.where(),
            retries=urllib3.Retry(
                total=retries,
                connect=retries,
                read=retries,
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
                raise_on_status=False,
            ),
        )
        self._client = Minio(
            endpoint,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=secure,
            region=settings.s3_region,
            http_client=http,
        )

    @property
    def endpoint(self) -> str:
        return self._where

    def _fail(self, exc: Exception, action: str, bucket: str, key: str | None) -> NoReturn:
        where = f"{bucket}/{key}" if key is not None else bucket
        if isinstance(exc, S3Error):
            if exc.code in _MISSING_CODES:
                raise ObjectMissing(f"{where} does not exist ({exc.code})") from exc
            if exc.code in _REPLACED_CODES:
                raise ObjectMissing(f"{where} was replaced while reading it") from exc
            raise StorageUnavailable(
                f"{action} {where} on {self._where} failed: {exc.code}: {exc.message}"
            ) from exc
        raise StorageUnavailable(
            f"{action} {where} on {self._where} failed: {type(exc).__name__}: {exc}"
        ) from exc

    @contextlib.contextmanager
    def _translate(self, action: str, bucket: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            self._fail(exc, action, bucket, key)

    # -- reads ------------------------------------------------------------------------------

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        with self._translate("stat", bucket, key):
            obj = self._client.stat_object(bucket, key)
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(obj.size or 0),
            etag=normalize_etag(obj.etag),
            content_type=obj.content_type,
            metadata={
                name.lower().removeprefix(_META_PREFIX): str(value)
                for name, value in (obj.metadata or {}).items()
                if name.lower().startswith(_META_PREFIX)
            },
        )

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.stat(bucket, key)
        except ObjectMissing:
            return False
        return True

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """Whole object in memory: for small JSON documents (timelines, checkpoints) only."""
        with self._translate("get", bucket, key):
            response = self._client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def download(
        self,
        bucket: str,
        key: str,
        dest: Path,
        *,
        max_bytes: int,
        expected_etag: str | None = None,
    ) -> ObjectInfo:
        """Stream the object to ``dest`` (via a ``.part`` file), never holding it in memory."""
        info = self._checked(bucket, key, max_bytes=max_bytes, expected_etag=expected_etag)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            self._stream_to(info, partial, max_bytes)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        log.debug("downloaded %s/%s (%d bytes) to %s", bucket, key, info.size, dest)
        return info

    def remote_object(
        self,
        bucket: str,
        key: str,
        *,
        max_bytes: int,
        expected_etag: str | None = None,
        expires_s: int = 6 * 3600,
    ) -> RemoteObject:
        """The object's current version, to be read by ranges (:class:`RangedReader`) where
        credentials do not go: a presigned GET, its etag and size, checked as :meth:`download`
        checks them."""
        info = self._checked(bucket, key, max_bytes=max_bytes, expected_etag=expected_etag)
        return RemoteObject(
            url=self.presigned_get_url(bucket, key, expires_s),
            etag=info.etag,
            size=info.size,
            where=f"{bucket}/{key}",
            ca_file=self._ca_file,
        )

    def _checked(
        self, bucket: str, key: str, *, max_bytes: int, expected_etag: str | None
    ) -> ObjectInfo:
        """The object's current version: ObjectMissing when it is not ``expected_etag``
        (another upload under the key), ObjectTooLarge over ``max_bytes``."""
        info = self.stat(bucket, key)
        if expected_etag is not None and info.etag != normalize_etag(expected_etag):
            raise ObjectMissing(
                f"{bucket}/{key} was replaced: etag {info.etag} != expected "
                f"{normalize_etag(expected_etag)}"
            )
        if info.size > max_bytes:
            raise ObjectTooLarge(f"{bucket}/{key} is {info.size} bytes, over the {max_bytes} limit")
        return info

    def _stream_to(self, info: ObjectInfo, path: Path, max_bytes: int) -> None:
        bucket, key = info.bucket, info.key
        written = 0
        with self._translate("download", bucket, key):
            # If-Match pins the exact version we stat'ed: a replacement in between is a 412.
            response = self._client.get_object(
                bucket, key, request_headers={"If-Match": f'"{info.etag}"'}
            )
            try:
                got = normalize_etag(response.headers.get("ETag"))
                if got and got != info.etag:
                    raise ObjectMissing(f"{bucket}/{key} was replaced while downloading it")
                with path.open("wb") as out:
                    for block in response.stream(_CHUNK_BYTES):
                        written += len(block)
                        # The stat size is advisory; the bytes actually sent are what count.
                        if written > max_bytes:
                            raise ObjectTooLarge(
                                f"{bucket}/{key} grew past the {max_bytes} byte limit while "
                                "downloading"
                            )
                        out.write(block)
            finally:
                response.close()
                response.release_conn()

    def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]:
        """A small object and its etag (bare) from one GET: the version a conditional write
        names (:meth:`put_bytes_if`, :meth:`delete_if`)."""
        with self._translate("get", bucket, key):
            response = self._client.get_object(bucket, key)
            try:
                return response.read(), normalize_etag(response.headers.get("ETag"))
            finally:
                response.close()
                response.release_conn()

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        with self._translate("list", bucket, prefix or None):
            for obj in self._client.list_objects(bucket, prefix=prefix or None, recursive=True):
                if obj.object_name is not None and not obj.is_dir:
                    yield obj.object_name

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Like :meth:`list_keys`, with each object's size and etag (what a sync compares)."""
        with self._translate("list", bucket, prefix or None):
            for obj in self._client.list_objects(bucket, prefix=prefix or None, recursive=True):
                if obj.object_name is not None and not obj.is_dir:
                    yield ObjectInfo(
                        bucket, obj.object_name, int(obj.size or 0), normalize_etag(obj.etag)
                    )

    def presigned_get_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        with self._translate("presign", bucket, key):
            return self._client.presigned_get_object(
                bucket, key, expires=timedelta(seconds=expires_s)
            )

    # -- uploads by others (presigned) --------------------------------------------------------
    # The query API hands these to clients: a single PUT, or a multipart upload whose parts
    # are PUT to presigned URLs and which the API completes with the parts' etags.

    def presigned_put_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        with self._translate("presign", bucket, key):
            return self._client.presigned_put_object(
                bucket, key, expires=timedelta(seconds=expires_s)
            )

    def start_multipart(
        self, bucket: str, key: str, content_type: str = "application/octet-stream"
    ) -> str:
        """Open a multipart upload; returns its upload id."""
        with self._translate("start multipart", bucket, key):
            return self._client._create_multipart_upload(
                bucket, key, {"Content-Type": content_type}
            )

    def presigned_part_url(
        self, bucket: str, key: str, upload_id: str, part_number: int, expires_s: int = 3600
    ) -> str:
        with self._translate("presign", bucket, key):
            return self._client.get_presigned_url(
                "PUT",
                bucket,
                key,
                expires=timedelta(seconds=expires_s),
                extra_query_params={"uploadId": upload_id, "partNumber": str(part_number)},
            )

    def uploaded_parts(self, bucket: str, key: str, upload_id: str) -> dict[int, tuple[str, int]]:
        """{part number: (etag, size)} of what has been uploaded so far (first 1000 parts)."""
        with self._translate("list parts", bucket, key):
            listing = self._client._list_parts(bucket, key, upload_id)
        return {
            int(p.part_number): (normalize_etag(p.etag), int(p.size or 0)) for p in listing.parts
        }

    def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Join the (part number, etag) parts into the object; its info as the store has it."""
        from minio.datatypes import Part

        with self._translate("complete multipart", bucket, key):
            self._client._complete_multipart_upload(
                bucket, key, upload_id, [Part(n, f'"{normalize_etag(e)}"') for n, e in parts]
            )
        return self.stat(bucket, key)

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        with self._translate("abort multipart", bucket, key):
            self._client._abort_multipart_upload(bucket, key, upload_id)

    # -- writes -----------------------------------------------------------------------------

    def upload_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        progress: Callable[[int], None] | None = None,
        metadata: Mapping[str, str] | None = None,
        part_size: int = MULTIPART_PART_BYTES,
    ) -> ObjectInfo:
        """Upload a file; minio switches to multipart above one ``part_size`` (>= 5 MiB).

        ``metadata`` becomes ``x-amz-meta-<name>`` headers (ASCII values only, as S3 requires).
        """
        size = path.stat().st_size
        kwargs: dict[str, Any] = {"part_size": part_size}
        if metadata:
            kwargs["metadata"] = {f"{_META_PREFIX}{k}": v for k, v in metadata.items()}
        if progress is not None:
            kwargs["progress"] = _ProgressAdapter(progress)
        with self._translate("upload", bucket, key):
            result = self._client.fput_object(
                bucket,
                key,
                str(path),
                content_type=content_type or "application/octet-stream",
                **kwargs,
            )
        etag = normalize_etag(result.etag)
        if not etag:
            # Some stores omit the etag on multipart completion; ask rather than guess.
            return self.stat(bucket, key)
        log.debug("uploaded %s to %s/%s (%d bytes)", path, bucket, key, size)
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=size,
            etag=etag,
            content_type=content_type,
            metadata=dict(metadata or {}),
        )

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/json"
    ) -> ObjectInfo:
        with self._translate("put", bucket, key):
            result = self._client.put_object(
                bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=len(data),
            etag=normalize_etag(result.etag),
            content_type=content_type,
        )

    def delete(self, bucket: str, key: str) -> None:
        """Remove an object; deleting what is already gone is not an error (S3 semantics)."""
        with self._translate("delete", bucket, key):
            self._client.remove_object(bucket, key)

    # -- conditional writes (compare-and-set) -----------------------------------------------
    # S3's If-Match / If-None-Match on PUT and If-Match on DELETE (AWS S3 since 2024, MinIO,
    # versitygw: tests/integration/test_work_markers.py). minio-py has no parameter for them on
    # writes, so these go through its signed-request primitive. A store that ignores the
    # headers makes them plain writes: compare-and-set degrades to last-writer-wins.

    def put_bytes_if(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        content_type: str = "application/json",
    ) -> ObjectInfo | None:
        """Write ``data`` only if the object is still at ``etag`` (None: only if there is no
        object); None when it is not (412): then nothing was written."""
        headers: DictType = {"Content-Type": content_type}
        if etag is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = f'"{normalize_etag(etag)}"'
        try:
            response = self._client._execute("PUT", bucket, key, body=data, headers=headers)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            if _precondition_failed(exc):
                return None
            self._fail(exc, "put", bucket, key)
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=len(data),
            etag=normalize_etag(response.headers.get("ETag")),
            content_type=content_type,
        )

    def delete_if(self, bucket: str, key: str, etag: str) -> bool:
        """Remove the object only if it is still at ``etag``; False when it is not (412).
        What is gone already counts as removed."""
        headers: DictType = {"If-Match": f'"{normalize_etag(etag)}"'}
        try:
            self._client._execute("DELETE", bucket, key, headers=headers)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            if _precondition_failed(exc):
                return False
            if isinstance(exc, S3Error) and exc.code in _MISSING_CODES:
                return True
            self._fail(exc, "delete", bucket, key)
        return True

    def ensure_bucket(self, bucket: str) -> bool:
        """Create ``bucket`` if absent; returns whether it was created."""
        with self._translate("create bucket", bucket):
            if self._client.bucket_exists(bucket):
                return False
            try:
                self._client.make_bucket(bucket)
            except S3Error as exc:
                if exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return False
                raise
        log.info("created bucket %s", bucket)
        return True


def _precondition_failed(exc: Exception) -> bool:
    return isinstance(exc, S3Error) and exc.code == "PreconditionFailed"
