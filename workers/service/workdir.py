"""Each worker process downloads into a directory of its own, and cleans up after the dead.

A job's temporary directory is removed on every Python path (``TemporaryDirectory``), but a
SIGKILL or an OOM kill leaves the video it was reading behind. So every worker works under
``<work_dir>/worker-<pid>``, and a starting worker removes the directories of workers whose
process no longer exists: disk does not fill up with the downloads of crashed workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "worker-"


def base_dir(work_dir: Path | None) -> Path:
    return work_dir if work_dir is not None else Path(tempfile.gettempdir()) / "vidloc-work"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_dead_workers(base: Path) -> list[Path]:
    """Remove ``worker-<pid>`` directories of processes that are gone; returns what went."""
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for entry in base.iterdir():
        if not entry.is_dir() or not entry.name.startswith(PREFIX):
            continue
        pid_text = entry.name.removeprefix(PREFIX)
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
        log.info("removed %s left behind by a worker that died", entry)
    return removed


def own_work_dir(work_dir: Path | None) -> Path:
    """Sweep the dead, then create and return this process's own directory."""
    base = base_dir(work_dir)
    base.mkdir(parents=True, exist_ok=True)
    sweep_dead_workers(base)
    mine = base / f"{PREFIX}{os.getpid()}"
    mine.mkdir(exist_ok=True)
    return mine


def release_work_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
