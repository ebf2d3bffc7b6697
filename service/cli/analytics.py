"""``faceprint analytics …``: the reports (one command each), ``refresh`` of the daily
aggregate, ``url`` (the analyst's read-only DSN); and ``faceprint history prune``."""

from __future__ import annotations

import csv
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.cli.audit import history_app
from service.core.datadir import analyst_password
from service.core.logging import configure_logging
from service.core.principal import Principal, Role
from service.core.problems import Problem
from service.core.settings import get_settings
from service.db.runtime import sessions
from service.domain import analytics
from service.domain.analytics import maintenance

analytics_app = typer.Typer(
    help="Reports on the verification history, and the analyst's access.", no_args_is_help=True
)
_CLI = Principal(kind="cli", id="cli", role=Role.admin)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print(rows: list[dict[str, Any]], fmt: Format) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps(rows, default=str, indent=2) + "\n")
        return
    columns = list(rows[0]) if rows else []
    if fmt is Format.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return
    if not rows:
        Console(stderr=True).print("no rows")
        return
    table = Table()
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    Console().print(table)


def _report_command(name: str, doc: str) -> Callable[..., None]:
    def command(
        since: Annotated[datetime | None, typer.Option(help="From this time (UTC).")] = None,
        until: Annotated[datetime | None, typer.Option(help="Up to this time.")] = None,
        gallery: Annotated[uuid.UUID | None, typer.Option(help="One gallery.")] = None,
        model: Annotated[str | None, typer.Option(help="One model id.")] = None,
        fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = (
            Format.table
        ),
    ) -> None:
        configure_logging("WARNING")
        filters = analytics.Filters(
            since=since.replace(tzinfo=since.tzinfo or UTC) if since else None,
            until=until.replace(tzinfo=until.tzinfo or UTC) if until else None,
            gallery_id=gallery,
            model_id=model,
        )
        try:
            with sessions(get_settings()) as (_, make_session), make_session() as session:
                result = analytics.run_report(session, _CLI, name, filters)
        except Problem as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(code=1) from None
        _print(result.rows, fmt)

    command.__doc__ = doc
    return command


for _name, _fn in analytics.REPORTS.items():
    analytics_app.command(_name)(_report_command(_name, " ".join((_fn.__doc__ or _name).split())))


@analytics_app.command("refresh")
def refresh_cmd() -> None:
    """Recompute analytics.daily now (run it from cron, e.g. hourly)."""
    configure_logging("WARNING")
    with sessions(get_settings()) as (engine, _):
        maintenance.refresh_daily(engine)
    typer.echo("analytics.daily refreshed", err=True)


@analytics_app.command("url")
def url_cmd() -> None:
    """Print a postgresql:// DSN for the read-only analyst role (it can read the
    analytics schema and nothing else): psql "$(faceprint analytics url)". On the
    embedded database it works while the server runs (faceprint serve)."""
    configure_logging("WARNING")
    settings = get_settings()
    with sessions(settings) as (engine, _):
        try:
            dsn = maintenance.analyst_dsn(engine, analyst_password(settings))
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
    sys.stdout.write(dsn + "\n")


@history_app.command("prune")
def prune_cmd(
    older_than: Annotated[
        int | None,
        typer.Option(
            min=1, help="Days of history to keep (default FACEPRINT_HISTORY_RETENTION_DAYS)."
        ),
    ] = None,
) -> None:
    """Delete history rows older than N days, one UTC day per transaction, keeping each
    day's aggregates in analytics.daily. Safe to interrupt and run again."""
    from service.cli.common import progress_bar

    configure_logging("WARNING")
    settings = get_settings()
    days = older_than or settings.history_retention_days
    if days is None:
        typer.echo("error: give --older-than N or set FACEPRINT_HISTORY_RETENTION_DAYS", err=True)
        raise typer.Exit(code=2)
    cut = date.today() - timedelta(days=days)
    with sessions(settings) as (engine, make_session), progress_bar() as bar:
        task = bar.add_task(f"pruning days before {cut}", total=None, rate="")

        def advance(_day: date, _rows: int, total: int) -> None:
            bar.update(task, total=total, advance=1)

        deleted = maintenance.prune(make_session, cut, on_day=advance)
        maintenance.refresh_daily(engine)
    typer.echo(f"pruned {deleted} history rows older than {cut}", err=True)
