"""What the commands share: a session or the components without a server, a progress
bar, tables or JSON on stdout, one-line failures."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from retrieval.base import VectorIndex
from retrieval.factory import build_index
from service.core.datadir import load_secrets, served_elsewhere, served_here
from service.core.logging import configure_logging
from service.core.principal import Principal, Role
from service.core.problems import Problem
from service.core.settings import get_settings
from service.db.runtime import database, sessions
from service.db.session import make_engine, make_sessionmaker
from service.domain.components import Components, build_components, index_config

console = Console(stderr=True)
# Tables go to stdout, so that `faceprint … | less` shows them; messages go to stderr.
stdout = Console()

# Whoever runs the CLI on the service's machine holds its data dir (its secrets, its
# database): an admin over every gallery.
CLI_ACTOR = Principal(kind="cli", id="cli", role=Role.admin)


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", help="table (for people) or json (for scripts, on stdout)."),
]
LimitOption = Annotated[int, typer.Option(min=1, max=200, help="At most this many, newest first.")]


def warn_if_served_elsewhere() -> None:
    """A second terminal without the service's FACEPRINT_DATA_DIR would silently start
    a database of its own (a key made there is one the service rejects): say so."""
    settings = get_settings()
    if not settings.embedded or served_here(settings.data_dir):
        return
    for other, pid in served_elsewhere(settings.data_dir):
        say(
            f"warning: no faceprint serve runs on {settings.data_dir}, but one (pid {pid}) "
            f"serves {other}: this command uses {settings.data_dir}'s own database, which "
            f"that service does not see; set FACEPRINT_DATA_DIR={other} to work on it"
        )


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session on the configured database (the running service's embedded one, or one
    started for this command). The caller commits."""
    configure_logging("WARNING")
    warn_if_served_elsewhere()
    with sessions(get_settings()) as (_, make_session), make_session() as session:
        yield session


@contextmanager
def components_scope() -> Iterator[tuple[Session, Components]]:
    """A session and the components, for commands that touch the index or the image
    store (creating and erasing galleries and subjects)."""
    configure_logging("WARNING")
    warn_if_served_elsewhere()
    with batch_components(pool_size=2) as (components, _):
        with make_sessionmaker(components.engine)() as session:
            yield session, components


def say(message: str) -> None:
    """A message for the person at the terminal, on stderr, never re-wrapped."""
    typer.echo(message, err=True)


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID | datetime | enum.Enum):
        return value.value if isinstance(value, enum.Enum) else str(value)
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        # UTC to the second is enough to read a table by; JSON keeps the full timestamp.
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(_plain(value))


def emit(
    rows: Sequence[dict[str, Any]], fmt: OutputFormat, *, columns: Sequence[str], empty: str
) -> None:
    """Rows as a table of ``columns`` or as a JSON list of whole rows."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], indent=2))
        return
    if not rows:
        say(empty)
        return
    table = Table()
    for name in columns:
        # Ids are what the next command takes: never cut, whatever the terminal width.
        header = name.replace("_", " ")  # wraps at the space in a narrow terminal
        if name == "id":
            table.add_column(header, no_wrap=True, min_width=36)
        else:
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    stdout.print(table)


def emit_one(row: dict[str, Any], fmt: OutputFormat) -> None:
    """One object: JSON, or one ``field: value`` line per field."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({k: _plain(v) for k, v in row.items()}, indent=2))
        return
    for key, value in row.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else _plain(value)
        typer.echo(f"{key}: {'-' if value is None else shown}")


@contextmanager
def index_only() -> Iterator[tuple[Engine, VectorIndex]]:
    settings = get_settings()
    with database(settings) as url:
        engine = make_engine(url, pool_size=2)
        index = build_index(index_config(settings))
        try:
            yield engine, index
        finally:
            index.close()
            engine.dispose()


@contextmanager
def batch_components(pool_size: int = 4) -> Iterator[tuple[Components, str]]:
    # Batch work keeps every core busy with its own calls (one worker process per
    # core): a call that happens to run alone must not take a second thread.
    settings = get_settings()
    settings = settings.model_copy(update={"idle_intra_op_threads": settings.intra_op_threads})
    with database(settings, supervise=True) as url:
        engine = make_engine(url, pool_size=pool_size)
        components = build_components(settings, engine, load_secrets(settings))
        try:
            yield components, url
        finally:
            components.close()
            engine.dispose()


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def fail(exc: Problem) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.detail}")
    return typer.Exit(code=1)
