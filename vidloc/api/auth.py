"""Who is calling: the FastAPI side of API keys (``vidloc/api/keys.py`` holds the pure part).

Every route but /healthz depends on ``require(scope)``, which answers

- 429 (``Retry-After``) when the caller's bucket is empty: per key id, or per client address
  for requests without a valid key, so guessing keys is rate limited too;
- 401 (``WWW-Authenticate: Bearer``) for no key, a malformed, unknown, wrong or revoked one;
- 403 for a valid key without the scope;

and otherwise the ``Caller``, whose tenant scopes everything the route reads. Every denial is
logged with the key's id when there is one, never with the key. Without a keys file there is no
authentication (the API then only binds loopback, see ``exposure.py``) and the caller is the
single, untenanted user.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from vidloc.api.errors import ApiError
from vidloc.api.keys import SCOPES, KeysFile, Scope, grants, key_id_of, load_keys_file, verify
from vidloc.api.ratelimit import RateLimiter, retry_after_header
from vidloc.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    key_id: str | None  # None: no keys configured
    tenant: str | None  # None: the untenanted layout
    scopes: tuple[Scope, ...] = SCOPES  # without keys, the one loopback user may do anything

    def grants(self, scope: Scope) -> bool:
        return grants(self.scopes, scope)


ANONYMOUS = Caller(key_id=None, tenant=None)


class KeyRing:
    """The keys file as it is now, so ``vidloc api keys revoke`` (and ``add``) take effect on a
    running API within ``recheck_s``.

    The file is read again when a stat of its path differs (inode, size, mtime: one stat per
    request), and at least every ``recheck_s`` whatever the stat says (a rewrite in place
    within one mtime tick, a filesystem that caches attributes). A file whose link count is 0
    was replaced where this process cannot see the new one: the path is a mount of the old
    file itself (a compose secret, a bind mount or a Kubernetes subPath of the file, not of its
    directory). Then every key is refused until a restart, loudly, rather than revoked keys
    accepted silently.
    """

    def __init__(self, path: Path, *, recheck_s: float = 1.0) -> None:
        self.path = path
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._keys = load_keys_file(path)
        self._read_at = time.monotonic()
        self._orphaned = False

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_nlink)

    def current(self) -> KeysFile:
        with self._lock:
            stamp = self._stat()
            if stamp is None:  # gone or unreadable for now: the last good file serves
                return self._keys
            if stamp[3] == 0:
                if not self._orphaned:
                    log.error(
                        "API keys file %s was replaced, but this process still sees the old "
                        "file (a mount of the file itself?): refusing every key until restarted;"
                        " mount its directory instead (docs/deploy.md)",
                        self.path,
                    )
                    self._orphaned = True
                return KeysFile()
            now = time.monotonic()
            if stamp != self._stamp or now - self._read_at >= self._recheck_s:
                self._reload(stamp, now)
            return self._keys

    def _reload(self, stamp: tuple[int, int, int, int], now: float) -> None:
        self._stamp = stamp
        self._read_at = now
        try:
            keys = load_keys_file(self.path)
        except ConfigError as exc:  # the last good file serves; tried again in recheck_s
            log.error("API keys file %s not reloaded: %s", self.path, exc)
            return
        if keys != self._keys:
            log.info("API keys file %s reloaded: %d keys", self.path, len(keys.keys))
            self._keys = keys


class Gate:
    """Authentication, rate limit and scope check, built once by create_app."""

    def __init__(self, keyring: KeyRing | None, limiter: RateLimiter) -> None:
        self.keyring = keyring
        self.limiter = limiter

    def admit(self, request: Request, scope: Scope) -> Caller:
        if self.keyring is None:
            return ANONYMOUS
        presented = _bearer(request.headers.get("authorization"))
        entry, why = (
            verify(self.keyring.current(), presented) if presented else (None, "no API key")
        )
        client = f"key:{entry.id}" if entry else f"addr:{_address(request)}"
        wait_s = self.limiter.take(client, time.monotonic())
        claimed = entry.id if entry else (key_id_of(presented) if presented else None)
        if wait_s > 0:
            log_denial(request, 429, "rate limited", claimed)
            raise ApiError(
                429,
                "rate_limited",
                "too many requests; retry later",
                {"Retry-After": retry_after_header(wait_s)},
            )
        if entry is None:
            log_denial(request, 401, why or "invalid key", claimed)
            raise ApiError(
                401,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer <key>)",
                {"WWW-Authenticate": 'Bearer realm="vidloc"'},
            )
        if not entry.grants(scope):
            log_denial(request, 403, f"lacks scope {scope}", entry.id)
            raise ApiError(403, "forbidden", f"this API key lacks the {scope!r} scope")
        return Caller(key_id=entry.id, tenant=entry.tenant, scopes=entry.scopes)


def claimed_key_id(request: Request) -> str | None:
    """The id part of the presented key, for logs (a claim: nothing is verified here)."""
    presented = _bearer(request.headers.get("authorization"))
    return key_id_of(presented) if presented else None


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    kind, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if kind.lower() == "bearer" and value else None


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def log_denial(request: Request, status: int, why: str, key_id: str | None) -> None:
    log.warning(
        "denied %s %s: %d %s (key id %s, from %s)",
        request.method,
        request.url.path,
        status,
        why,
        key_id or "-",
        _address(request),
        extra={"key_id": key_id or "-", "status": status},
    )


def gate(request: Request) -> Gate:
    found: Gate = request.app.state.gate
    return found


def require(scope: Scope) -> Callable[[Request], Caller]:
    """The dependency that admits a caller holding ``scope`` (or raises 401/403/429)."""

    def dependency(request: Request) -> Caller:
        return gate(request).admit(request, scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


Reader = Annotated[Caller, Depends(require("read"))]
Admin = Annotated[Caller, Depends(require("admin"))]
