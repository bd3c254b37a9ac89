"""``vidloc api keys add|list|revoke`` and the loopback rule of ``vidloc api``, in-process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from vidloc.api.keys import hash_key, load_keys_file
from vidloc.cli.app import main


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys.json"
    monkeypatch.setenv("VIDLOC_API_KEYS_FILE", str(path))
    return path


def test_add_list_revoke(keys_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "keys", "add", "--tenant", "acme", "--scopes", "submit,read"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    entry = load_keys_file(keys_file).keys[0]
    assert (entry.tenant, entry.scopes, entry.hash) == ("acme", ("read", "submit"), hash_key(key))
    assert "shown only this once" in err and key not in err
    assert key not in keys_file.read_text() and stat.S_IMODE(keys_file.stat().st_mode) == 0o600

    assert main(["api", "keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert entry.id in listed and "acme" in listed and "active" in listed and key not in listed

    assert main(["api", "keys", "revoke", entry.id]) == 0
    assert json.loads(keys_file.read_text())["keys"][0]["revoked"] is True
    assert main(["api", "keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["api", "keys", "revoke", "nosuchkey000"]) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["api", "keys", "add", "--tenant", "a/b"],
        ["api", "keys", "add", "--tenant", "acme", "--scopes", "write"],
    ],
)
def test_bad_values_are_usage_errors(keys_file: Path, argv: list[str]) -> None:
    assert main(argv) == 2 and not keys_file.exists()


def test_keys_need_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VIDLOC_API_KEYS_FILE", raising=False)
    assert main(["api", "keys", "list"]) == 2
    assert "VIDLOC_API_KEYS_FILE" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_api_without_keys_refuses_a_non_loopback_address(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VIDLOC_API_KEYS_FILE", raising=False)
    assert main(["api", "--host", host, "--no-follow"]) == 2
    err = capsys.readouterr().err
    assert f"refusing to serve on {host!r} without API keys" in err
