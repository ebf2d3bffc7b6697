"""The ``faceprint`` command line."""

from __future__ import annotations

import os
import signal
import sys
from importlib.metadata import version
from typing import Annotated

import typer
import uvicorn
from typer.core import TyperGroup
from typer.exceptions import TyperException

from service.cli.analytics import analytics_app
from service.cli.audit import audit_app, history_app
from service.cli.enroll import enroll
from service.cli.galleries import galleries_app, subjects_app
from service.cli.index import index_app
from service.cli.keys import keys_app
from service.cli.matching import search, verify
from service.cli.models import models_app
from service.cli.reindex import reindex_app
from service.cli.users import users_app
from service.cli.webhooks import webhooks_app
from service.cli.worker import worker
from service.core.datadir import DataDirInUse, ServeLock, write_private
from service.core.logging import configure_logging
from service.core.metrics import shared_between_processes
from service.core.problems import Problem
from service.core.settings import Settings, get_settings
from service.db.runtime import database


class OneLineErrors(TyperGroup):
    """Every failure is one ``error: …`` line and exit code 1; ``--debug`` (before the
    command) shows the traceback instead."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):
            # Usage errors, --help, confirmations: the framework words these itself.
            raise
        except Problem as exc:
            if ctx.meta.get(_DEBUG):
                raise
            _err(f"error: {exc.detail}")
            raise typer.Exit(code=1) from None
        except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into a line
            if ctx.meta.get(_DEBUG):
                raise
            _err(f"error: {exc or type(exc).__name__} (run with --debug for the traceback)")
            raise typer.Exit(code=1) from None


_DEBUG = "faceprint.debug"

app = typer.Typer(
    help="Faceprint: self-hosted face verification (1:1) and identification (1:N).",
    no_args_is_help=True,
    add_completion=False,
    cls=OneLineErrors,
)
app.add_typer(keys_app, name="keys")
app.add_typer(galleries_app, name="galleries")
app.add_typer(subjects_app, name="subjects")
app.add_typer(audit_app, name="audit")
app.add_typer(history_app, name="history")
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")
app.add_typer(users_app, name="users")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(reindex_app, name="reindex")
app.add_typer(analytics_app, name="analytics")
app.command("worker")(worker)
app.command("enroll")(enroll)
app.command("verify")(verify)
app.command("search")(search)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"faceprint {version('faceprint')}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")] = False,
) -> None:
    """Faceprint: self-hosted face verification (1:1) and identification (1:N)."""
    ctx.meta[_DEBUG] = debug


def _leave(signum: int, frame: object) -> None:
    raise SystemExit(0)


def banner(lines: list[tuple[str, str]]) -> str:
    """What a person starting the service needs, set apart from the JSON log lines
    around it on stderr."""
    width = max(len(label) for label, _ in lines)
    rule = "─" * 72
    body = "\n".join(f"  {label.ljust(width)}  {value}" for label, value in lines)
    return f"{rule}\n  Faceprint {version('faceprint')}\n{body}\n{rule}"


def _err(message: str) -> None:
    typer.echo(message, err=True)


def single_process_engine(settings: Settings) -> str | None:
    """The configured vector engine if only one process may hold it open."""
    from retrieval.factory import single_process_engine as engine_of
    from service.domain.components import index_config

    return engine_of(index_config(settings))


def default_api_workers(settings: Settings) -> int:
    """One process per core the service may use when Redis shares the rate limits;
    otherwise one, so that the in-process limits mean what they say. One as well with
    an embedded vector engine, which a second process cannot open."""
    if not settings.redis_url or single_process_engine(settings):
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Uvicorn worker processes. Default: one per core when FACEPRINT_REDIS_URL "
            "shares rate limits between them, else one; always one with an embedded vector "
            "engine (qdrant-edge, milvus-lite), which one process holds. The face "
            "pipeline already runs on a thread pool in each (FACEPRINT_CPU_WORKERS); on 2 "
            "cores two workers "
            "answered about 50% more verifications per minute at concurrency 4 than one "
            "(README, Performance). /metrics sums the counters of all of them; without "
            "FACEPRINT_REDIS_URL each keeps its own rate-limit counters.",
        ),
    ] = None,
) -> None:
    """Run the HTTP API. With nothing configured it starts the embedded PostgreSQL in the
    data directory, applies pending migrations, and stops the database on exit."""
    from service.http.app import create_app
    from service.http.server_protocol import NoDelayH11Protocol

    settings = get_settings()
    configure_logging(settings.log_level)
    host = host or settings.host
    port = port or settings.port
    engine = single_process_engine(settings)
    if workers is not None and workers > 1 and engine:
        _err(
            f"error: {engine} (FACEPRINT_VECTOR_BACKEND) can be open in one process only:"
            " run one API process (--workers 1), or move the index to a server"
            " (pgvector, FACEPRINT_QDRANT_URL, or a Milvus server in FACEPRINT_MILVUS_URI)"
        )
        raise typer.Exit(code=2)
    # SIGTERM (docker stop, systemd) must leave as Ctrl-C does, through the finally
    # blocks that stop the embedded PostgreSQL and release the lock: uvicorn re-raises
    # the signal after its graceful shutdown, and the default action would kill the
    # process there, leaving the database running.
    signal.signal(signal.SIGTERM, _leave)
    lock = ServeLock(settings.data_dir)
    try:
        lock.acquire()
    except DataDirInUse as exc:
        _err(f"error: {exc}")
        raise typer.Exit(code=1) from exc
    try:
        with database(settings, supervise=True) as url:
            where = "embedded PostgreSQL" if settings.embedded else "external PostgreSQL"
            chosen = workers is not None
            if workers is None:
                workers = default_api_workers(settings)
            lines = [
                ("data directory", f"{settings.data_dir} ({where})"),
                ("API docs", f"http://{host}:{port}/docs"),
                ("first key", "faceprint keys create --name admin --role admin"),
                ("API processes", f"{workers}" + ("" if chosen else " (--workers to choose)")),
            ]
            if workers > 1 and not settings.redis_url and settings.rate_limit_per_minute:
                lines.append((
                    "warning",
                    f"{workers} workers without FACEPRINT_REDIS_URL count rate limits per "
                    "process: a caller gets up to that many times the limit",
                ))  # fmt: skip
            _err(banner(lines))
            if workers > 1:
                # Worker processes import the app by name; they join this process's
                # database through the URL rather than starting their own. It reaches
                # them in a 0600 file, not their environment: an environment is copied
                # to every process they start and shown in /proc/<pid>/environ.
                handoff = write_private(settings, f"database-url.{os.getpid()}", url)
                os.environ.pop("FACEPRINT_DATABASE_URL", None)
                os.environ["FACEPRINT_DATABASE_URL_FILE"] = str(handoff)
                # A call alone in its process is not alone on the machine: the other
                # processes' calls hold the other cores (measured: two workers with a
                # second thread for lone calls lost a quarter of their throughput).
                os.environ["FACEPRINT_IDLE_INTRA_OP_THREADS"] = str(settings.intra_op_threads)
                try:
                    with shared_between_processes():
                        uvicorn.run(
                            "service.http.app:app_from_environment",
                            factory=True,
                            host=host,
                            port=port,
                            workers=workers,
                            http=NoDelayH11Protocol,
                            log_config=None,
                            access_log=False,
                        )
                finally:
                    handoff.unlink(missing_ok=True)
            else:
                uvicorn.run(
                    create_app(settings, database_url=url),
                    host=host,
                    port=port,
                    http=NoDelayH11Protocol,
                    log_config=None,
                    access_log=False,
                )
    finally:
        lock.release()


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending schema migrations (Alembic) to the configured database."""
    settings = get_settings()
    configure_logging("WARNING")
    with database(settings, apply_migrations=True):
        pass
    _err("database schema is at the latest revision")


def main() -> None:
    """The ``faceprint`` command. An index that cannot be reached (a server down, an
    embedded shard held by another process) is an operating condition, not a bug: one
    line saying so, not a traceback."""
    from retrieval.errors import IndexUnavailable

    try:
        app()
    except IndexUnavailable as exc:
        _err(f"error: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
