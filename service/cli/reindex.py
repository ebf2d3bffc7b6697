"""``faceprint reindex start|activate|rollback|drop-old|cancel|status``: a model upgrade
without downtime."""

from __future__ import annotations

import os
import time
import uuid
from typing import Annotated

import typer
from rich.table import Table

from indexing.errors import ModelUnavailable
from service.cli.common import batch_components, console, fail, index_only, progress_bar
from service.core.logging import configure_logging
from service.core.problems import Problem
from service.domain.components import Components

reindex_app = typer.Typer(
    help="Upgrade a gallery's model without downtime: start, then activate (or roll back),"
    " then drop-old.",
    no_args_is_help=False,
    invoke_without_command=True,
)

Gallery = Annotated[uuid.UUID, typer.Option(help="The gallery id.")]
BatchSize = Annotated[int, typer.Option(min=1, help="Originals per embedding batch.")]
Threads = Annotated[
    int,
    typer.Option(
        min=1,
        help="Batches embedded at once. 1 leaves the other cores to verify and search;"
        " more finishes sooner on an idle machine.",
    ),
]
Nice = Annotated[
    int,
    typer.Option(
        min=0,
        max=19,
        help="Lower this process's CPU priority by this much (Unix nice), so verify and"
        " search served on the same machine keep their latency.",
    ),
]


@reindex_app.command("start")
def start(
    gallery: Gallery,
    to_model: Annotated[str, typer.Option(help="Re-embed every stored original with this model.")],
    batch_size: BatchSize = 64,
    threads: Threads = 1,
    nice: Nice = 10,
) -> None:
    """Re-embed every stored original into the new model's index, with a progress bar.

    Verify and search keep answering on the active model meanwhile, and new enrollments
    are written for both models. Interrupt it at any time: the same command continues
    where it stopped. At the end it prints coverage (templates old vs new, faces that
    failed and why) and a shadow comparison of both models on the gallery's own pairs."""
    configure_logging("WARNING")
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    with batch_components() as (components, _):
        try:
            _run_reindex(components, gallery, to_model, batch_size, threads)
        except Problem as exc:
            raise fail(exc) from exc


def _switch(action: str, gallery: uuid.UUID, *, force: bool = False) -> None:
    # Switching needs the database and the index, not the models: start fast.
    from service.domain import reindex as service_reindex

    configure_logging("WARNING")
    with index_only() as (engine, index):
        try:
            if action == "activate":
                model = service_reindex.activate(engine, gallery_id=gallery, force=force)
                console.print(f"gallery {gallery} now answers with {model}")
            elif action == "rollback":
                model = service_reindex.rollback(engine, gallery_id=gallery)
                console.print(f"gallery {gallery} rolled back to {model}")
            elif action == "drop-old":
                n = service_reindex.drop_old(engine, index, gallery_id=gallery)
                console.print(f"dropped {n} templates of the previous model")
            else:
                n = service_reindex.cancel(engine, index, gallery_id=gallery)
                console.print(f"reindex cancelled; {n} templates deleted")
        except Problem as exc:
            raise fail(exc) from exc


@reindex_app.command("activate")
def activate(
    gallery: Gallery,
    force: Annotated[bool, typer.Option("--force", help="Even if some faces failed.")] = False,
) -> None:
    """Switch the gallery to the reindexed model, atomically."""
    _switch("activate", gallery, force=force)


@reindex_app.command("rollback")
def rollback(gallery: Gallery) -> None:
    """Switch the gallery back to its previous model."""
    _switch("rollback", gallery)


@reindex_app.command("drop-old")
def drop_old(gallery: Gallery) -> None:
    """Delete the previous model's templates (after this, no rollback)."""
    _switch("drop-old", gallery)


@reindex_app.command("cancel")
def cancel(gallery: Gallery) -> None:
    """Abandon a reindex under way and delete its templates."""
    _switch("cancel", gallery)


@reindex_app.command("status")
def status(gallery: Gallery) -> None:
    """The gallery's active, pending and previous models and its templates per model."""
    from service.domain import reindex as service_reindex
    from service.domain.reindex.jobs import gallery_row

    with index_only() as (engine, _):
        with engine.connect() as conn:
            try:
                row = gallery_row(conn, gallery)
            except Problem as exc:
                raise fail(exc) from exc
            counts = service_reindex.coverage_counts(conn, gallery)
    table = Table(title=f"gallery {gallery}")
    for column in ("model", "role", "templates"):
        table.add_column(column)
    roles = {row.active_model_id: "active"}
    if row.pending_model_id:
        roles[row.pending_model_id] = "pending (reindex under way)"
    if row.previous_model_id:
        roles[row.previous_model_id] = "previous (rollback possible)"
    for model in sorted(set(roles) | set(counts)):
        table.add_row(model, roles.get(model, "-"), str(counts.get(model, 0)))
    console.print(table)


