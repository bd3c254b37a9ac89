"""Background processes of the local stack: start detached, record, recognise, stop.

A pid alone is not proof of ownership (pids are reused), so every check also reads
``/proc/<pid>/cmdline`` and requires the markers the stack put on that command line.
Nothing here ever looks a process up by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from vidloc.errors import StackError

log = logging.getLogger(__name__)

# The shell backgrounds the command and prints its pid, then exits: the service is re-parented to
# init at once, so no Python process ever has to reap it (no zombies, no ResourceWarning) and it
# outlives the `vidloc stack up` that started it.
_LAUNCHER = '"$@" </dev/null >>"$VIDLOC_STACK_LOG" 2>&1 &\necho $!\n'


def spawn_detached(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in its own session with output appended to ``log_path``; return its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    full_env["VIDLOC_STACK_LOG"] = str(log_path)
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", _LAUNCHER, "vidloc-stack-launcher", *argv],
            env=full_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            start_new_session=True,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackError(f"could not launch {argv[0]}: {exc}") from exc
    try:
        return int(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise StackError(f"launcher printed no pid for {argv[0]}: {done.stdout!r}") from exc


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
