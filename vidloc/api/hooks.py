"""``/webhooks``: a tenant's receivers of results (scope ``submit``). The registry and the
deliverer are ``vidloc.webhooks``; docs/webhooks.md is the receiver's side."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from vidloc.api.auth import Caller
from vidloc.api.errors import ApiError
from vidloc.api.front import Front, Submitter
from vidloc.api.models import ErrorResponse
from vidloc.client.models import WebhookCreated, WebhookInfo, WebhookList, WebhookSpec
from vidloc.webhooks import TargetRefused, Webhook, new_secret, new_webhook_id

log = logging.getLogger(__name__)

MAX_WEBHOOKS_PER_TENANT = 20
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "the body is not JSON (bad_request)"),
        (401, "no API key, or not a valid one"),
        (403, "the API key lacks the submit scope"),
        (404, "no such webhook (webhook_not_found)"),
        (409, "too many webhooks for the tenant (too_many_webhooks)"),
        (422, "invalid request, or a target the deployment does not allow (target_not_allowed)"),
        (429, "rate limited (see Retry-After)"),
        (503, "S3 unreachable"),
    )
}
WebhookId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{16}$")]

router = APIRouter(tags=["webhooks"])


def info_of(hook: Webhook) -> WebhookInfo:
    return WebhookInfo(
        id=hook.id,
        url=hook.url,
        events=list(hook.events),
        scope="key" if hook.key_id is not None else "tenant",
        created_at=hook.created_at,
    )


def _visible(caller: Caller, hook: Webhook) -> bool:
    # A key-scoped webhook belongs to its key; tenant-wide ones to every submit key of the
    # tenant (the tenant is already the registry's prefix).
    return hook.key_id is None or hook.key_id == caller.key_id or caller.grants("admin")


@router.post("/webhooks", status_code=201, response_model=WebhookCreated, responses=_ERRORS)
def add_webhook(door: Front, caller: Submitter, spec: WebhookSpec) -> WebhookCreated:
    """Register a receiver; the answer holds its signing secret, shown this once. It gets every
    event created from now on."""
    try:
        door.policy.check(spec.url)
    except TargetRefused as exc:
        raise ApiError(422, "target_not_allowed", str(exc)) from exc
    if len(door.registry.of_tenant(caller.tenant)) >= MAX_WEBHOOKS_PER_TENANT:
        raise ApiError(409, "too_many_webhooks", f"at most {MAX_WEBHOOKS_PER_TENANT} per tenant")
    if spec.scope == "key" and caller.key_id is None:
        raise ApiError(422, "invalid_request", "scope 'key' needs an API key")
    hook = Webhook(
        id=new_webhook_id(),
        tenant=caller.tenant,
        key_id=caller.key_id if spec.scope == "key" else None,
        url=spec.url,
        events=tuple(dict.fromkeys(spec.events)),
        secret=new_secret(),
        created_at=datetime.now(UTC),
    )
    door.registry.save(hook)
    log.info("webhook %s registered (key id %s)", hook.id, caller.key_id or "-")
    return WebhookCreated(**info_of(hook).model_dump(), secret=hook.secret)


@router.get("/webhooks", response_model=WebhookList, responses=_ERRORS)
def list_webhooks(door: Front, caller: Submitter) -> WebhookList:
    """The tenant's webhooks (never their secrets)."""
    hooks = [info_of(h) for h in door.registry.of_tenant(caller.tenant) if _visible(caller, h)]
    return WebhookList(webhooks=hooks)


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=_ERRORS)
def remove_webhook(door: Front, caller: Submitter, webhook_id: WebhookId) -> Response:
    """Stop deliveries to it (deliveries already under way may still arrive)."""
    hook = door.registry.get(caller.tenant, webhook_id)
    if hook is None or not _visible(caller, hook):
        raise ApiError(404, "webhook_not_found", f"no webhook {webhook_id!r}")
    door.registry.remove(caller.tenant, webhook_id)
    return Response(status_code=204)
