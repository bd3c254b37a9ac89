"""`python -m devkit.stack up|down|status|logs [component]` until the main CLI wires it in."""

from __future__ import annotations

import argparse
import logging
import sys

from devkit.stack.commands import ACTIONS, COMPONENTS, stack_command
from vidloc.errors import ConfigError
from vidloc.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.stack")
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("component", nargs="?", choices=COMPONENTS)
    parser.add_argument("--brokers", type=int, default=None, help="up: Kafka nodes (1 or 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # kafka-python reports every refused connection while the broker boots; that is expected.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return stack_command(args.action, settings, args.component, brokers=args.brokers)


if __name__ == "__main__":
    sys.exit(main())
