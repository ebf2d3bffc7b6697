"""Per-stage timings: a Prometheus histogram for the service, plain numbers for the
benchmark. Both are fed by the same ``StageClock``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram

STAGES = ("decode", "detect", "landmarks_align", "quality", "embed")


@dataclass
class StageTimings:
    """Seconds spent per stage, summed over everything one call did."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt


class PipelineMetrics:
    """The ``faceprint_pipeline_stage_seconds{stage=…}`` histogram, registered in the
    registry given (the service passes the process registry it exports)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "faceprint_pipeline_stage_seconds",
            "Time spent in each stage of the face pipeline.",
            ["stage"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

    @contextmanager
    def stage(self, name: str, timings: StageTimings | None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - start
            self.histogram.labels(stage=name).observe(dt)
            if timings is not None:
                timings.add(name, dt)
