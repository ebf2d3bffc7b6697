"""Galleries: create, list, look up (with tenant isolation), erase."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indexing.errors import ModelUnavailable
from indexing.rates import fpir_independent
from service.core.principal import Principal
from service.core.problems import Forbidden, NotFound, Unprocessable
from service.db.model_rows import register_model
from service.db.models import Face, Gallery, Model, Subject, Template
from service.db.pagination import page, paginate
from service.domain.audit import record
from service.domain.components import Components
from service.domain.erasure import erase_gallery
from service.domain.schemas import OpenSetEstimate


def get_visible(session: Session, principal: Principal, gallery_id: uuid.UUID) -> Gallery:
    """The gallery, if this caller may see it. Another tenant's gallery is a 404, never a
    403: its existence is not disclosed."""
    gallery = session.get(Gallery, gallery_id)
    if gallery is None or not principal.sees_gallery(gallery_id):
        raise NotFound(f"no gallery {gallery_id}")
    return gallery


def ensure_model_row(session: Session, components: Components, model_id: str) -> Model:
    """The models row for ``model_id``, registered from the model registry on first use."""
    row = session.get(Model, model_id)
    if row is not None:
        return row
    try:
        spec = components.pipeline.spec(model_id)
    except ModelUnavailable as exc:
        raise Unprocessable(exc.detail, model_id=model_id) from exc
    register_model(session.connection(), spec)
    registered = session.get(Model, model_id)
    assert registered is not None
    return registered


def create(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    name: str,
    model_id: str | None,
    store_probes: bool,
) -> Gallery:
    if principal.gallery_ids is not None:
        # Its scope is fixed when the key is made: it could never see the new gallery,
        # which would be an orphan only unscoped callers could manage or erase.
        raise Forbidden(
            "a caller limited to some galleries cannot create galleries; "
            "use a key or user that sees every gallery"
        )
    model = ensure_model_row(session, components, model_id or components.default_model)
    components.ensure_model_index(session, model.id, model.dim)
    gallery = Gallery(
        name=name,
        active_model_id=model.id,
        store_probes=store_probes,
        created_by=f"{principal.kind}:{principal.id}",
    )
    session.add(gallery)
    session.flush()
    session.refresh(gallery)
    record(
        session,
        actor=principal,
        action="gallery.create",
        target_type="gallery",
        target_id=str(gallery.id),
        details={"name": name, "model_id": model.id},
    )
    return gallery


def list_page(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[Gallery], str | None]:
    query = select(Gallery)
    if principal.gallery_ids is not None:
        query = query.where(Gallery.id.in_(list(principal.gallery_ids)))
    query = paginate(
        query, created_col=Gallery.created_at, id_col=Gallery.id, limit=limit, cursor=cursor
    )
    return page(session.scalars(query).all(), limit)


def open_set_estimate(components: Components, gallery: Gallery, subjects: int) -> OpenSetEstimate:
    """How often a search for someone not enrolled will still answer with a candidate, at
    the model's threshold: 1 - (1 - FMR)^N for N subjects, comparisons taken as
    independent. On lfw-dev that overestimates (77% predicted, 48% measured at 1,467
    subjects: ``benchmarks/open_set.py``), so read it as an upper bound."""
    spec = components.pipeline.spec(gallery.active_model_id)
    return OpenSetEstimate(
        subjects=subjects,
        threshold=spec.threshold,
        fmr=spec.target_fmr,
        expected_fpir=fpir_independent(spec.target_fmr, subjects),
    )


def update(
    session: Session,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    name: str | None,
    store_probes: bool | None,
) -> Gallery:
    """Rename a gallery or turn probe storage on or off; the model changes only through
    a reindex."""
    gallery = get_visible(session, principal, gallery_id)
    changed: dict[str, object] = {}
    if name is not None and name != gallery.name:
        gallery.name = changed["name"] = name
    if store_probes is not None and store_probes != gallery.store_probes:
        gallery.store_probes = changed["store_probes"] = store_probes
    if changed:
        session.flush()
        record(
            session,
            actor=principal,
            action="gallery.update",
            target_type="gallery",
            target_id=str(gallery_id),
            details=changed,
        )
    return gallery


def subject_count(session: Session, gallery_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Subject).where(Subject.gallery_id == gallery_id)
        )
        or 0
    )


def counts(
    session: Session, gallery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int, dict[str, int]]]:
    """Subjects, faces and templates per model of each gallery: three grouped counts for
    a whole page of galleries (the console's list), not three queries per gallery."""
    if not gallery_ids:
        return {}

    def grouped(model: type[Subject] | type[Face]) -> dict[uuid.UUID, int]:
        rows = session.execute(
            select(model.gallery_id, func.count())
            .where(model.gallery_id.in_(gallery_ids))
            .group_by(model.gallery_id)
        ).all()
        return {gallery_id: count for gallery_id, count in rows}

    subjects, faces = grouped(Subject), grouped(Face)
    templates: dict[uuid.UUID, dict[str, int]] = {g: {} for g in gallery_ids}
    for gallery_id, model_id, count in session.execute(
        select(Template.gallery_id, Template.model_id, func.count())
        .where(Template.gallery_id.in_(gallery_ids))
        .group_by(Template.gallery_id, Template.model_id)
    ).all():
        templates[gallery_id][model_id] = count
    return {g: (subjects.get(g, 0), faces.get(g, 0), templates[g]) for g in gallery_ids}


def delete(
    session: Session, components: Components, *, principal: Principal, gallery_id: uuid.UUID
) -> None:
    gallery = get_visible(session, principal, gallery_id)
    faces = session.scalar(
        select(func.count()).select_from(Face).where(Face.gallery_id == gallery_id)
    )
    anonymised = erase_gallery(session, components, gallery)
    record(
        session,
        actor=principal,
        action="gallery.erase",
        target_type="gallery",
        target_id=str(gallery_id),
        details={"faces_erased": faces or 0, "history_rows_anonymised": anonymised},
    )
