"""The switch of a reindex: activate the new model once coverage allows, roll back,
cancel a run, drop the old model's templates, and the report that decides."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from retrieval.base import VectorIndex
from retrieval.templates import delete_templates
from service.core.problems import Conflict, Unprocessable
from service.domain.events import REINDEX_ACTIVATED, REINDEX_ROLLED_BACK, announce
from service.domain.reindex.jobs import (
    REINDEX_KIND,
    gallery_row,
    todo_count,
)
from service.domain.reindex.report import Coverage, ShadowReport, coverage, shadow_compare


def coverage_counts(conn: Connection, gallery_id: uuid.UUID) -> dict[str, int]:
    rows = conn.execute(
        text(
            "SELECT model_id, count(*) AS n FROM templates WHERE gallery_id = :g GROUP BY model_id"
        ),
        {"g": gallery_id},
    ).all()
    return {r.model_id: int(r.n) for r in rows}


def activate(engine: Engine, *, gallery_id: uuid.UUID, force: bool = False) -> str:
    """Switch the gallery to its pending model in one statement: the next verify or
    search reads the new ``active_model_id``. Refuses while faces lack a new template
    (unless ``force``: they then stop matching until re-enrolled)."""
    with engine.begin() as conn:
        gallery = gallery_row(conn, gallery_id, lock=True)
        new, old_active = gallery.pending_model_id, gallery.active_model_id
        if new is None:
            raise Unprocessable(f"gallery {gallery_id} has no reindex to activate")
        total, done = todo_count(conn, gallery_id, new)
        if done < total and not force:
            raise Conflict(
                f"{total - done} of {total} faces have no {new} template yet; run the reindex"
                " again to finish it, or activate with --force"
            )
        conn.execute(
            text(
                "UPDATE galleries SET previous_model_id = active_model_id,"
                " active_model_id = pending_model_id, pending_model_id = NULL WHERE id = :id"
            ),
            {"id": gallery_id},
        )
        conn.execute(
            text(
                "UPDATE jobs SET status = 'done', updated_at = now() WHERE kind = :kind"
                " AND gallery_id = :g AND payload->>'to_model' = :m"
                " AND status IN ('queued', 'running')"
            ),
            {"kind": REINDEX_KIND, "g": gallery_id, "m": new},
        )
        data = {"gallery_id": str(gallery_id), "model_id": new, "previous_model_id": old_active}
        announce(conn, REINDEX_ACTIVATED, data, gallery_id)
        return str(new)


def rollback(engine: Engine, *, gallery_id: uuid.UUID) -> str:
    """Switch back to the previous model (its templates are kept until drop-old). The
    model rolled back from becomes ``previous`` so that rolling forward again works."""
    with engine.begin() as conn:
        gallery = gallery_row(conn, gallery_id, lock=True)
        old = gallery.previous_model_id
        if old is None:
            raise Unprocessable(f"gallery {gallery_id} has no previous model to roll back to")
        if gallery.pending_model_id is not None:
            raise Conflict(f"gallery {gallery_id} has a reindex under way; --cancel it first")
        conn.execute(
            text(
                "UPDATE galleries SET active_model_id = previous_model_id,"
                " previous_model_id = active_model_id WHERE id = :id"
            ),
            {"id": gallery_id},
        )
        data = {"gallery_id": str(gallery_id), "model_id": old,
                "previous_model_id": gallery.active_model_id}  # fmt: skip
        announce(conn, REINDEX_ROLLED_BACK, data, gallery_id)
        return str(old)


def cancel(engine: Engine, index: VectorIndex, *, gallery_id: uuid.UUID) -> int:
    """Abandon a reindex: the pending model's templates of this gallery are deleted."""
    with engine.begin() as conn:
        gallery = gallery_row(conn, gallery_id, lock=True)
        pending = gallery.pending_model_id
        if pending is None:
            raise Unprocessable(f"gallery {gallery_id} has no reindex to cancel")
        conn.execute(
            text("UPDATE galleries SET pending_model_id = NULL WHERE id = :id"),
            {"id": gallery_id},
        )
        conn.execute(
            text(
                "UPDATE jobs SET status = 'failed', error = 'cancelled', updated_at = now()"
                " WHERE kind = :kind AND gallery_id = :g AND status IN ('queued', 'running')"
            ),
            {"kind": REINDEX_KIND, "g": gallery_id},
        )
    return _delete_model_templates(engine, index, gallery_id, pending)


def drop_old(engine: Engine, index: VectorIndex, *, gallery_id: uuid.UUID) -> int:
    """Delete the previous model's templates of the gallery; no rollback after this."""
    with engine.begin() as conn:
        gallery = gallery_row(conn, gallery_id, lock=True)
        old = gallery.previous_model_id
        if old is None:
            raise Unprocessable(f"gallery {gallery_id} has no previous model to drop")
        conn.execute(
            text("UPDATE galleries SET previous_model_id = NULL WHERE id = :id"),
            {"id": gallery_id},
        )
    return _delete_model_templates(engine, index, gallery_id, old)


def _delete_model_templates(
    engine: Engine, index: VectorIndex, gallery_id: uuid.UUID, model_id: str
) -> int:
    deleted = 0
    while True:
        # In chunks: a huge gallery must not hold one giant transaction.
        with engine.begin() as conn:
            ids = list(
                conn.execute(
                    text(
                        "SELECT id FROM templates WHERE gallery_id = :g AND model_id = :m"
                        " LIMIT 5000"
                    ),
                    {"g": gallery_id, "m": model_id},
                ).scalars()
            )
            if not ids:
                return deleted
            deleted += delete_templates(conn, index, ids)


# -- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    coverage: Coverage
    shadow: ShadowReport


def report(
    engine: Engine,
    *,
    gallery_id: uuid.UUID,
    threshold: Callable[[str], float],
    job_id: uuid.UUID | None = None,
) -> Report:
    """Coverage and shadow comparison of the reindex under way (or, once activated, of
    the active model against the previous one) at each model's ``threshold`` (the
    registry's: ``Components.threshold``); saved on the reindex job when given."""
    with engine.begin() as conn:
        gallery = gallery_row(conn, gallery_id)
        if gallery.pending_model_id:
            old, new = gallery.active_model_id, gallery.pending_model_id
        elif gallery.previous_model_id:
            old, new = gallery.previous_model_id, gallery.active_model_id
        else:
            raise Unprocessable(f"gallery {gallery_id} has no reindex to report on")
        result = Report(
            coverage(conn, gallery_id, old, new),
            shadow_compare(conn, gallery_id, old, new, threshold=threshold),
        )
        if job_id is not None:
            saved = {
                "coverage": {
                    "faces": result.coverage.faces,
                    "old_model": old,
                    "new_model": new,
                    "old_templates": result.coverage.old_templates,
                    "new_templates": result.coverage.new_templates,
                    "failed": len(result.coverage.failed),
                },
                "shadow": result.shadow.as_dict(),
            }
            conn.execute(
                text(
                    "UPDATE jobs SET result = COALESCE(result, '{}'::jsonb) || CAST(:r AS jsonb),"
                    " updated_at = now() WHERE id = :id"
                ),
                {"id": job_id, "r": json.dumps(saved)},
            )
    return result
