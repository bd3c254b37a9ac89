"""The developer commands, plugged into ``vidloc`` through the ``vidloc.commands`` entry point.

The product CLI never names this package: it loads whatever registers under that entry point
group, so an installation without the devkit (the runtime image, the wheel) simply has no
``stack``, ``fake-vlm`` or ``demo`` command.
"""

from __future__ import annotations

import argparse
from typing import Any

from vidloc.settings import Settings


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from devkit.stack import stack_command

    return stack_command(args.action, settings, args.component, brokers=args.brokers)


def _fake_vlm(args: argparse.Namespace, settings: Settings) -> int:
    from devkit.fake_vlm.__main__ import main as fake_main

    return fake_main(["--host", args.host, "--port", str(args.port)])


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from devkit.demo import run_demo

    return run_demo(settings, timeout_s=args.timeout, fake_model=args.fake_model)


def register(sub: Any) -> None:
    """Add the developer subcommands to the ``vidloc`` parser's subparsers."""
    stack = sub.add_parser("stack", help="bring the local Kafka + S3 stack up or down (devkit)")
    stack.add_argument("action", choices=["up", "down", "status", "logs", "init"])
    stack.add_argument("component", nargs="?", default=None, help="kafka | s3 (for logs)")
    stack.add_argument(
        "--brokers",
        type=int,
        default=None,
        help="up: Kafka nodes (1, or 3 for a replicated cluster); default: what the stack has",
    )
    stack.set_defaults(func=_stack)

    fake = sub.add_parser("fake-vlm", help="run the fake OpenAI-compatible model server (devkit)")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8900)
    fake.set_defaults(func=_fake_vlm)

    demo = sub.add_parser(
        "demo", help="stack up, worker + bridge, upload a sample video, print its timeline (devkit)"
    )
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.add_argument(
        "--fake-model",
        action="store_true",
        help="run the in-repo fake model server and the vlm localizer (no key needed)",
    )
    demo.set_defaults(func=_demo)
