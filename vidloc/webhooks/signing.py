"""Signing a delivery, and checking one (pure).

As Stripe and GitHub do: the body is signed with HMAC-SHA256 under the webhook's secret,
over ``<unix timestamp>.<body>``, and sent as ``Vidloc-Signature: t=<timestamp>,v1=<hex>``.
The timestamp in the signed text stops a captured delivery from being replayed later than the
receiver's tolerance; ``Vidloc-Delivery`` is the same for every attempt of one delivery, so a
receiver deduplicates on it. docs/webhooks.md shows the receiver's side in ten lines.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Vidloc-Signature"
DELIVERY_HEADER = "Vidloc-Delivery"
EVENT_HEADER = "Vidloc-Event"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300.0


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def delivery_id(webhook_id: str, event_id: str) -> str:
    """Stable per (webhook, event): every retry, replay and redelivery carries the same id."""
    digest = hashlib.sha256(f"{webhook_id}\x00{event_id}".encode()).hexdigest()
    return f"dlv_{digest[:32]}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether ``header`` (the Vidloc-Signature value) signs ``body`` under ``secret`` within
    ``tolerance_s`` of ``now`` (unix seconds). Any v1 entry may match (secret rotation)."""
    fields = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for name, _, value in fields if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, v) for name, _, v in fields if name == "v1")
