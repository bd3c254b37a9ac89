"""glibc malloc settings for a worker and the processes it starts (issue 22's memory target).

Two glibc defaults keep memory a threaded worker has freed:

- **Arenas.** A thread that finds the heap busy gets an arena of its own, up to 8 per core.
  A decoded frame is freed into the arena of the thread that allocated it, and an arena gives
  memory back only from its top, so each arena keeps its high-water mark.
- **The sliding mmap threshold.** A block of 128 KiB or more gets a mapping of its own, which
  is returned to the kernel when freed; but once such a block is freed, glibc raises the
  threshold to its size (up to 32 MiB), so later blocks of that size (a 448x256 RGB frame is
  344 KB, a ranged read 4 MiB, a batch of frames pickled through the decoder pipe 2.8 MB) come
  from the arenas and stay there.

Measured on a 2-hour 1080p span run at ``VIDLOC_SPAN_JOBS=1`` (bench/README.md, "A 2-hour 1080p
span run"): the worker process peaked at 245 MB with the defaults (three thread arenas of about
32 MB each) and at about 150 MB with at most 2 arenas and a fixed 128 KiB threshold; the span
decoder child's heap went from 42 MB to 9 MB.

The worker sets both in its own process with ``mallopt`` (glibc reads its environment only at
start) and in its environment for the processes it starts (the decoder server, the decoder
children it forks and multiprocessing's resource tracker are started from that environment).
Where the operator set malloc's environment already, theirs stands and nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable, MutableMapping

log = logging.getLogger(__name__)

ARENA_MAX = 2
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept from sliding
# The same settings as environment, for processes started afterwards (glibc reads these at start).
MALLOC_ENV = {
    "MALLOC_ARENA_MAX": str(ARENA_MAX),
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
}
# mallopt's parameter numbers (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

Mallopt = Callable[[int, int], int]


def operator_set(environ: MutableMapping[str, str]) -> bool:
    """Whether malloc's environment was set by whoever started us (their settings stand)."""
    return any(name in environ for name in MALLOC_ENV) or "glibc.malloc." in environ.get(
        "GLIBC_TUNABLES", ""
    )


def limit_malloc(
    environ: MutableMapping[str, str] | None = None, mallopt: Mallopt | None = None
) -> bool:
    """Apply :data:`MALLOC_ENV` to this process and to the processes it will start.

    Call it at the entrypoint, before the threads start. False where nothing was changed: the
    operator's own malloc settings, or a C library other than glibc.
    """
    environ = os.environ if environ is None else environ
    if operator_set(environ):
        log.info("malloc: the environment's settings stand")
        return False
    mallopt = mallopt or glibc_mallopt()
    if mallopt is None:
        return False
    applied = mallopt(M_ARENA_MAX, ARENA_MAX) == 1 and (
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    )
    if not applied:
        log.warning("malloc: mallopt refused the settings; glibc's defaults stand")
        return False
    environ.update(MALLOC_ENV)
    log.info("malloc: at most %d arenas, mmap threshold %d bytes", ARENA_MAX, MMAP_THRESHOLD_BYTES)
    return True


def glibc_mallopt() -> Mallopt | None:
    """glibc's ``mallopt``, or None under another C library (musl, macOS)."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        libc = ctypes.CDLL(None)
        function = libc.mallopt
    except (AttributeError, OSError, ValueError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    found: Mallopt = function
    return found
