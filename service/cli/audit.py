"""``faceprint audit list`` and ``faceprint history list``: read who changed what, and
every verify, search and liveness decision."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import typer

from service.cli.common import (
    CLI_ACTOR,
    FormatOption,
    LimitOption,
    OutputFormat,
    emit,
    session_scope,
)
from service.domain import audit, history

audit_app = typer.Typer(help="Read the audit log (who changed what).", no_args_is_help=True)
history_app = typer.Typer(
    help="Read the verification history (every verify, search and liveness decision).",
    no_args_is_help=True,
)

SinceOption = Annotated[
    datetime | None,
    typer.Option(help="Only rows at or after this time (ISO 8601, UTC if no zone)."),
]
UntilOption = Annotated[datetime | None, typer.Option(help="Only rows before this time.")]


def _utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@audit_app.command("list")
def audit_list(
    action: Annotated[
        str | None,
        typer.Option(
            help="Only this action (gallery.create), or a family ending in a dot (subject.)."
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor id (a key or user id, or cli).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only rows about this object id.")] = None,
    target_type: Annotated[
        str | None, typer.Option(help="Only this kind of object: gallery, subject, api_key, …")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: LimitOption = 50,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The most recent audit rows, newest first."""
    with session_scope() as session:
        rows, _ = audit.list_page(
            session, CLI_ACTOR, limit=limit, cursor=None, action=action, actor_id=actor,
            target_type=target_type, target_id=target, since=_utc(since), until=_utc(until),
        )  # fmt: skip
        shown: list[dict[str, Any]] = [
            {
                "id": r.id, "at": r.at, "actor": f"{r.actor_type}:{r.actor_id}",
                "action": r.action, "target_type": r.target_type, "target_id": r.target_id,
                "details": r.details, "request_id": r.request_id,
            }
            for r in rows
        ]  # fmt: skip
    emit(shown, fmt, columns=("at", "actor", "action", "target_id"),
         empty="no audit rows match")  # fmt: skip


@history_app.command("list")
def history_list(
    gallery: Annotated[uuid.UUID | None, typer.Option(help="Only calls on this gallery.")] = None,
    subject: Annotated[
        uuid.UUID | None, typer.Option(help="Only calls about this subject id.")
    ] = None,
    kind: Annotated[
        Literal["verify", "search", "liveness"] | None, typer.Option(help="Only this kind of call.")
    ] = None,
    match: Annotated[
        bool | None, typer.Option("--match/--no-match", help="Only matches, or only non-matches.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: LimitOption = 50,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The most recent decisions, newest first."""
    with session_scope() as session:
        rows, _ = history.list_page(
            session, CLI_ACTOR, limit=limit, cursor=None, gallery_id=gallery, subject_id=subject,
            kind=kind, match=match, since=_utc(since), until=_utc(until),
        )  # fmt: skip
        shown: list[dict[str, Any]] = [
            {
                "id": r.id, "created_at": r.created_at, "kind": r.kind,
                "caller": f"{r.principal_type}:{r.principal_id}", "gallery_id": r.gallery_id,
                "subject_id": r.subject_id, "external_id": r.external_id,
                "model_id": r.model_id, "similarity": r.similarity, "threshold": r.threshold,
                "match": r.match, "candidates": r.candidates,
                "liveness_decision": r.liveness_decision, "latency_ms": r.latency_ms,
                "request_id": r.request_id,
            }
            for r in rows
        ]  # fmt: skip
    # The ids and the rest are in --format json; the table keeps to what fits a terminal.
    columns = ("created_at", "kind", "external_id", "similarity", "threshold", "match")
    emit(shown, fmt, columns=columns, empty="no history rows match")
