"""Enrollment and face records: /v1/galleries/{g}/subjects/{s}/faces…"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse, Response

from service.db.models import Face
from service.domain import face_images, faces
from service.domain.schemas import FacePage, FacePublic, JobAccepted
from service.http.deps import ComponentsDep, OperatorPrincipal, SessionDep
from service.http.openapi import problems
from service.http.uploads import face_selector, image_request_body, read_upload

router = APIRouter(prefix="/v1/galleries/{gallery_id}/subjects/{subject_id}/faces", tags=["faces"])


def face_public(
    row: Face,
    model_ids: list[str],
    active_model: str | None,
    other_faces: list[dict[str, float]] | None = None,
) -> FacePublic:
    return FacePublic(
        id=row.id,
        subject_id=row.subject_id,
        gallery_id=row.gallery_id,
        status=row.status,
        bbox=row.bbox,  # type: ignore[arg-type]
        landmarks=row.landmarks,
        quality=row.quality,
        model_id=active_model if active_model in model_ids else None,
        model_ids=model_ids,
        created_at=row.created_at,
        other_faces=other_faces,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FacePublic,
    responses={202: {"model": JobAccepted}, **problems(409)},
    openapi_extra=image_request_body("image"),
)
async def enroll(
    request: Request,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
    face: str = Query(
        "auto",
        description=(
            "Which face to enrol: `auto` (the one that dominates the photo by size and "
            "position; refused when none does), `single` (exactly one face or 422), "
            "`largest`, or a box `x,y,w,h` in pixels (the face overlapping it best)."
        ),
    ),
    allow_multiple: bool = Query(
        False, deprecated=True, description="Older spelling of `face=largest`."
    ),
    check_quality: bool = Query(
        True, description="Refuse faces below the quality thresholds (size, blur, exposure, pose)."
    ),
    dedupe: bool = Query(
        False,
        description="Refuse (409 duplicate-identity) a face that matches another subject of "
        "the gallery at the model's threshold, naming that subject.",
    ),
    run_async: bool = Query(
        False, alias="async", description="Store now, embed in the worker: 202 with a job id."
    ),
) -> FacePublic | JSONResponse:
    selector = face_selector("largest" if allow_multiple else face)
    upload = await read_upload(request)
    image = upload.image()
    if run_async:
        accepted = await components.run_cpu(
            lambda: faces.enroll_async(
                session, components, principal=principal, gallery_id=gallery_id,
                subject_id=subject_id, image=image, face=selector,
                check_quality=check_quality, dedupe=dedupe,
            )
        )  # fmt: skip
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202)
    row, model_ids, active, others = await components.run_cpu(
        lambda: faces.enroll_sync(
            session, components, principal=principal, gallery_id=gallery_id,
            subject_id=subject_id, image=image, face=selector, check_quality=check_quality,
            dedupe=dedupe,
        )
    )  # fmt: skip
    return face_public(row, model_ids, active, others)


@router.get("", response_model=FacePage)
def list_faces(
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> FacePage:
    rows, next_cursor, active = faces.list_page(
        session, principal, gallery_id, subject_id, limit=limit, cursor=cursor
    )
    return FacePage(items=[face_public(r, m, active) for r, m in rows], next_cursor=next_cursor)


@router.get("/{face_id}", response_model=FacePublic)
def get_face(
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
) -> FacePublic:
    row, model_ids, active = faces.get(session, principal, gallery_id, subject_id, face_id)
    return face_public(row, model_ids, active)


@router.get(
    "/{face_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def face_image(
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
    size: Literal["thumbnail", "original"] = Query(
        "original", description="`thumbnail`: a JPEG crop around the face, at most 160 px."
    ),
) -> Response:
    """The enrolled photo, decrypted. Never cached (`Cache-Control: no-store`): a
    shared proxy or the browser's disk must not keep biometric data."""
    image = await components.run_cpu(
        lambda: face_images.read(
            session, components, principal, gallery_id, subject_id, face_id,
            thumbnail=size == "thumbnail",
        )
    )  # fmt: skip
    return Response(
        image.data,
        media_type=image.media_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.delete("/{face_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_face(
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
) -> None:
    faces.delete(session, components, principal, gallery_id, subject_id, face_id)
