"""Webhook delivery metrics. One set per process (like the HTTP metrics), on the default
registry that ``/metrics`` exports; ``faceprint worker`` adds them to its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DELIVERIES = Counter(
    "faceprint_webhook_deliveries",
    "Webhook delivery attempts, by outcome (delivered, retry, failed, disabled).",
    ["outcome"],
)
LATENCY = Histogram(
    "faceprint_webhook_delivery_seconds",
    "Time of one delivery attempt (connect to response).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge(
    "faceprint_webhook_queue_depth",
    "Deliveries pending (due now or waiting for a retry).",
    multiprocess_mode="max",
)
OLDEST_PENDING = Gauge(
    "faceprint_webhook_oldest_pending_seconds",
    "Age of the oldest pending delivery (0 when none).",
    multiprocess_mode="max",
)


def register_into(registry: CollectorRegistry) -> None:
    for collector in (DELIVERIES, LATENCY, QUEUE_DEPTH, OLDEST_PENDING):
        registry.register(collector)
