"""The ``vidloc`` command line: every argument parser and exit code lives in this package.

Each subcommand module registers its parser (``add_parser``) and turns the parsed arguments
into plain values for the domain function it calls; nothing outside this package sees an
``argparse.Namespace``. Developer commands arrive through the ``vidloc.commands`` entry point.

The commands are imported when :func:`main` runs, not with the package: a worker's decoder
children (multiprocessing) re-run the ``vidloc`` console script to find what its ``__main__``
defines, and importing every command there cost each child 0.8 CPU s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_TIMEOUT", "EXIT_USAGE", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    from vidloc.cli.app import main as run

    return run(argv)


def build_parser() -> argparse.ArgumentParser:
    from vidloc.cli.app import build_parser as build

    return build()
