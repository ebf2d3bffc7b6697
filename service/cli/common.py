"""What the commands that move many images through a model share: the components
without a server, a progress bar, one-line failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
from sqlalchemy import Engine

from retrieval.base import VectorIndex
from retrieval.factory import build_index
from service.core.datadir import load_secrets
from service.core.problems import Problem
from service.core.settings import get_settings
from service.db.runtime import database
from service.db.session import make_engine
from service.domain.components import Components, build_components, index_config

console = Console(stderr=True)


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
