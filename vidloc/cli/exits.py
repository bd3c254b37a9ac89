"""Exit codes, the same for every ``vidloc`` subcommand (README and docs/api.md list them)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a job, a lookup or a command failed
EXIT_USAGE = 2  # argparse's own code for a bad command line; ours for bad values too
EXIT_TIMEOUT = 3  # a --timeout passed before what was waited for arrived
EXIT_BUSY = 4  # what was asked about is busy (a video's own job still runs): retry later
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it
