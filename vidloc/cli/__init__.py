"""The ``vidloc`` command line: every argument parser and exit code lives in this package.

Each subcommand module registers its parser (``add_parser``) and turns the parsed arguments
into plain values for the domain function it calls; nothing outside this package sees an
``argparse.Namespace``. Developer commands arrive through the ``vidloc.commands`` entry point.
"""

from vidloc.cli.app import build_parser, main
from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_TIMEOUT", "EXIT_USAGE", "build_parser", "main"]
