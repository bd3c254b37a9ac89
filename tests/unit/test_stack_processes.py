"""Starting a stack service cannot orphan it (issue 16, finding 6).

The real services are never touched: each test starts its own throw-away processes (``sleep``,
a Python HTTP server on a free port) the way `stack up` starts Kafka and versitygw. The "slow
exec" children are shells that wait before exec'ing the real program, which stretches the
window in which the old check (the command line's markers) took a starting service for dead.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit.stack.commands import _Component, _launch
from devkit.stack.layout import StackLayout
from devkit.stack.processes import (
    child_alive,
    group_alive,
    kill_group,
    owns,
    port_open,
    read_pid,
    spawn_detached,
)
from vidloc.errors import StackError

# `sleep 30` appears on the command line only once the shell has exec'd it.
SLOW_EXEC = ["sh", "-c", 'sleep 0.6; exec sleep "$((29 + 1))"']


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Process groups a test started; whatever is left of them is killed afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        kill_group(pid, grace_s=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_slow_exec_is_alive_throughout_although_its_markers_come_late(
    tmp_path: Path, started: list[int]
) -> None:
    pid = spawn_detached(SLOW_EXEC, tmp_path / "slow.log")
    started.append(pid)
    seen: list[tuple[bool, bool]] = []  # (alive, carries the markers)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        seen.append((child_alive(pid), owns(pid, ["sleep 30"])))
        time.sleep(0.02)
    assert all(alive for alive, _ in seen)
    # The window the old check fell into: alive, but the markers not (yet) there.
    assert (True, False) in seen and seen[-1] == (True, True)


def fake_component(
    name: str, port: int, ready: Callable[[float, Callable[[], bool]], None]
) -> _Component:
    return _Component(name, (port,), ("http.server", str(port)), ready)


def wait_for_port(port: int) -> Callable[[float, Callable[[], bool]], None]:
    """Like s3.wait_ready: poll until it answers, fail fast once the process is gone."""

    def ready(timeout_s: float, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise StackError("exited during start-up")
            if port_open("127.0.0.1", port):
                return
            time.sleep(0.05)
        raise StackError("did not answer")

    return ready


def test_launch_waits_through_a_slow_exec_and_records_the_service(
    tmp_path: Path, started: list[int]
) -> None:
    port = free_port()
    # "http.server" is spelled only once the shell has exec'd Python: until then the markers
    # are missing, as they were in the window that made the old check give up.
    server = 'exec "$0" -m "http.$1" "$2" --bind 127.0.0.1'
    argv = ["sh", "-c", f"sleep 0.5; {server}", sys.executable, "server", str(port)]
    layout = StackLayout(stack_dir=tmp_path, cache_dir=tmp_path)
    comp = fake_component("fake-http", port, wait_for_port(port))
    _launch(comp, argv, layout)
    pid = read_pid(layout.pid_file(comp.name))
    assert pid is not None
    started.append(pid)
    assert port_open("127.0.0.1", port)
    assert owns(pid, comp.markers)  # the recorded pid is the server itself, not a launcher


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("sleep 0.3; exec sleep 60", id="never_answers"),
        # The service forks a helper into its group before it execs.
        pytest.param("sleep 60 & sleep 0.3; exec sleep 61", id="with_a_helper_process"),
        pytest.param("trap '' TERM; sleep 0.3; exec sleep 60", id="ignores_sigterm"),
    ],
)
def test_a_failed_start_leaves_nothing_running_and_no_pid_file(
    tmp_path: Path, started: list[int], script: str
) -> None:
    layout = StackLayout(stack_dir=tmp_path, cache_dir=tmp_path)
    pids: list[int] = []

    def never_ready(timeout_s: float, alive: Callable[[], bool]) -> None:
        pids.append(read_pid(layout.pid_file("fake")) or -1)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert alive(), "a starting service was taken for dead"
            time.sleep(0.02)
        raise StackError("did not answer")

    comp = _Component("fake", (free_port(),), ("sleep",), never_ready)
    with pytest.raises(StackError, match="failed to start: did not answer"):
        _launch(comp, ["sh", "-c", script], layout)
    (pid,) = pids  # recorded before the wait began
    started.append(pid)
    assert not group_alive(pid), "part of the failed start is still running"
    assert not layout.pid_file("fake").exists()


def test_a_service_that_dies_during_start_up_is_reported_and_forgotten(tmp_path: Path) -> None:
    port = free_port()
    layout = StackLayout(stack_dir=tmp_path, cache_dir=tmp_path)
    comp = fake_component("fake-http", port, wait_for_port(port))
    with pytest.raises(StackError, match="exited during start-up"):
        _launch(comp, ["sh", "-c", "sleep 0.2; echo broken >&2; exit 3"], layout)
    assert not layout.pid_file("fake-http").exists()
    assert "broken" in (tmp_path / "logs" / "fake-http.log").read_text()
