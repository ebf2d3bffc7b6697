"""``faceprint index …``: manage the vector index projection of the templates table."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retrieval.factory import build_index
from retrieval.outbox import drain
from retrieval.rebuild import rebuild
from service.core.logging import configure_logging
from service.core.settings import get_settings
from service.db.runtime import sessions
from service.domain.components import index_config

index_app = typer.Typer(
    help="Manage the vector index (pgvector, Qdrant, Milvus).", no_args_is_help=True
)


@index_app.command("rebuild")
def rebuild_cmd(
    gallery: Annotated[
        uuid.UUID | None,
        typer.Option(help="Rebuild only this gallery's vectors (external engines); "
                     "pgvector rebuilds the whole index of the gallery's model."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Rebuild only this model's index (default: every model).")
    ] = None,
) -> None:  # fmt: skip
    """Rebuild the vector index from PostgreSQL, the system of record.

    pgvector: REINDEX CONCURRENTLY of each model's HNSW index (searches and enrolments continue). Qdrant, Qdrant Edge, Milvus: the model's collection (or only --gallery's points) is emptied and re-filled from the templates table, then the outbox relay delivers whatever was written meanwhile.
    """  # noqa: E501 - Typer re-wraps the help text; hard line breaks would show.
    settings = get_settings()
    configure_logging("WARNING")
    console = Console(stderr=True)
    index = build_index(index_config(settings))
    started = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with sessions(settings) as (engine, _), Progress(*columns, console=console) as bar:
            tasks: dict[str, int] = {}

            def report(model_id: str, done: int, total: int) -> None:
                if model_id not in tasks:
                    tasks[model_id] = bar.add_task(f"{index.name} {model_id}", total=total or None)
                bar.update(tasks[model_id], completed=done, total=total or None)

            results = rebuild(engine, index, gallery_id=gallery, model_id=model, progress=report)
            delivered = drain(engine.begin, index)
    finally:
        index.close()
    elapsed = time.perf_counter() - started
    if not results:
        console.print(
            "nothing to rebuild: no templates" + (f" in gallery {gallery}" if gallery else "")
        )
        return
    for result in results:
        console.print(f"{result.model_id}: {result.vectors} vectors")
    console.print(
        f"rebuilt {index.name} in {elapsed:.1f} s; relayed {delivered} pending outbox rows"
    )
