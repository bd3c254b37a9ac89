"""``vidloc api webhooks``: register, list and remove webhooks, run the deliverer, and see and
replay dead letters (docs/webhooks.md). Registrations live in the timeline bucket, so these
commands reach what a running API and deliverer see."""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vidloc.settings import Settings


def add_parser(sub: Any) -> None:
    hooks = sub.add_parser("webhooks", help="webhooks: register, deliver, dead letters")
    wsub = hooks.add_subparsers(
        dest="webhooks_command", required=True, metavar="{add,list,remove,deliver,dead,replay}"
    )
    add = wsub.add_parser("add", help="register a webhook; its signing secret is printed once")
    add.add_argument("url")
    add.add_argument("--tenant", default=None, help="whose videos (default: no tenant)")
    add.add_argument("--events", default="result", help="result,progress (default: result)")
    add.add_argument("--key-id", default=None, help="only videos this API key submitted")
    add.set_defaults(func=run_add)
    lst = wsub.add_parser("list", help="list webhooks (never their secrets)")
    lst.add_argument("--tenant", default=None)
    lst.set_defaults(func=run_list)
    remove = wsub.add_parser("remove", help="remove a webhook by id")
    remove.add_argument("webhook_id", metavar="ID")
    remove.add_argument("--tenant", default=None)
    remove.set_defaults(func=run_remove)
    deliver = wsub.add_parser("deliver", help="run the deliverer (reads video.results)")
    deliver.set_defaults(func=run_deliver)
    dead = wsub.add_parser("dead", help="list dead-lettered deliveries")
    dead.add_argument("--tenant", default=None, help="one tenant's (default: every tenant's)")
    dead.set_defaults(func=run_dead)
    replay = wsub.add_parser("replay", help="try dead-lettered deliveries again, once each")
    replay.add_argument("--tenant", default=None, help="one tenant's (default: every tenant's)")
    replay.add_argument("--webhook", action="append", default=[], help="only these webhooks")
    replay.set_defaults(func=run_replay)


def _registry(settings: Settings) -> Any:
    from vidloc.adapters.object_store import ObjectStore
    from vidloc.webhooks import WebhookRegistry

    return WebhookRegistry(ObjectStore(settings), settings.timeline_bucket)


def _policy(settings: Settings) -> Any:
    from vidloc.webhooks import TargetPolicy

    return TargetPolicy.parse(settings.webhook_allowed_networks, settings.webhook_allowed_hosts)


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.tenancy import check_tenant
    from vidloc.webhooks import TargetRefused, Webhook, new_secret, new_webhook_id

    events = [e.strip() for e in args.events.split(",") if e.strip()]
    try:
        if args.tenant is not None:
            check_tenant(args.tenant)
        if not events or any(e not in ("result", "progress") for e in events):
            raise ValueError("--events must be a comma-separated subset of result,progress")
        _policy(settings).check(args.url)
    except (ValueError, TargetRefused) as exc:
        print(f"vidloc api webhooks add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    hook = Webhook(
        id=new_webhook_id(),
        tenant=args.tenant,
        key_id=args.key_id,
        url=args.url,
        events=tuple(dict.fromkeys(events)),
        secret=new_secret(),
        created_at=datetime.now(UTC),
    )
    _registry(settings).save(hook)
    print(f"registered webhook {hook.id} -> {hook.url}", file=sys.stderr)
    print("its signing secret (shown only this once):", file=sys.stderr)
    print(hook.secret)
    return EXIT_OK


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    print("id                   tenant            events            scope      url")
    for h in _registry(settings).of_tenant(args.tenant):
        scope = f"key {h.key_id}" if h.key_id else "tenant"
        print(f"{h.id:<20} {h.tenant or '-':<17} {','.join(h.events):<17} {scope:<10} {h.url}")
    return EXIT_OK


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    if not _registry(settings).remove(args.tenant, args.webhook_id):
        print(f"vidloc api webhooks remove: no webhook {args.webhook_id!r}", file=sys.stderr)
        return EXIT_FAILED
    print(f"removed webhook {args.webhook_id}")
    return EXIT_OK


def run_deliver(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from vidloc.metrics import Metrics, serve_metrics
    from vidloc.webhooks import Deliverer

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    metrics = Metrics()
    with serve_metrics(metrics, settings.webhook_metrics_port):
        Deliverer(settings, metrics=metrics).run(stop)
    return EXIT_OK


def run_dead(args: argparse.Namespace, settings: Settings) -> int:
    letters = _registry(settings).dead_letters(args.tenant, every_tenant=args.tenant is None)
    print("dead at                    webhook              delivery                              "
          "attempts  video / last error")  # fmt: skip
    for d in letters:
        print(
            f"{d.dead_at.isoformat(timespec='seconds'):<26} {d.webhook_id:<20} "
            f"{d.delivery_id:<37} {d.attempts:<9} {d.video_id} / {d.last_error}"
        )
    return EXIT_OK


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from vidloc.webhooks import replay

    registry = _registry(settings)
    letters = registry.dead_letters(args.tenant, args.webhook, every_tenant=args.tenant is None)
    hooks = {h.id: h for h in registry.all()}
    failed = 0
    with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
        for letter, outcome in replay(client, letters, hooks, _policy(settings)):
            if outcome == "delivered":
                registry.exhume(letter)
                print(f"delivered {letter.delivery_id} to {letter.webhook_id}")
            else:
                failed += 1
                print(f"not delivered {letter.delivery_id} to {letter.webhook_id}: {outcome}")
    return EXIT_FAILED if failed else EXIT_OK
