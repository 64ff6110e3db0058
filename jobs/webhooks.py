"""Webhook delivery, at least once: events wait on their own JetStream queue
(``jobs/events.py``) and are POSTed by every worker's sender; a 2xx acks the event, anything
else (or no answer) naks it with a doubling delay (capped), for up to ``WEBHOOK_ATTEMPTS``
deliveries, so a receiver down for a while still gets every event later.

Signed as Standard Webhooks: ``webhook-id`` (the event's id: the same for a re-delivery, for
the receiver to de-dup), ``webhook-timestamp`` (unix seconds) and ``webhook-signature`` =
``v1,`` + base64(HMAC-SHA256(secret, id.timestamp.body)); a secret ``whsec_<base64>`` is
decoded, any other text is used as it is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request

from stemserve.jobs.broker import WorkQueue
from stemserve.jobs.config import WEBHOOK_MAX_BACKOFF_S

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_bytes(secret), f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str, event_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    found = {"content-type": "application/json", "webhook-id": event_id, "webhook-timestamp": str(timestamp)}
    if secret:
        found["webhook-signature"] = sign(secret, event_id, timestamp, body)
    return found


def post(url: str, secret: str, event_id: str, body: bytes) -> int:
    """Blocking: one delivery; the HTTP status, 0 when the receiver did not answer."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers(secret, event_id, body))
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


class WebhookSender:
    def __init__(self, queue: WorkQueue, secret: str, backoff_s: float, metrics=None) -> None:
        self.queue, self.secret, self.backoff_s, self.metrics = queue, secret, backoff_s, metrics

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            delivery = await self.queue.pull(1.0)
            if delivery is None:
                continue
            try:
                event = json.loads(delivery.data)
                body = json.dumps(event["body"], separators=(",", ":")).encode()
                status = await asyncio.to_thread(post, event["url"], self.secret, event["id"], body)
                if self.metrics is not None:
                    self.metrics.webhook_deliveries.labels(outcome="ok" if 200 <= status < 300 else "failed").inc()
                if 200 <= status < 300:
                    await delivery.ack()
                    continue
                delay = min(self.backoff_s * 2 ** (delivery.attempt - 1), WEBHOOK_MAX_BACKOFF_S)
                log.info("webhook %s to %s answered %s; again in %.1f s", event["id"], event["url"], status, delay)
                await delivery.nak(delay_s=delay)
            except Exception:  # the event comes back after its lease
                log.exception("webhook delivery failed")
