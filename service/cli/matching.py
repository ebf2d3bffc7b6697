"""``faceprint verify`` and ``faceprint search``: the two questions, asked from the
machine the service runs on, through the same use cases as ``POST /v1/verify`` and
``POST /v1/galleries/{id}/search`` (each answer is a history row, caller ``cli``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import (
    CLI_ACTOR,
    FormatOption,
    OutputFormat,
    components_scope,
    emit,
    emit_one,
    say,
)
from service.domain.matching import use_cases
from service.domain.matching.params import SearchParams, VerifyParams

PhotoArg = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="The probe photo (JPEG, PNG, …).")
]


def verify(
    photo: PhotoArg,
    gallery: Annotated[uuid.UUID | None, typer.Option(help="The gallery of the subject.")] = None,
    subject: Annotated[
        str | None, typer.Option(help="The subject's id or external id (e.g. emp-0042).")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Compare with this photo instead."),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """1:1: is this photo the subject (or the person in --reference)?"""
    from service.domain.liveness.runtime import build_runtime

    if reference is None and (gallery is None or subject is None):
        say("error: give --gallery and --subject, or --reference")
        raise typer.Exit(code=2)
    params = VerifyParams(gallery=gallery)
    if subject is not None:
        try:
            params.subject = uuid.UUID(subject)
        except ValueError:
            params.external_id = subject
    with components_scope() as (session, components):
        answer = use_cases.verify(
            session, components, build_runtime(components.settings, components.pipeline),
            principal=CLI_ACTOR, params=params, image=photo.read_bytes(),
            reference=reference.read_bytes() if reference else None,
        )  # fmt: skip
    if fmt is OutputFormat.json:
        emit_one(answer.model_dump(mode="json"), fmt)
        return
    emit_one(
        {
            "match": answer.match, "similarity": round(answer.similarity, 4),
            "threshold": answer.threshold, "model_id": answer.model_id,
            "external_id": answer.external_id, "verification_id": answer.verification_id,
        },
        fmt,
    )  # fmt: skip


def search(
    photo: PhotoArg,
    gallery: Annotated[uuid.UUID, typer.Option(help="The gallery to search.")],
    k: Annotated[int, typer.Option(min=1, max=100, help="At most this many candidates.")] = 5,
    threshold: Annotated[
        float | None, typer.Option(help="Another threshold than the model's calibrated one.")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """1:N: who in the gallery is this? Candidates best first, each subject once; none
    when nobody clears the threshold."""
    params = SearchParams(k=k, threshold=threshold)
    with components_scope() as (session, components):
        answer = use_cases.search(
            session, components, principal=CLI_ACTOR, gallery_id=gallery, params=params,
            image=photo.read_bytes(),
        )  # fmt: skip
    if fmt is OutputFormat.json:
        emit_one(answer.model_dump(mode="json"), fmt)
        return
    rows = [c.model_dump() for c in answer.candidates]
    emit(rows, fmt, columns=("external_id", "display_name", "similarity", "subject_id"),
         empty=f"nobody in the gallery at or above {answer.threshold}")  # fmt: skip