@reindex_app.callback()
def legacy(
    ctx: typer.Context,
    gallery: Annotated[uuid.UUID | None, typer.Option(hidden=True)] = None,
    to_model: Annotated[str | None, typer.Option(hidden=True)] = None,
    activate: Annotated[bool, typer.Option("--activate", hidden=True)] = False,
    rollback: Annotated[bool, typer.Option("--rollback", hidden=True)] = False,
    drop_old: Annotated[bool, typer.Option("--drop-old", hidden=True)] = False,
    cancel: Annotated[bool, typer.Option("--cancel", hidden=True)] = False,
    force: Annotated[bool, typer.Option("--force", hidden=True)] = False,
    batch_size: Annotated[int, typer.Option(min=1, hidden=True)] = 64,
    threads: Annotated[int, typer.Option(min=1, hidden=True)] = 1,
    nice: Annotated[int, typer.Option(min=0, max=19, hidden=True)] = 10,
) -> None:
    """The flags of earlier releases (`faceprint reindex --gallery G --to-model M`,
    `--activate`, ...) still work for one release, with a deprecation warning."""
    if ctx.invoked_subcommand is not None:
        return
    actions = {
        "start": bool(to_model),
        "activate": activate,
        "rollback": rollback,
        "drop-old": drop_old,
        "cancel": cancel,
    }
    chosen = [name for name, on in actions.items() if on]
    if gallery is None and not chosen:
        console.print(ctx.get_help())
        raise typer.Exit(code=2)
    if gallery is None or len(chosen) != 1:
        console.print(
            "error: give a subcommand (start, activate, rollback, drop-old, cancel, status),"
            " or with the deprecated flags --gallery and exactly one of --to-model,"
            " --activate, --rollback, --drop-old, --cancel"
        )
        raise typer.Exit(code=2)
    action = chosen[0]
    flag = "--to-model" if action == "start" else f"--{action}"
    console.print(
        f"[yellow]warning:[/yellow] `faceprint reindex {flag}` is deprecated and goes in the"
        f" next release: use `faceprint reindex {action}`"
    )
    if action == "start":
        assert to_model is not None
        start(gallery, to_model, batch_size, threads, nice)
    else:
        _switch(action, gallery, force=force)


def _run_reindex(
    components: Components, gallery: uuid.UUID, to_model: str, batch: int, threads: int
) -> None:
    from service.domain import reindex as service_reindex
    from service.domain.reindex.reembed import PipelineReembedder

    engine = components.engine
    try:
        components.pipeline.models.embedder(to_model)  # fails now, not once per face
    except ModelUnavailable as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(code=1) from exc
    job_id = service_reindex.start(
        engine, components.index, components.pipeline, gallery_id=gallery, to_model=to_model
    )
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task(f"reindex → {to_model}", total=None, rate="")
        first_done: list[int] = []

        def update(p: service_reindex.Progress) -> None:
            if not first_done:
                first_done.append(p.done)
            elapsed = time.perf_counter() - started
            rate = (p.done - first_done[0]) / elapsed if elapsed > 0 else 0.0
            failed = f", {p.failed} failed" if p.failed else ""
            progress.update(task, total=p.total, completed=p.done, rate=f"{rate:.1f}/s{failed}")

        try:
            summary = service_reindex.run(
                engine,
                components.index,
                components.image_store,
                PipelineReembedder(components.pipeline),
                gallery_id=gallery,
                batch_size=batch,
                threads=threads,
                on_progress=update,
            )
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                "interrupted: the templates written so far are kept; run the same command"
                " again to continue"
            )
            raise typer.Exit(code=130) from None
    _print_report(components, gallery, to_model, job_id, summary.embedded, started)


def _print_report(
    components: Components,
    gallery: uuid.UUID,
    to_model: str,
    job_id: uuid.UUID,
    embedded: int,
    started: float,
) -> None:
    from service.domain import reindex as service_reindex

    elapsed = time.perf_counter() - started
    report = service_reindex.report(
        components.engine, gallery_id=gallery, threshold=components.threshold, job_id=job_id
    )
    cov, shadow = report.coverage, report.shadow
    console.print(
        f"embedded {embedded} faces in {elapsed:.1f} s"
        f" ({embedded / elapsed if elapsed > 0 else 0:.1f} faces/s)"
    )
    table = Table(title="coverage")
    for column in ("faces", cov.old_model, to_model, "failed"):
        table.add_column(column, justify="right")
    table.add_row(str(cov.faces), str(cov.old_templates), str(cov.new_templates),
                  str(len(cov.failed)))  # fmt: skip
    console.print(table)
    for face_id, reason in list(cov.failed.items())[:20]:
        console.print(f"  failed {face_id}: {reason}")
    if len(cov.failed) > 20:
        console.print(f"  … and {len(cov.failed) - 20} more (see GET /v1/jobs/{job_id})")
    table = Table(title=f"shadow comparison on {shadow.faces_compared} faces")
    for column in ("pairs", "n", cov.old_model, to_model, "agree", "lost", "gained"):
        table.add_column(column, justify="right")
    for label, stats in (("same subject", shadow.same_subject),
                         ("different subjects", shadow.different_subject)):  # fmt: skip
        table.add_row(
            label,
            str(stats.pairs),
            f"{stats.old_match_rate:.2%}",
            f"{stats.new_match_rate:.2%}",
            f"{stats.agreement:.2%}",
            str(stats.lost_matches),
            str(stats.new_matches),
        )
    console.print(table)
    console.print(
        "match rates at each model's threshold"
        f" ({shadow.old_threshold:.3f} vs {shadow.new_threshold:.3f}):"
        " same-subject pairs should match, different-subject pairs should not."
    )
    if cov.complete:
        console.print(f"next: faceprint reindex activate --gallery {gallery}")
    else:
        console.print(
            "some faces have no new template; rerun to retry, or `faceprint reindex activate"
            " --force`"
        )
