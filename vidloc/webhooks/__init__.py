"""Webhooks: results (and progress) of a tenant's videos POSTed, signed, to its receivers.

Registrations and dead letters live in the timeline bucket (``registry``); the deliverer
(``vidloc api webhooks deliver``) reads ``video.results`` in a group of its own and never slows
the workers; ``signing`` is what a receiver checks; ``targets`` is the operator's allow-list.
docs/webhooks.md describes all of it.
"""

from vidloc.webhooks.deliverer import Deliverer
from vidloc.webhooks.registry import DeadLetter, EventKind, Webhook, WebhookRegistry, new_webhook_id
from vidloc.webhooks.sender import replay
from vidloc.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    delivery_id,
    new_secret,
    signature,
    verify,
)
from vidloc.webhooks.targets import TargetPolicy, TargetRefused

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "DeadLetter",
    "Deliverer",
    "EventKind",
    "TargetPolicy",
    "TargetRefused",
    "Webhook",
    "WebhookRegistry",
    "delivery_id",
    "new_secret",
    "new_webhook_id",
    "replay",
    "signature",
    "verify",
]
