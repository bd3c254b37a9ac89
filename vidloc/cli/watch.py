"""``vidloc watch``: print results from ``video.results`` as they arrive, until Ctrl-C."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from contracts import ContractError, ResultEvent, decode_result, encode
from vidloc import names
from vidloc.adapters.kafka import Start, TopicReader
from vidloc.cli.exits import EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE
from vidloc.cli.stream_watch import stream_lines
from vidloc.settings import Settings
from vidloc.tenancy import event_tenant


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "watch",
        help="print job results as they arrive on video.results",
        description=(
            "Runs until Ctrl-C, --count results or --timeout. Exit codes: 0 ok (Ctrl-C, or "
            "--count reached), 2 usage, 3 --timeout passed before --count results arrived."
        ),
    )
    parser.add_argument(
        "--from-beginning", action="store_true", help="replay every stored result first"
    )
    parser.add_argument(
        "--video", action="append", default=[], metavar="ID", help="only this video (repeatable)"
    )
    parser.add_argument(
        "--stream",
        action="append",
        default=[],
        metavar="ID",
        help="follow this live stream's events as they are found, until it ends (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print each result as a JSON line")
    parser.add_argument(
        "--tenant", default=None, help="only this tenant's results (default: VIDLOC_TENANT)"
    )
    parser.add_argument("--count", type=int, default=0, help="stop after N results (0: never)")
    parser.add_argument("--timeout", type=float, default=None, help="stop after S seconds")
    parser.set_defaults(func=run)


def format_result(result: ResultEvent) -> str:
    """One line per result, as a person scanning a terminal wants it (rich markup)."""
    vid = escape(result.video_id)
    if result.status == "succeeded":
        where = f"s3://{result.timeline.bucket}/{result.timeline.key}" if result.timeline else ""
        return (
            f"[green]succeeded[/green] {vid} job {escape(result.job_id)}: "
            f"{result.summary.events} events in {result.summary.duration_s:.1f} s, "
            f"cost {result.usage.cost:.4f} {result.usage.currency} -> {escape(where)}"
        )
    error = result.error
    reason = f"{error.code}: {error.message}" if error is not None else "no reason given"
    return f"[red]failed[/red] {vid} job {escape(result.job_id)}: {escape(reason)}"


def open_results(settings: Settings, *, from_beginning: bool) -> TopicReader:
    if from_beginning:
        return TopicReader.replay(settings, {names.TOPIC_RESULTS: Start.beginning()})
    return TopicReader.tail(settings, [names.TOPIC_RESULTS])


def run(args: argparse.Namespace, settings: Settings) -> int:
    return watch(
        settings,
        from_beginning=args.from_beginning,
        videos=args.video,
        as_json=args.json,
        tenant=args.tenant or settings.tenant,
        count=args.count,
        timeout_s=args.timeout,
        streams=args.stream,
    )


def watch(
    settings: Settings,
    *,
    from_beginning: bool,
    videos: list[str],
    as_json: bool,
    count: int,
    timeout_s: float | None,
    tenant: str | None = None,
    streams: list[str] | None = None,
) -> int:
    err = Console(stderr=True)
    if count < 0 or (timeout_s is not None and timeout_s <= 0):
        err.print("vidloc watch: --count must be >= 0 and --timeout > 0")
        return EXIT_USAGE
    out = Console(highlight=False, soft_wrap=True)
    live = set(streams or ())  # a stream's results are keyed by its id, like a video's
    wanted = set(videos) | live
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    stream = open_results(settings, from_beginning=from_beginning)
    seen = 0
    try:
        err.print(f"watching {names.TOPIC_RESULTS} (Ctrl-C to stop)")
        while deadline is None or time.monotonic() < deadline:
            for record in stream.poll(timeout_s=0.5):
                if wanted and record.key not in wanted:
                    continue
                try:
                    result = decode_result(record.value)
                except ContractError as exc:
                    err.print(f"[yellow]skipping unreadable result: {escape(str(exc))}[/yellow]")
                    continue
                if tenant is not None and event_tenant(result) != tenant:
                    continue
                if as_json:
                    print(encode(result).decode("utf-8"), flush=True)
                elif result.video_id in live:
                    if result.stream is None:  # a refusal or failure: say it as usual
                        out.print(format_result(result))
                    for line in stream_lines(result):
                        out.print(line)
                else:
                    out.print(format_result(result))
                seen += 1
                if result.stream is not None and result.stream.ended:
                    live.discard(result.video_id)
                    if streams and not live and not videos:
                        return EXIT_OK  # every followed stream has ended
                if count and seen >= count:
                    return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        stream.close()
    return EXIT_TIMEOUT if count else EXIT_OK
