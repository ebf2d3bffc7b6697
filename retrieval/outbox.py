"""The outbox relay: delivers ``index_outbox`` rows to an external engine.

An outbox row only says "template X of model M changed". The relay projects what
Postgres holds *now*: X still exists → upsert its vector, X is gone → delete it. That
makes every delivery idempotent and order-free, so a crash anywhere (after the engine
write, before ``processed_at`` is committed) means the batch is delivered again with the
same result: nothing lost, nothing duplicated. Rows are claimed with ``FOR UPDATE SKIP
LOCKED`` so several relays can run; the templates they read are held ``FOR KEY SHARE``
until the engine write is done, so a concurrent delete waits and is relayed after.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import Connection

from retrieval.base import ExternalStore, IndexPoint, VectorIndex
from retrieval.vectors import from_pg

log = logging.getLogger(__name__)

ConnFactory = Callable[[], AbstractContextManager[Connection]]

_CLAIM = (
    "SELECT id, template_id, model_id FROM index_outbox WHERE processed_at IS NULL"
    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)
_CURRENT = (
    "SELECT id, subject_id, gallery_id, model_id, embedding FROM templates"
    " WHERE id = ANY(%s) FOR KEY SHARE"
)


def drain(conn_factory: ConnFactory, index: VectorIndex, *, batch: int = 500) -> int:
    """Deliver pending outbox rows, one transaction per batch, until none is left;
    returns how many rows were processed. A no-op for pgvector. ``conn_factory`` is
    e.g. ``engine.begin`` (a context manager that commits on exit)."""
    if not index.external:
        return 0
    store = _store(index)
    total = 0
    while True:
        with conn_factory() as conn:
            done = _deliver_batch(conn, index, store, batch)
        total += done
        if done < batch:
            return total


def _deliver_batch(conn: Connection, index: VectorIndex, store: ExternalStore, batch: int) -> int:
    raw = index.pg.raw(conn)
    claimed = raw.execute(_CLAIM, (batch,)).fetchall()
    if not claimed:
        return 0
    touched: dict[str, set[uuid.UUID]] = defaultdict(set)
    for _, template_id, model_id in claimed:
        touched[model_id].add(template_id)
    ids = [tid for tids in touched.values() for tid in tids]
    current = {row[0]: row for row in raw.execute(_CURRENT, (ids,)).fetchall()}
    for model_id, template_ids in touched.items():
        points = [
            IndexPoint(
                template_id=row[0],
                subject_id=row[1],
                gallery_id=row[2],
                vector=from_pg(row[4]),
            )
            for tid in template_ids
            if (row := current.get(tid)) is not None and row[3] == model_id
        ]
        gone = [tid for tid in template_ids if tid not in current]
        # A model registered after the engine was set up has no collection yet.
        index.ensure_model(conn, model_id, index.pg.dim(conn, model_id))
        store.upsert(model_id, points)
        store.delete(model_id, gone)
    raw.execute(
        "UPDATE index_outbox SET processed_at = now() WHERE id = ANY(%s)",
        ([row[0] for row in claimed],),
    )
    return len(claimed)


def pending(conn: Connection, index: VectorIndex) -> int:
    """Outbox rows not yet delivered (for health and metrics)."""
    row = (
        index.pg.raw(conn)
        .execute("SELECT count(*) FROM index_outbox WHERE processed_at IS NULL")
        .fetchone()
    )
    return int(row[0]) if row else 0


def run_relay(
    conn_factory: ConnFactory,
    index: VectorIndex,
    stop: threading.Event,
    *,
    interval_s: float = 0.5,
    batch: int = 500,
) -> None:
    """The background loop: drain, then sleep until ``stop`` is set. Failures are logged
    and retried; the outbox keeps the work. Once the outbox runs dry after deliveries the
    engine is asked to finish its index work (Qdrant Edge has no background optimizer:
    fresh points stay in a plain, exactly-scanned segment until then)."""
    dirty = False
    while not stop.is_set():
        try:
            delivered = drain(conn_factory, index, batch=batch)
            if delivered:
                dirty = True
            elif dirty:
                _optimize_all(conn_factory, index)
                dirty = False
        except Exception:  # noqa: BLE001 - keep relaying; the rows stay pending
            log.exception("index outbox relay failed; retrying")
        stop.wait(interval_s)


def _optimize_all(conn_factory: ConnFactory, index: VectorIndex) -> None:
    store = _store(index)
    with conn_factory() as conn:
        models = [row[0] for row in index.pg.raw(conn).execute("SELECT id FROM models")]
    for model_id in models:
        try:
            store.optimize(model_id)
        except Exception:  # noqa: BLE001 - a model without an index has nothing to optimize
            log.debug("no index to optimize for %s", model_id, exc_info=True)


def _store(index: VectorIndex) -> ExternalStore:
    if not isinstance(index, ExternalStore):
        raise TypeError(f"{index.name} has no external store to relay to")
    return index
