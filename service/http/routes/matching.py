"""POST /v1/verify, POST /v1/galleries/{g}/search, POST /v1/detect."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from indexing.timings import StageTimings
from service.domain.matching import use_cases as probes
from service.domain.matching.params import DetectParams, SearchParams, VerifyParams
from service.domain.schemas import DetectResponse, SearchResponse, VerifyResponse
from service.http.deps import ClientPrincipal, ComponentsDep, LivenessDep, SessionDep
from service.http.openapi import problems
from service.http.uploads import image_request_body, parse_fields, read_upload

router = APIRouter(tags=["matching"])

_VERIFY_FIELDS = {
    "gallery": {"type": "string", "format": "uuid"},
    "subject": {"type": "string", "format": "uuid"},
    "external_id": {"type": "string"},
    "liveness": {"type": "boolean"},
    "liveness_session": {"type": "string", "format": "uuid"},
    "face": {"type": "string", "description": "largest (default) or a box x,y,w,h"},
}


@router.post(
    "/v1/verify",
    response_model=VerifyResponse,
    responses=problems(404),
    openapi_extra=image_request_body("image", "reference_image", extra=_VERIFY_FIELDS),
)
async def verify(
    request: Request,
    response: Response,
    principal: ClientPrincipal,
    session: SessionDep,
    components: ComponentsDep,
    liveness: LivenessDep,
) -> VerifyResponse:
    """1:1. The probe `image` against a subject (`gallery` + `subject` or `external_id`),
    or against a second image `reference_image`."""
    upload = await read_upload(request, image_fields=("image", "reference_image"))
    params = parse_fields(VerifyParams, upload.fields)
    image = upload.images.get("image")
    reference = upload.images.get("reference_image")
    timings = StageTimings()
    result = await components.run_cpu(
        lambda: probes.verify(
            session, components, liveness, principal=principal, params=params,
            image=image, reference=reference, timings=timings,
        )
    )  # fmt: skip
    response.headers["Server-Timing"] = probes.server_timing(timings, result.latency_ms)
    return result


@router.post(
    "/v1/galleries/{gallery_id}/search",
    response_model=SearchResponse,
    openapi_extra=image_request_body(
        "image",
        extra={
            "k": {"type": "integer"},
            "threshold": {"type": "number"},
            "face": {"type": "string", "description": "largest (default), all, or x,y,w,h"},
        },
    ),
)
async def search(
    request: Request,
    response: Response,
    gallery_id: uuid.UUID,
    principal: ClientPrincipal,
    session: SessionDep,
    components: ComponentsDep,
) -> SearchResponse:
    """1:N. Subjects of the gallery whose best template clears the threshold, best first;
    an empty list means "not in this gallery"."""
    upload = await read_upload(request)
    params = parse_fields(SearchParams, upload.fields)
    image = upload.image()
    timings = StageTimings()
    result = await components.run_cpu(
        lambda: probes.search(
            session, components, principal=principal, gallery_id=gallery_id, params=params,
            image=image, timings=timings,
        )
    )  # fmt: skip
    response.headers["Server-Timing"] = probes.server_timing(timings, result.latency_ms)
    return result


@router.post(
    "/v1/detect",
    response_model=DetectResponse,
    openapi_extra=image_request_body("image", extra={"max_faces": {"type": "integer"}}),
)
async def detect(
    request: Request, principal: ClientPrincipal, components: ComponentsDep
) -> DetectResponse:
    """Faces, boxes, landmarks and quality. Nothing is stored."""
    upload = await read_upload(request)
    params = parse_fields(DetectParams, upload.fields)
    image = upload.image()
    return await components.run_cpu(lambda: probes.detect(components, image, params.max_faces))
