"""``faceprint galleries …`` and ``faceprint subjects …``: what an operator does over
HTTP, from the machine the service runs on."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.common import (
    CLI_ACTOR,
    FormatOption,
    LimitOption,
    OutputFormat,
    components_scope,
    emit,
    emit_one,
    say,
    session_scope,
)
from service.db.models import Gallery, Subject
from service.domain import galleries, subject_export, subjects

galleries_app = typer.Typer(help="Create, list, show and delete galleries.", no_args_is_help=True)
subjects_app = typer.Typer(
    help="List, show, export and delete the subjects of a gallery.", no_args_is_help=True
)

GalleryArg = Annotated[uuid.UUID, typer.Argument(help="The gallery's id.")]
GalleryOption = Annotated[uuid.UUID, typer.Option("--gallery", help="The gallery's id.")]
SubjectArg = Annotated[
    str, typer.Argument(help="The subject's id, or its external id (e.g. emp-0042).")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def gallery_row(row: Gallery, subject_count: int | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "model_id": row.active_model_id,
        "pending_model_id": row.pending_model_id,
        "store_probes": row.store_probes,
        "subject_count": subject_count,
        "created_at": row.created_at,
    }


def subject_row(row: Subject, face_count: int | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "external_id": row.external_id,
        "display_name": row.display_name,
        "face_count": face_count,
        "metadata": row.metadata_,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


@galleries_app.command("create")
def create_cmd(
    name: Annotated[str, typer.Argument(help="The gallery's name, e.g. staff.")],
    model: Annotated[
        str | None,
        typer.Option(help="Embedding model (faceprint models list); default: the service's."),
    ] = None,
    store_probes: Annotated[
        bool, typer.Option(help="Keep the probe images of verify and search calls.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create a gallery and print its id on stdout (with --format json: the gallery)."""
    with components_scope() as (session, components):
        row = galleries.create(
            session, components, principal=CLI_ACTOR, name=name, model_id=model,
            store_probes=store_probes,
        )  # fmt: skip
        session.commit()
        shown = gallery_row(row, 0)
    if fmt is OutputFormat.json:
        emit_one(shown, fmt)
    else:
        typer.echo(str(shown["id"]))
        say(f"created gallery {name!r} ({shown['model_id']})")


@galleries_app.command("list")
def list_cmd(limit: LimitOption = 50, fmt: FormatOption = OutputFormat.table) -> None:
    """List galleries (newest first) with their model and number of subjects."""
    with session_scope() as session:
        rows, _ = galleries.list_page(session, CLI_ACTOR, limit=limit, cursor=None)
        counts = galleries.counts(session, [r.id for r in rows])
        shown = [gallery_row(r, counts[r.id][0]) for r in rows]
    emit(shown, fmt, columns=("id", "name", "model_id", "subject_count"),
         empty="no galleries (create one: faceprint galleries create NAME)")  # fmt: skip


@galleries_app.command("show")
def show_cmd(gallery: GalleryArg, fmt: FormatOption = OutputFormat.table) -> None:
    """Show one gallery."""
    with session_scope() as session:
        row = galleries.get_visible(session, CLI_ACTOR, gallery)
        shown = gallery_row(row, galleries.subject_count(session, gallery))
    emit_one(shown, fmt)


@galleries_app.command("delete")
def delete_cmd(gallery: GalleryArg, yes: YesOption = False) -> None:
    """Erase a gallery: its subjects, templates, vectors and stored images (audited)."""
    with components_scope() as (session, components):
        row = galleries.get_visible(session, CLI_ACTOR, gallery)
        count = galleries.subject_count(session, gallery)
        if not yes:
            typer.confirm(f"erase gallery {row.name!r} and its {count} subjects?", abort=True)
        galleries.delete(session, components, principal=CLI_ACTOR, gallery_id=gallery)
        session.commit()
    say(f"erased gallery {gallery} ({count} subjects)")


def _subject(session: Any, gallery: uuid.UUID, ref: str) -> Subject:
    try:
        subject_id = uuid.UUID(ref)
    except ValueError:
        return subjects.get_by_external_id(session, CLI_ACTOR, gallery, ref)
    return subjects.get_in_gallery(session, CLI_ACTOR, gallery, subject_id)


@subjects_app.command("list")
def subjects_list_cmd(
    gallery: GalleryOption, limit: LimitOption = 50, fmt: FormatOption = OutputFormat.table
) -> None:
    """List a gallery's subjects (newest first) with their number of faces."""
    with session_scope() as session:
        rows, _ = subjects.list_page(session, CLI_ACTOR, gallery, limit=limit, cursor=None)
        counts = subjects.face_counts(session, [r.id for r in rows])
        shown = [subject_row(r, counts[r.id]) for r in rows]
    emit(shown, fmt, columns=("id", "external_id", "face_count", "display_name"),
         empty="no subjects in this gallery")  # fmt: skip


@subjects_app.command("show")
def subjects_show_cmd(
    subject: SubjectArg, gallery: GalleryOption, fmt: FormatOption = OutputFormat.table
) -> None:
    """Show one subject."""
    with session_scope() as session:
        row = _subject(session, gallery, subject)
        shown = subject_row(row, subjects.face_count(session, row.id))
    emit_one(shown, fmt)


@subjects_app.command("delete")
def subjects_delete_cmd(
    subject: SubjectArg, gallery: GalleryOption, yes: YesOption = False
) -> None:
    """Erase a subject: its faces, templates, vectors and stored images (audited)."""
    with components_scope() as (session, components):
        row = _subject(session, gallery, subject)
        if not yes:
            typer.confirm(f"erase subject {row.external_id!r} and its faces?", abort=True)
        subjects.delete(
            session, components, principal=CLI_ACTOR, gallery_id=gallery, subject_id=row.id
        )
        session.commit()
    say(f"erased subject {row.external_id} ({row.id})")


@subjects_app.command("export")
def subjects_export_cmd(
    subject: SubjectArg,
    gallery: GalleryOption,
    images: Annotated[bool, typer.Option(help="Include the stored originals (base64).")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Everything held about a subject, as JSON: the subject, its faces, every decision
    about it and the audit rows about it (the export is audited too)."""
    with components_scope() as (session, components):
        row = _subject(session, gallery, subject)
        document = subject_export.export(
            session, components, principal=CLI_ACTOR, gallery_id=gallery, subject_id=row.id,
            images=images,
        )  # fmt: skip
        session.commit()
    text = document.model_dump_json(indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")
        say(f"wrote {output} ({len(document.faces)} faces)")
