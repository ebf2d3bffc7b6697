"""``faceprint webhooks …``: list endpoints, their deliveries, send one again, and run
a dispatcher on its own."""

from __future__ import annotations

import signal
import threading
import uuid
from dataclasses import replace
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from service.core.datadir import load_secrets
from service.core.logging import configure_logging
from service.core.principal import Principal, Role
from service.core.problems import Problem
from service.core.settings import get_settings
from service.db.runtime import database, sessions
from service.db.session import make_engine
from service.domain.webhooks import deliveries, endpoints
from service.domain.webhooks.dispatch import DispatchConfig, Dispatcher

webhooks_app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)
console = Console()
_CLI = Principal(kind="cli", id="cli", role=Role.admin)


def _table(*columns: str) -> Table:
    """Ids are what the next command takes: never cut, whatever the terminal width."""
    table = Table()
    for name in columns:
        if name == "id":
            table.add_column(name, no_wrap=True, min_width=36)
        else:
            table.add_column(name, overflow="fold")
    return table


def _fail(exc: Problem) -> typer.Exit:
    typer.echo(f"error: {exc.detail}", err=True)
    return typer.Exit(code=1)


@webhooks_app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 50,
) -> None:
    """List webhook endpoints (newest first): id, state, events, URL."""
    configure_logging("WARNING")
    with sessions(get_settings()) as (_, make_session), make_session() as session:
        rows, _ = endpoints.list_page(session, _CLI, limit=limit, cursor=None)
        table = _table("id", "active", "events", "galleries", "url")
        for row in rows:
            galleries = "all" if row.gallery_ids is None else str(len(row.gallery_ids))
            state = "yes" if row.active else f"no ({row.disabled_reason or 'disabled'})"
            table.add_row(str(row.id), state, ", ".join(row.events), galleries, row.url)
    console.print(table if rows else "no webhooks")


@webhooks_app.command("deliveries")
def deliveries_cmd(
    webhook: Annotated[uuid.UUID, typer.Argument(help="The webhook's id.")],
    status: Annotated[
        Literal["pending", "delivered", "failed"] | None,
        typer.Option(help="Only deliveries in this state."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 50,
) -> None:
    """List a webhook's deliveries (newest first) with their last attempt."""
    configure_logging("WARNING")
    try:
        with sessions(get_settings()) as (_, make_session), make_session() as session:
            items, _ = deliveries.list_page(
                session, _CLI, webhook, status=status, limit=limit, cursor=None
            )
    except Problem as exc:
        raise _fail(exc) from None
    table = _table("id", "event", "status", "attempts", "last", "created")
    for d in items:
        last = d.last_error or (str(d.last_status_code) if d.last_status_code else "-")
        table.add_row(
            str(d.id), d.event_type, d.status, str(d.attempts), last[:60], str(d.created_at)
        )
    console.print(table if items else "no deliveries")


@webhooks_app.command("redeliver")
def redeliver_cmd(
    webhook: Annotated[uuid.UUID, typer.Argument(help="The webhook's id.")],
    delivery: Annotated[uuid.UUID, typer.Argument(help="The delivery's id.")],
) -> None:
    """Queue one delivery again (same webhook-id); a running dispatcher sends it."""
    configure_logging("WARNING")
    try:
        with sessions(get_settings()) as (_, make_session), make_session() as session:
            deliveries.redeliver(session, _CLI, webhook, delivery)
            session.commit()
    except Problem as exc:
        raise _fail(exc) from None
    typer.echo(f"queued {delivery} again", err=True)


@webhooks_app.command("dispatch")
def dispatch_cmd() -> None:
    """Run only the webhook dispatcher until SIGTERM or Ctrl-C.

    `faceprint serve` and `faceprint worker` already run one; this is for a process of its own. Any number may run: deliveries are claimed with FOR UPDATE SKIP LOCKED.
    """  # noqa: E501 - Typer re-wraps the help text; hard line breaks would show.
    settings = get_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    config = DispatchConfig.from_settings(settings)
    if config.threads <= 0:
        config = replace(config, threads=1)
    with database(settings) as url:
        engine = make_engine(url, pool_size=config.threads + 1)
        dispatcher = Dispatcher(engine, load_secrets(settings).encryption_key, config).start()
        try:
            stop.wait()
        finally:
            dispatcher.stop()
            engine.dispose()
