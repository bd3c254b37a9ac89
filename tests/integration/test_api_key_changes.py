"""Key changes reach a running API as the compose deployment mounts the keys file.

The API is served in-process and reads ``VIDLOC_API_KEYS_FILE`` through a model of the api
service's mounts in docker-compose.yml: a mounted directory is a symlink to the host's directory
(the container sees every rename in it); a file mounted by itself (a bind mount, or a compose
secret) is the host file's inode pinned when the container started, as a bind mount pins it: a
``/proc/self/fd`` path to a descriptor opened before the change. The operator changes keys on the
host with the real ``vidloc api keys`` commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
import yaml
from apistack import isolated_settings

from devkit.serve_api import serve_in_thread
from vidloc.api.app import create_app
from vidloc.api.keys import create_key_in_file, key_id_of
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
# How long a change may take to reach the running API (the keys file is checked at least once a
# second, and on every request whose stat differs).
BOUND_S = 3.0
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


class ContainerView:
    """Where the api container finds the keys file, built on the host from the compose file."""

    def __init__(self, root: Path) -> None:
        doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
        api = doc["services"]["api"]
        inside = PurePosixPath(api["environment"]["VIDLOC_API_KEYS_FILE"])
        host_dir = root / "host"
        host_dir.mkdir()
        # Whichever variable the compose file takes the host path from, point it here.
        env = {"API_KEYS_DIR": str(host_dir), "API_KEYS_FILE": str(host_dir / inside.name)}
        self._fds: list[int] = []
        self.host_file: Path | None = None
        self._pin: Path | None = None
        self.path: Path | None = None
        mounts = [_interpolate(str(v), env).split(":") for v in api.get("volumes") or []]
        mounts += [
            [_interpolate(doc["secrets"][name]["file"], env), f"/run/secrets/{name}"]
            for name in api.get("secrets") or []
        ]
        for source, target, *_ in mounts:
            target_path = PurePosixPath(target)
            if target_path == inside:  # the file itself is mounted
                self.host_file = Path(source)
                self._pin = self.host_file
            elif inside.is_relative_to(target_path):  # a directory holding it
                self.host_file = Path(source) / inside.relative_to(target_path)
                link = root / "container" / target_path.relative_to("/")
                link.parent.mkdir(parents=True)
                link.symlink_to(source, target_is_directory=True)
                self.path = link / inside.relative_to(target_path)
        assert self.host_file is not None, f"the api service does not mount {inside}"

    def start(self) -> Path:
        """The path the API reads, fixed as a container start would fix its mounts."""
        if self._pin is not None:
            fd = os.open(self._pin, os.O_RDONLY)
            self._fds.append(fd)
            self.path = Path(f"/proc/self/fd/{fd}")
        assert self.path is not None
        return self.path

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)


@pytest.fixture
def view(tmp_path: Path) -> Iterator[ContainerView]:
    found = ContainerView(tmp_path)
    try:
        yield found
    finally:
        found.close()


def _keys_cli(host_file: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "vidloc", "api", "keys", "--file", str(host_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _status(base_url: str, key: str) -> int:
    response = httpx.get(
        f"{base_url}/videos", headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    )
    return response.status_code


def _within(base_url: str, key: str, wanted: int) -> tuple[int, float]:
    """(the last status seen, seconds until it was ``wanted``, or the bound)."""
    started = time.monotonic()
    while True:
        status = _status(base_url, key)
        elapsed = time.monotonic() - started
        if status == wanted or elapsed > BOUND_S:
            return status, elapsed
        time.sleep(0.1)


def test_revoked_and_added_keys_reach_a_running_api(stack: Settings, view: ContainerView) -> None:
    assert view.host_file is not None
    host_file = view.host_file
    _, kept = create_key_in_file(host_file, "acme", ("read",))
    _, doomed = create_key_in_file(host_file, "acme", ("read",))
    settings = isolated_settings(stack, "keychange").model_copy(
        update={"api_keys_file": view.start()}
    )
    base_url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    try:
        assert _status(base_url, doomed) == 200
        doomed_id = key_id_of(doomed)
        assert doomed_id is not None
        _keys_cli(host_file, "revoke", doomed_id)
        status, took = _within(base_url, doomed, 401)
        assert status == 401, f"a revoked key still answered {status} after {took:.1f} s"
        # Only that key: the others keep working, and a key added now is accepted.
        assert _status(base_url, kept) == 200
        added = _keys_cli(host_file, "add", "--tenant", "acme", "--scopes", "read")
        status, took = _within(base_url, added, 200)
        assert status == 200, f"a new key answered {status} after {took:.1f} s"
    finally:
        stop()
