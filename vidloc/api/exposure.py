"""Secure by default: without API keys the API answers anyone who can reach it, so it may only
listen where nobody else can (loopback); and a client is the address that connects, unless that
is a proxy the operator named. Pure apart from resolving a host name."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` names is a loopback address.

    A name is resolved (``localhost`` is loopback, a machine's own name usually is not); ""
    and wildcard addresses (0.0.0.0, ::) listen everywhere, so they are not loopback.
    """
    host = host.strip().strip("[]")
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def bind_refusal(host: str, *, keys_configured: bool) -> str | None:
    """Why the API must not bind ``host``, or None when it may."""
    if keys_configured or is_loopback_host(host):
        return None
    return (
        f"refusing to serve on {host!r} without API keys: anyone who can reach it could read "
        "every video and timeline. Create a key (vidloc api keys add --tenant NAME --scopes "
        "read) and set VIDLOC_API_KEYS_FILE, or bind 127.0.0.1."
    )


def proxy_options(trusted: str) -> dict[str, Any]:
    """uvicorn's options for ``VIDLOC_API_TRUSTED_PROXIES``: without any, no X-Forwarded-*
    header is read (uvicorn's default believes them from 127.0.0.1, or from whatever its own
    FORWARDED_ALLOW_IPS says), so a client cannot pick the address its rate limit bucket and
    denial log lines go by."""
    hosts = [h.strip() for h in trusted.split(",") if h.strip()]
    if not hosts:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": hosts}
