"""Secure by default: without API keys the API answers anyone who can reach it, so it may only
listen where nobody else can (loopback). Pure apart from resolving a host name."""

from __future__ import annotations

import ipaddress
import socket


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
