"""API keys: the keys file, hashing, verification and scopes. Pure except the functions at the
end, which read and replace one small file whole (what ``vidloc api keys`` calls).

A key is ``vk_<id>_<secret>``: the id is public (it names the key in logs and in
``vidloc api keys list``), the secret is 32 random bytes (urlsafe base64). The file stores
``sha256(key)`` only. Why sha256 and not scrypt/argon2: those slow down guessing of
*low-entropy* passwords; a 256-bit random secret cannot be guessed however fast the hash is,
and a deliberately slow hash on every request would hand any client a CPU lever against the
API. The id in the key lets verification compare one stored hash, with
``hmac.compare_digest``, instead of looking the hash up in a table.

Scopes: ``read`` (list, get, timeline, events, view, /readyz), ``submit`` (submitting videos;
no API route needs it yet), ``admin`` (everything ``read`` and ``submit`` allow, plus
/metrics, whose counts span every tenant).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.common import SAFE_ID_PATTERN
from vidloc.errors import ConfigError

Scope = Literal["read", "submit", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "submit", "admin")
# What each scope grants on top of its own name.
_IMPLIED: dict[Scope, frozenset[Scope]] = {
    "read": frozenset({"read"}),
    "submit": frozenset({"submit"}),
    "admin": frozenset({"admin", "read", "submit"}),
}
KEY_PREFIX = "vk_"
_KEY_RE = re.compile(r"vk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
TenantName = Annotated[str, Field(pattern=f"^{SAFE_ID_PATTERN}$")]


def grants(scopes: Iterable[Scope], scope: Scope) -> bool:
    """Whether holding ``scopes`` allows what ``scope`` names."""
    return any(scope in _IMPLIED[have] for have in scopes)


class ApiKey(BaseModel):
    """One entry of the keys file (never the key itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9]{12}$")]
    tenant: TenantName
    scopes: tuple[Scope, ...] = Field(min_length=1)
    hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    created_at: datetime
    revoked: bool = False
    revoked_at: datetime | None = None

    def grants(self, scope: Scope) -> bool:
        return grants(self.scopes, scope)


class KeysFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    keys: tuple[ApiKey, ...] = ()

    def find(self, key_id: str) -> ApiKey | None:
        return next((k for k in self.keys if k.id == key_id), None)


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The id part of a well-formed key, None for anything else (a wrong key of any shape)."""
    match = _KEY_RE.fullmatch(presented)
    return match.group(1) if match else None


def new_key() -> tuple[str, str]:
    """A fresh (id, key): the id is 60 random bits, the secret 256."""
    key_id = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:12]
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}"


def verify(keys: KeysFile, presented: str) -> tuple[ApiKey | None, str | None]:
    """(the key's entry, None) when ``presented`` is a valid, unrevoked key; else (None, why).

    ``why`` is safe to log: it names at most the claimed key id, never the presented value.
    """
    key_id = key_id_of(presented)
    if key_id is None:
        return None, "malformed key"
    entry = keys.find(key_id)
    if entry is None:
        # Hash anyway so an unknown id costs what a known one does.
        hmac.compare_digest(hash_key(presented), hash_key(""))
        return None, f"unknown key id {key_id}"
    if not hmac.compare_digest(hash_key(presented), entry.hash):
        return None, f"wrong secret for key id {key_id}"
    if entry.revoked:
        return None, f"key id {key_id} is revoked"
    return entry, None


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """``"read,submit"`` -> ("read", "submit"); ValueError naming a scope that does not exist."""
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        raise ValueError(f"scopes must be a comma-separated subset of {','.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


def add_key(
    keys: KeysFile, tenant: str, scopes: Sequence[Scope], now: datetime | None = None
) -> tuple[KeysFile, ApiKey, str]:
    """(the new file, the new entry, the key in clear: shown once, stored nowhere)."""
    key_id, key = new_key()
    while keys.find(key_id) is not None:  # 60 random bits: practically never loops
        key_id, key = new_key()
    entry = ApiKey(
        id=key_id,
        tenant=tenant,
        scopes=tuple(scopes),
        hash=hash_key(key),
        created_at=now or datetime.now(UTC),
    )
    return KeysFile(keys=(*keys.keys, entry)), entry, key


def revoke_key(keys: KeysFile, key_id: str, now: datetime | None = None) -> KeysFile:
    """The file with ``key_id`` revoked (kept, so the id stays reserved and listed)."""
    if keys.find(key_id) is None:
        raise KeyError(key_id)
    when = now or datetime.now(UTC)
    return KeysFile(
        keys=tuple(
            k.model_copy(update={"revoked": True, "revoked_at": k.revoked_at or when})
            if k.id == key_id
            else k
            for k in keys.keys
        )
    )


def active(keys: Iterable[ApiKey]) -> list[ApiKey]:
    return [k for k in keys if not k.revoked]


def load_keys_file(path: Path, *, missing_ok: bool = False) -> KeysFile:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return KeysFile()
        raise ConfigError(f"API keys file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read API keys file {path}: {exc}") from exc
    try:
        return KeysFile.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"API keys file {path} is not a valid keys file: {exc}") from exc


def write_keys_file(path: Path, keys: KeysFile) -> None:
    """Replace ``path`` atomically: readers see the old or the new file whole.

    A new file is 0600. A rewrite keeps the old file's owner, group and mode: the API may read
    it as another user (uid 10001 in the image) than the one revoking, and a file it cannot
    read would keep a revoked key working until a restart, which then fails. ConfigError, with
    nothing replaced, when the owner cannot be kept (a user other than root or the owner).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    body = keys.model_dump_json(indent=2).encode("utf-8") + b"\n"
    try:
        old: os.stat_result | None = path.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if old is not None:
                _take_owner(fh.fileno(), path, old)
            os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode) & 0o666 if old else 0o600)
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _take_owner(fd: int, path: Path, old: os.stat_result) -> None:
    """Give the file open at ``fd`` the owner and group of ``old`` (the file it replaces)."""
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) == (old.st_uid, old.st_gid):
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        raise ConfigError(
            f"cannot give the new {path} the owner {old.st_uid}:{old.st_gid} of the old one, "
            "and the API may read it as that user: run this as root or as that user"
        ) from None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of the keys file between concurrent ``keys`` commands."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create_key_in_file(path: Path, tenant: str, scopes: Sequence[Scope]) -> tuple[ApiKey, str]:
    """Add a key to the file at ``path`` (created if missing): (its entry, the key in clear)."""
    with _locked(path):
        keys, entry, key = add_key(load_keys_file(path, missing_ok=True), tenant, scopes)
        write_keys_file(path, keys)
    return entry, key


def revoke_key_in_file(path: Path, key_id: str) -> ApiKey:
    """Revoke ``key_id`` in the file; KeyError when no such key."""
    with _locked(path):
        keys = revoke_key(load_keys_file(path), key_id)
        write_keys_file(path, keys)
    found = keys.find(key_id)
    assert found is not None
    return found
