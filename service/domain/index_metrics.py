"""How far the external vector index lags behind PostgreSQL: the ``index_outbox`` rows
not yet delivered, measured when ``/metrics`` is scraped (always 0 on pgvector, whose
index is written in the same transaction)."""

from __future__ import annotations

import logging

from prometheus_client import Gauge
from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

OUTBOX_PENDING = Gauge(
    "faceprint_index_outbox_pending",
    "Template changes not yet delivered to the external vector index.",
    multiprocess_mode="max",
)
OUTBOX_OLDEST = Gauge(
    "faceprint_index_outbox_oldest_seconds",
    "Age of the oldest undelivered template change (0 when none).",
    multiprocess_mode="max",
)


def measure_outbox(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            pending, oldest = conn.execute(
                text(
                    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)"
                    " FROM index_outbox WHERE processed_at IS NULL"
                )
            ).one()
    except Exception:  # noqa: BLE001 - a scrape must answer; /readyz reports the database
        log.warning("could not measure the index outbox", exc_info=True)
        return
    OUTBOX_PENDING.set(int(pending))
    OUTBOX_OLDEST.set(float(oldest))
