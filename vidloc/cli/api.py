"""``vidloc api``: serve the query API with uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "api", help="serve the HTTP query API and the timeline viewer"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="do not read video.results/progress (status comes from stored timelines only)",
    )
    parser.set_defaults(func=run)
    _add_keys_parser(parser)


def _add_keys_parser(api_parser: argparse.ArgumentParser) -> None:
    """``vidloc api keys add|list|revoke``: manage VIDLOC_API_KEYS_FILE (see docs/security.md)."""
    from vidloc.cli import webhooks

    sub = api_parser.add_subparsers(dest="api_command", metavar="{keys,webhooks}")
    webhooks.add_parser(sub)
    keys = sub.add_parser("keys", help="manage API keys (the file VIDLOC_API_KEYS_FILE names)")
    keys.add_argument("--file", type=Path, default=None, help="keys file (default: the setting)")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="{add,list,revoke}")
    add = ksub.add_parser("add", help="create a key; it is printed once, only its hash is stored")
    add.add_argument("--tenant", required=True, help="the tenant the key sees (tenants/<T>/)")
    add.add_argument("--scopes", default="read", help="comma-separated: read,submit,admin")
    add.set_defaults(func=run_keys_add)
    lst = ksub.add_parser("list", help="list keys (ids, tenants, scopes; never the keys)")
    lst.set_defaults(func=run_keys_list)
    revoke = ksub.add_parser("revoke", help="revoke a key by id (a running API stops accepting it)")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(func=run_keys_revoke)


def _keys_path(args: argparse.Namespace, settings: Settings) -> Path | None:
    path: Path | None = args.file or settings.api_keys_file
    if path is None:
        print("vidloc api keys: set VIDLOC_API_KEYS_FILE or pass --file", file=sys.stderr)
    return path


def run_keys_add(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.api.keys import create_key_in_file, parse_scopes
    from vidloc.tenancy import check_tenant

    path = _keys_path(args, settings)
    if path is None:
        return EXIT_USAGE
    try:
        scopes = parse_scopes(args.scopes)
        tenant = check_tenant(args.tenant)
    except ValueError as exc:
        print(f"vidloc api keys add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    entry, key = create_key_in_file(path, tenant, scopes)
    print(
        f"created key {entry.id} (tenant {entry.tenant}, scopes {','.join(entry.scopes)})",
        file=sys.stderr,
    )
    print("store it now: it is shown only this once", file=sys.stderr)
    print(key)
    return EXIT_OK


def run_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.api.keys import load_keys_file

    path = _keys_path(args, settings)
    if path is None:
        return EXIT_USAGE
    print("id            tenant            scopes              created                   state")
    for k in load_keys_file(path, missing_ok=True).keys:
        state = "revoked" if k.revoked else "active"
        created = k.created_at.isoformat(timespec="seconds")
        print(f"{k.id:<13} {k.tenant:<17} {','.join(k.scopes):<19} {created:<25} {state}")
    return EXIT_OK


def run_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.api.keys import revoke_key_in_file

    path = _keys_path(args, settings)
    if path is None:
        return EXIT_USAGE
    try:
        entry = revoke_key_in_file(path, args.key_id)
    except KeyError:
        print(f"vidloc api keys revoke: no key {args.key_id!r} in {path}", file=sys.stderr)
        return EXIT_FAILED
    print(f"revoked key {entry.id} (tenant {entry.tenant})")
    return EXIT_OK


def run(args: argparse.Namespace, settings: Settings) -> int:
    return serve_api(settings, host=args.host, port=args.port, follow_bus=not args.no_follow)


def serve_api(settings: Settings, *, host: str, port: int, follow_bus: bool) -> int:
    # Imported here: the web stack is heavy for every other command.
    import uvicorn

    from vidloc.api.app import create_app
    from vidloc.api.exposure import bind_refusal, proxy_options

    refusal = bind_refusal(host, keys_configured=settings.api_keys_file is not None)
    if refusal is not None:
        print(f"vidloc api: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    app = create_app(settings, follow_bus=follow_bus)
    # log_config=None: logging was configured once by the CLI; uvicorn must not replace it.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        **proxy_options(settings.api_trusted_proxies),
    )
    return EXIT_OK
