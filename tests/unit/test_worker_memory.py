"""What keeps a worker's memory down (issue 22: < 300 MB tree RSS on a 2-hour 1080p span run):
glibc's malloc settings at the entrypoint, and a decoder server without the HTTP stack."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from workers.frames.isolated import _PRELOAD
from workers.service.malloc import (
    M_ARENA_MAX,
    M_MMAP_THRESHOLD,
    MALLOC_ENV,
    glibc_mallopt,
    limit_malloc,
)


class Mallopt:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


def test_limit_malloc_sets_this_process_and_the_ones_it_starts() -> None:
    environ = {"PATH": "/usr/bin"}
    mallopt = Mallopt()

    assert limit_malloc(environ, mallopt)

    assert mallopt.calls == [(M_ARENA_MAX, 2), (M_MMAP_THRESHOLD, 128 * 1024)]
    assert environ == {
        "PATH": "/usr/bin",
        "MALLOC_ARENA_MAX": "2",
        "MALLOC_MMAP_THRESHOLD_": "131072",
    }


@pytest.mark.parametrize(
    "operator_env",
    [
        pytest.param({"MALLOC_ARENA_MAX": "4"}, id="arena-max"),
        pytest.param({"MALLOC_MMAP_THRESHOLD_": "65536"}, id="mmap-threshold"),
        pytest.param({"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}, id="tunables"),
    ],
)
def test_the_operators_malloc_settings_stand(operator_env: dict[str, str]) -> None:
    environ = dict(operator_env)
    mallopt = Mallopt()

    assert not limit_malloc(environ, mallopt)

    assert mallopt.calls == []
    assert environ == operator_env


def test_other_glibc_tunables_do_not_stop_the_settings() -> None:
    environ = {"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}

    assert limit_malloc(environ, Mallopt())

    assert environ["MALLOC_ARENA_MAX"] == MALLOC_ENV["MALLOC_ARENA_MAX"]


def test_a_refused_setting_leaves_the_environment_alone() -> None:
    environ: dict[str, str] = {}

    assert not limit_malloc(environ, Mallopt(answer=0))

    assert environ == {}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_mallopt_is_found_under_glibc() -> None:
    assert glibc_mallopt() is not None


def test_the_decoder_server_preloads_no_http_stack() -> None:
    # Every decoder child is forked with the server's pages; only a span's child reads by
    # ranges and imports urllib3 (and ssl) for itself.
    code = (
        "import importlib, sys\n"
        f"for name in {_PRELOAD!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('urllib3', 'ssl', 'http.client') if m in sys.modules))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"
