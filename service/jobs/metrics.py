"""The worker's Prometheus metrics, on a registry of its own (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.queue_depth = Gauge(
            "faceprint_worker_queue_depth", "Jobs queued and due.", registry=self.registry
        )
        self.queue_oldest = Gauge(
            "faceprint_worker_queue_oldest_seconds",
            "How long the oldest due job has waited (0 with none).",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "faceprint_worker_batch_size",
            "Jobs per processed batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.faces = Counter(
            "faceprint_worker_faces", "Faces embedded and indexed.", registry=self.registry
        )
        self.faces_per_second = Gauge(
            "faceprint_worker_faces_per_second",
            "Throughput of the last batch.",
            registry=self.registry,
        )
        self.jobs = Counter(
            "faceprint_worker_jobs",
            "Jobs finished, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.failures = Counter(
            "faceprint_worker_failures",
            "Job attempts that failed, by reason.",
            ["reason"],
            registry=self.registry,
        )
