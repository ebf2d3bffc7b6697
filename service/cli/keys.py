"""``faceprint keys …``: create, list and revoke API keys."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated, Any

import typer

from service.cli.common import (
    CLI_ACTOR,
    FormatOption,
    LimitOption,
    OutputFormat,
    emit,
    say,
    session_scope,
)
from service.core.principal import Role
from service.core.settings import get_settings
from service.domain.auth import key_admin

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def _where() -> str:
    settings = get_settings()
    if settings.embedded:
        return f"the embedded PostgreSQL in {settings.data_dir}"
    return "the database of FACEPRINT_DATABASE_URL"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key, e.g. the system that uses it.")],
    role: Annotated[Role, typer.Option(help="admin, operator or client.")],
    gallery: Annotated[
        list[uuid.UUID] | None,
        typer.Option(help="Restrict the key to this gallery id (repeatable); omit for all."),
    ] = None,
    rate_limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Requests a minute for this key (0: no limit); omit for "
            "FACEPRINT_RATE_LIMIT_PER_MINUTE.",
        ),
    ] = None,
) -> None:
    """Create an API key and print it on stdout (only the key). It is shown once and stored
    hashed: keep it."""
    with session_scope() as session:
        new = key_admin.create(
            session, name=name, role=role, galleries=gallery, actor=None, rate_limit=rate_limit
        )
        session.commit()
        sys.stdout.write(new.plaintext + "\n")
    # A key written to another data dir's database is rejected by the running service:
    # say where this one went.
    say(f"key {new.row.prefix} ({role.value}) written to {_where()}")


@keys_app.command("list")
def keys_list(
    limit: LimitOption = 50,
    revoked: Annotated[bool, typer.Option(help="Include revoked keys.")] = True,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List API keys (newest first): id, prefix (the part after fp_ in the key), role,
    galleries, last use. The keys themselves are never shown again."""
    with session_scope() as session:
        rows, _ = key_admin.list_page(session, limit=limit, cursor=None)
        shown: list[dict[str, Any]] = [key_admin.public(r) for r in rows]
    if not revoked:
        shown = [r for r in shown if r["revoked_at"] is None]
    for row in shown:
        row["state"] = "revoked" if row["revoked_at"] else "active"
        if fmt is OutputFormat.table:
            listed = row["galleries"]
            row["galleries"] = "all" if listed is None else ", ".join(map(str, listed))
    columns = ("id", "prefix", "name", "role", "galleries", "state", "last_used_at")
    hint = "no API keys (create one: faceprint keys create --name admin --role admin)"
    emit(shown, fmt, columns=columns, empty=hint)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or its prefix (see keys list).")],
) -> None:
    """Revoke an API key: it stops authenticating at once."""
    with session_scope() as session:
        row = key_admin.find(session, key)
        already = row.revoked_at is not None
        key_admin.revoke(session, key_id=row.id, actor=CLI_ACTOR)
        session.commit()
    state = "was already revoked" if already else "revoked"
    say(f"{row.prefix} ({row.name}, {row.id}) {state}")
