"""Result event to webhook: delivery latency with a healthy receiver, and deliveries lost while a
receiver is down for a while and then back.

Runs on the local stack: a deliverer (vidloc.webhooks.Deliverer, its own consumer group) in a
thread, one webhook pointing at a receiver on 127.0.0.1, result events published straight to
video.results (no workers: what is measured is the deliverer). Latency is the receiver's clock
at arrival minus the publisher's just before publishing (one host, one clock).

    .venv/bin/python bench/bench_webhooks.py [--events 50] [--outage-s 60]

The issue asks for a 5-minute outage; --outage-s 300 runs that (the default is shorter).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from receiver import Receiver

from contracts import ResultEvent, decode_result, encode
from vidloc import names
from vidloc.adapters.kafka import EventPublisher, park_group_at_end
from vidloc.settings import load_settings
from vidloc.webhooks import Deliverer, Webhook, new_secret, new_webhook_id


def result(tenant: str, video_id: str) -> ResultEvent:
    return decode_result(
        {
            "schema": "vidloc.result.v1",
            "event_id": f"bench-{uuid.uuid4().hex}",
            "video_id": video_id,
            "job_id": f"job-{video_id}",
            "status": "succeeded",
            "tenant": tenant,
            "source": {"bucket": "videos", "key": f"tenants/{tenant}/uploads/{video_id}.mp4"},
            "timeline": {"bucket": "timelines", "key": names.timeline_key(video_id, tenant)},
            "created_at": datetime.now(UTC).isoformat(),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--outage-s", type=float, default=60.0)
    args = parser.parse_args()
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    settings = load_settings().model_copy(
        update={
            "webhook_allowed_networks": "127.0.0.1/32",
            "webhook_group": f"bench-webhooks-{uuid.uuid4().hex[:8]}",
            "webhook_retry_for_s": args.outage_s + 600,
        }
    )
    for topic in (names.TOPIC_RESULTS, names.TOPIC_PROGRESS):
        park_group_at_end(settings, settings.webhook_group, topic)
    receiver = Receiver()
    url = receiver.start()
    deliverer = Deliverer(settings)
    hook = Webhook(
        id=new_webhook_id(),
        tenant=tenant,
        url=url,
        secret=new_secret(),
        created_at=datetime.now(UTC),
    )
    deliverer.registry.save(hook)
    stop = threading.Event()
    thread = threading.Thread(target=deliverer.run, args=(stop,), daemon=True)
    thread.start()
    sent: dict[str, float] = {}
    try:
        with EventPublisher(settings) as publisher:
            time.sleep(3.0)  # the deliverer has joined its group

            def publish(video_id: str) -> None:
                event = result(tenant, video_id)
                sent[event.event_id] = time.time()
                publisher.publish(names.TOPIC_RESULTS, video_id, encode(event))

            for n in range(args.events):
                publish(f"healthy-{n}")
                time.sleep(0.2)
            healthy = set(sent)
            _wait(receiver, healthy, 30.0)
            latency = sorted(
                (r.at - sent[decode_result(r.body).event_id]) * 1000
                for r in receiver.delivered()
                if decode_result(r.body).event_id in healthy
            )
            print(f"healthy receiver: {len(latency)}/{len(healthy)} delivered")
            print(
                f"  latency ms: median {statistics.median(latency):.1f}, "
                f"p95 {latency[int(0.95 * (len(latency) - 1))]:.1f}, max {latency[-1]:.1f}"
            )
            receiver.down = True
            outage_start = time.monotonic()
            n = 0
            while time.monotonic() - outage_start < args.outage_s:
                publish(f"outage-{n}")
                n += 1
                time.sleep(1.0)
            receiver.down = False
            back = time.monotonic()
            during = set(sent) - healthy
            _wait(receiver, during, settings.webhook_backoff_max_s * 2 + 30)
            got = {decode_result(r.body).event_id for r in receiver.delivered()}
            failed = sum(1 for r in receiver.requests if r.status != 200)
            print(
                f"receiver down {args.outage_s:.0f} s (503), {len(during)} results published "
                f"meanwhile: {len(during & got)} delivered after it came back, "
                f"{len(during - got)} lost; {failed} failed attempts; last delivered "
                f"{_last(receiver, during) - back:.1f} s after it came back"
            )
            dup = len(receiver.delivered()) - len({r.delivery_id for r in receiver.delivered()})
            print(f"duplicate 200s (same delivery id): {dup}")
    finally:
        stop.set()
        thread.join(30)
        receiver.stop()
    return 0


def _wait(receiver: Receiver, event_ids: set[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = {decode_result(r.body).event_id for r in receiver.delivered()}
        if event_ids <= got:
            return
        time.sleep(0.2)


def _last(receiver: Receiver, event_ids: set[str]) -> float:
    """time.monotonic() of the last delivery of these events, from the receiver's wall clock."""
    arrivals = [r.at for r in receiver.delivered() if decode_result(r.body).event_id in event_ids]
    return time.monotonic() - (time.time() - max(arrivals)) if arrivals else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
