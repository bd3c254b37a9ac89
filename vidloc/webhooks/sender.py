"""One attempt of one delivery: a signed POST, and what its answer means."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from vidloc.backoff import compute_backoff, parse_retry_after
from vidloc.webhooks.registry import DeadLetter, EventKind, Webhook
from vidloc.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    delivery_id,
    signature,
)
from vidloc.webhooks.targets import TargetPolicy, TargetRefused

log = logging.getLogger(__name__)

USER_AGENT = "vidloc-webhooks/1"


@dataclass
class Delivery:
    """One event for one webhook, across all its attempts."""

    hook: Webhook
    kind: EventKind
    event_id: str
    video_id: str
    body: bytes
    event_at: datetime | None = None  # when the event was made (None for a replay)
    first_attempt_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attempts: int = 0
    last_error: str = ""
    retry_after_s: float | None = None
    # Where it came from on the bus (None for a replay): settled in the ledger when done.
    partition: object = None
    offset: int = -1

    @property
    def id(self) -> str:
        return delivery_id(self.hook.id, self.event_id)

    def dead_letter(self, now: datetime) -> DeadLetter:
        return DeadLetter(
            webhook_id=self.hook.id,
            tenant=self.hook.tenant,
            delivery_id=self.id,
            kind=self.kind,
            event_id=self.event_id,
            video_id=self.video_id,
            body=self.body.decode("utf-8", "replace"),
            attempts=self.attempts,
            first_attempt_at=self.first_attempt_at,
            dead_at=now,
            last_error=self.last_error[:1000],
        )


# What an attempt came to: delivered, try again later, or never (the target is not allowed).
DELIVERED, RETRY, REFUSED = "delivered", "retry", "refused"


def attempt(client: httpx.Client, delivery: Delivery, policy: TargetPolicy) -> str:
    """POST the delivery once; sets its attempts, last_error and retry_after_s."""
    delivery.attempts += 1
    delivery.retry_after_s = None
    try:
        policy.check(delivery.hook.url)
    except TargetRefused as exc:
        delivery.last_error = f"target refused: {exc}"
        return REFUSED
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: delivery.id,
        EVENT_HEADER: delivery.kind,
        SIGNATURE_HEADER: signature(delivery.hook.secret, stamp, delivery.body),
        "Vidloc-Attempt": str(delivery.attempts),
    }
    try:
        response = client.post(delivery.hook.url, content=delivery.body, headers=headers)
    except httpx.HTTPError as exc:
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:1000]
        return RETRY
    if 200 <= response.status_code < 300:
        return DELIVERED
    delivery.last_error = f"HTTP {response.status_code}"
    if response.status_code in (429, 503):
        delivery.retry_after_s = parse_retry_after(response.headers.get("retry-after"))
    return RETRY


def retry_delay(delivery: Delivery, cap_s: float) -> float:
    """Seconds before the next attempt: exponential with full jitter from 1 s, capped; a
    receiver's Retry-After (429/503) is a floor, itself capped at ``cap_s``."""
    return compute_backoff(
        delivery.attempts - 1,
        base_s=1.0,
        cap_s=cap_s,
        retry_after_s=delivery.retry_after_s,
        max_retry_after_s=cap_s,
    )


def replay(
    client: httpx.Client,
    letters: list[DeadLetter],
    hooks: dict[str, Webhook],
    policy: TargetPolicy,
) -> list[tuple[DeadLetter, str]]:
    """Attempt each dead letter once more, to its webhook as registered now; returns each with
    ``delivered`` or why not. The caller removes what was delivered."""
    out = []
    for letter in letters:
        hook = hooks.get(letter.webhook_id)
        if hook is None:
            out.append((letter, "its webhook was removed"))
            continue
        delivery = Delivery(
            hook=hook,
            kind=letter.kind,
            event_id=letter.event_id,
            video_id=letter.video_id,
            body=letter.body.encode("utf-8"),
            first_attempt_at=letter.first_attempt_at,
            attempts=letter.attempts,
        )
        outcome = attempt(client, delivery, policy)
        out.append((letter, DELIVERED if outcome == DELIVERED else delivery.last_error))
    return out
