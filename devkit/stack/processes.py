"""Background processes of the local stack: start detached, record, recognise, stop.

A pid alone is not proof of ownership (pids are reused), so every check also reads
``/proc/<pid>/cmdline`` and requires the markers the stack put on that command line.
Nothing here ever looks a process up by name.

Except while starting: a service is spawned directly (no shell in between) in a session of its
own, and until it answers, "is it alive" asks the kernel about our own child (``waitpid``), not
its command line. Reading ``/proc/<pid>/cmdline`` races the exec: in the middle of ``execve``
it is empty, so a start-up check once took a healthy gateway for dead, the stop that followed
read it too and did not recognise it either, and the gateway ran on, unrecorded, holding its
port. A start that fails now kills its whole process group, and forgets the pid only once
nothing of it is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from vidloc.errors import StackError

log = logging.getLogger(__name__)


def spawn_detached(
    argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None
) -> int:
    """Start ``argv`` in a new session (its pid is its process group) with stdin from /dev/null
    and output appended to ``log_path``; return its pid.

    ``posix_spawn`` returns once the child has exec'd (glibc suspends the parent until then), so
    the pid names the service itself from the start. It is our child until we exit; a `stack up`
    exits right away, and a longer-lived caller reaps it in :func:`child_alive` / :func:`stop`.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    spawn = os.posix_spawn if "/" in argv[0] else os.posix_spawnp
    try:
        return spawn(
            argv[0],
            list(argv),
            dict(os.environ if env is None else env),
            file_actions=actions,
            setsid=True,
        )
    except OSError as exc:
        raise StackError(f"could not launch {argv[0]}: {exc}") from exc


def child_alive(pid: int) -> bool:
    """Whether a process this one started is still running (reaping it if it exited).

    Exact and free of the exec race; for a pid that is not our child (started by an earlier
    `stack up`) it falls back to the command line being readable.
    """
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return read_cmdline(pid) is not None
    return done == 0


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's group; it exists
        return True
    return True


def kill_group(pgid: int, *, grace_s: float = 5.0) -> bool:
    """SIGTERM the process group a failed start left, SIGKILL what outlives ``grace_s``.

    ``pgid`` is the pid :func:`spawn_detached` returned (a session leader). True once nothing
    of the group is left; False if something survived even SIGKILL.
    """
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while True:
            child_alive(pgid)  # reap the leader, or it stays in the group as a zombie
            if not group_alive(pgid):
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if sig == signal.SIGTERM:
            log.warning("process group %d ignored SIGTERM for %.0f s; killing it", pgid, grace_s)
    return False


def read_cmdline(pid: int) -> str | None:
    """The process's command line joined by spaces, or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The state letter follows the parenthesised command name, which may itself hold spaces.
        if stat[stat.rindex(")") + 2 :].startswith(("Z", "X")):
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


def owns(pid: int, markers: Sequence[str]) -> bool:
    """True when ``pid`` is alive and its command line carries every marker."""
    cmdline = read_cmdline(pid)
    return cmdline is not None and all(m in cmdline for m in markers)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def running_pid(pid_file: Path, markers: Sequence[str]) -> int | None:
    """The recorded pid if that process is still the one the stack started, else None."""
    pid = read_pid(pid_file)
    if pid is not None and owns(pid, markers):
        return pid
    return None


def stop(pid: int, markers: Sequence[str], *, grace_s: float = 30.0) -> bool:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. False if it was not ours to stop."""
    if not owns(pid, markers):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child (same process started it): reap it
        if read_cmdline(pid) is None:
            return True
        time.sleep(0.2)
    if owns(pid, markers):
        log.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        kill_deadline = time.monotonic() + 10
        while read_cmdline(pid) is not None and time.monotonic() < kill_deadline:
            time.sleep(0.1)
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
