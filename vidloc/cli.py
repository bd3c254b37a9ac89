"""The ``vidloc`` command: settings are loaded here, once, and passed down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vidloc.errors import VidlocError
from vidloc.logs import configure_logging
from vidloc.settings import Settings, load_settings

# Exit codes shared by every subcommand.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

Command = Callable[[argparse.Namespace, Settings], int]


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.stack import stack_command

    return stack_command(args.action, settings, args.component)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.main import run_worker

    if args.localizer:
        settings = settings.model_copy(update={"localizer": args.localizer})
    return run_worker(settings)


def _fake_vlm(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.fake_vlm.__main__ import main as fake_main

    return fake_main(["--host", args.host, "--port", str(args.port)])


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.demo import run_demo

    return run_demo(settings, timeout_s=args.timeout, fake_model=args.fake_model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidloc", description="Find when things happen in videos."
    )
    parser.add_argument("--log-level", default=None, help="override VIDLOC_LOG_LEVEL")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="bring the local Kafka + S3 stack up or down")
    stack.add_argument("action", choices=["up", "down", "status", "logs", "init"])
    stack.add_argument("component", nargs="?", default=None, help="kafka | s3 (for logs)")
    stack.set_defaults(func=_stack)

    worker = sub.add_parser("worker", help="consume video.ingest and produce timelines")
    worker.add_argument("--localizer", choices=["vlm", "cv"], default=None)
    worker.set_defaults(func=_worker)

    fake = sub.add_parser("fake-vlm", help="run the fake OpenAI-compatible model server")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8900)
    fake.set_defaults(func=_fake_vlm)

    demo = sub.add_parser(
        "demo", help="stack up, worker + bridge, upload a sample video, print its timeline"
    )
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.add_argument(
        "--fake-model",
        action="store_true",
        help="run the in-repo fake model server and the vlm localizer (no key needed)",
    )
    demo.set_defaults(func=_demo)

    from producers.bridge import add_bridge_parser
    from producers.submit import add_submit_parser

    add_submit_parser(sub)
    add_bridge_parser(sub)
    from vidloc.api.cli import add_api_parser
    from vidloc.viewer.cli import add_timeline_parser
    from vidloc.watch import add_watch_parser

    add_api_parser(sub)
    add_timeline_parser(sub)
    add_watch_parser(sub)
    from vidloc.evaluation.cli import add_eval_parser
    from workers.estimate import add_estimate_parser

    add_eval_parser(sub)
    add_estimate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except VidlocError as exc:
        print(f"vidloc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        args.log_level or settings.log_level,
        json_lines=args.log_json or settings.log_json,
        secrets=settings.secrets(),
    )
    command: Command = args.func
    try:
        return command(args, settings)
    except VidlocError as exc:
        print(f"vidloc {args.command}: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
