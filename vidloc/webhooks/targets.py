"""Where a webhook may point: the operator's allow-list (pure, with resolution injected).

A deployment sits next to things nobody outside should reach (the S3 store, Kafka, cloud
metadata at 169.254.169.254, admin ports on loopback), and a webhook URL makes the deliverer
send requests wherever a tenant says. So by default a target must resolve to public addresses
only: loopback, private, link-local, shared, multicast and reserved addresses are refused unless
``VIDLOC_WEBHOOK_ALLOWED_NETWORKS`` lists a network holding them (``127.0.0.1/32`` for a
receiver on the same host, ``10.0.0.0/8``, ...). ``VIDLOC_WEBHOOK_ALLOWED_HOSTS``, when set,
is the only host names allowed at all (``hooks.example.com``, ``*.example.com``). The check runs
when a webhook is registered and again before every attempt (a name may resolve elsewhere
later); redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]


class TargetRefused(ValueError):
    """The URL is not a webhook target this deployment allows (the message says why)."""


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"cannot resolve {host!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class TargetPolicy:
    networks: tuple[Network, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, networks: str, hosts: str) -> TargetPolicy:
        """From the two settings (comma-separated); ValueError naming a bad entry."""
        nets = []
        for entry in (e.strip() for e in networks.split(",")):
            if entry:
                try:
                    nets.append(ipaddress.ip_network(entry, strict=False))
                except ValueError as exc:
                    raise ValueError(f"not a network: {entry!r} ({exc})") from None
        names = tuple(e.strip().lower() for e in hosts.split(",") if e.strip())
        return cls(tuple(nets), names)

    def host_allowed(self, host: str) -> bool:
        if not self.hosts:
            return True
        host = host.lower().rstrip(".")
        return any(
            host == entry or (entry.startswith("*.") and host.endswith(entry[1:]))
            for entry in self.hosts
        )

    def address_allowed(self, address: Address) -> bool:
        if any(address in net for net in self.networks):
            return True
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            return self.address_allowed(mapped)
        return address.is_global and not address.is_multicast

    def check(self, url: str, resolver: Resolver = resolve) -> None:
        """Raise TargetRefused unless ``url`` is an http(s) URL whose host is allowed and
        resolves only to allowed addresses."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise TargetRefused("a webhook URL must be http:// or https://")
        if not parts.hostname:
            raise TargetRefused("a webhook URL must name a host")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused("a webhook URL must not carry credentials")
        if not self.host_allowed(parts.hostname):
            raise TargetRefused(f"host {parts.hostname!r} is not in VIDLOC_WEBHOOK_ALLOWED_HOSTS")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise TargetRefused("a webhook URL must have a valid port") from None
        addresses = resolver(parts.hostname, port)
        if not addresses:
            raise TargetRefused(f"{parts.hostname!r} resolves to no address")
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.address_allowed(address):
                raise TargetRefused(
                    f"{parts.hostname!r} resolves to {address}, which is not a public address;"
                    " an operator can allow it with VIDLOC_WEBHOOK_ALLOWED_NETWORKS"
                )
