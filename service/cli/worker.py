"""``faceprint worker``, ``faceprint enroll`` and ``faceprint reindex``: the commands that
move many images through a model."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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

from indexing.errors import ModelUnavailable
from retrieval.base import VectorIndex
from retrieval.factory import build_index
from service.core.datadir import load_secrets
from service.core.logging import configure_logging
from service.core.problems import Problem
from service.core.settings import get_settings
from service.db.runtime import database
from service.db.session import make_engine, make_sessionmaker
from service.domain.components import Components, build_components, index_config

console = Console(stderr=True)


@contextmanager
def _index_only() -> Iterator[tuple[Engine, VectorIndex]]:
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
def _components(pool_size: int = 4) -> Iterator[tuple[Components, str]]:
    # Batch work keeps every core busy with its own calls (one worker process per
    # core): a call that happens to run alone must not take a second thread.
    settings = get_settings()
    settings = settings.model_copy(update={"idle_intra_op_threads": settings.intra_op_threads})
    with database(settings) as url:
        engine = make_engine(url, pool_size=pool_size)
        components = build_components(settings, engine, load_secrets(settings))
        try:
            yield components, url
        finally:
            components.close()
            engine.dispose()


def _progress() -> Progress:
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


def _fail(exc: Problem) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.detail}")
    return typer.Exit(code=1)


# -- faceprint worker --------------------------------------------------------------------


def worker(
    batch_size: Annotated[
        int, typer.Option(min=1, max=1024, help="Most jobs (faces) embedded in one batch.")
    ] = 32,
    max_wait_ms: Annotated[
        float,
        typer.Option(min=0, help="After the first job, wait at most this long to fill a batch."),
    ] = 50.0,
    lease_s: Annotated[
        float,
        typer.Option(min=1, help="A claimed job returns to the queue if not finished in time."),
    ] = 120.0,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (/metrics).")
    ] = None,
    worker_id: Annotated[
        str | None, typer.Option(help="Name of this worker in the jobs table (default random).")
    ] = None,
) -> None:
    """Run the embedding worker (enrollment jobs, batched).

    Claims enrollment jobs in batches (up to --batch-size, or whatever arrived within
    --max-wait-ms), detect and embed them in one batch (on CUDA
    when onnxruntime offers it, else CPU) and index the faces. Run as many as you like,
    on one machine or many: jobs are claimed with SELECT … FOR UPDATE SKIP LOCKED. SIGTERM
    or Ctrl-C finishes the batch in hand (or releases it) and exits."""
    from service.worker.loop import WorkerOptions, install_stop_signals, run_worker

    settings = get_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    install_stop_signals(stop)
    options = WorkerOptions(
        batch_size=batch_size,
        max_wait_ms=max_wait_ms,
        lease_s=lease_s,
        metrics_port=metrics_port,
        worker_id=worker_id,
    )
    with _components() as (components, url):
        run_worker(components, url, options, stop)
    console.print("worker stopped")


# -- faceprint enroll --------------------------------------------------------------------


def enroll(
    directory: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, help="A folder of person/photo.jpg (one per person)."
        ),
    ],
    gallery: Annotated[uuid.UUID, typer.Option(help="The gallery id to enroll into.")],
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Embedding workers to run inside this command; 0 leaves the jobs to running"
            " `faceprint worker` processes.",
        ),
    ] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size of those workers.")] = 32,
    allow_multiple: Annotated[
        bool, typer.Option(help="Take the largest face of photos with several.")
    ] = False,
    timeout_s: Annotated[
        float | None, typer.Option(help="Stop waiting after this long (jobs keep running).")
    ] = None,
) -> None:
    """Bulk-enroll a folder of person/photo.jpg through the job queue.

    Each sub-folder of DIRECTORY is a
    subject (its name becomes the subject's external_id, created if missing) and each
    photo in it one face. Ends with a summary: enrolled, no face, low quality, multiple
    faces, duplicates (already enrolled), unreadable."""
    from service.worker import bulk_enroll
    from service.worker.loop import WorkerOptions, run_worker

    settings = get_settings()
    configure_logging("WARNING")
    photos = bulk_enroll.scan(directory)
    if not photos:
        console.print(f"no photos found in {directory}/<person>/")
        raise typer.Exit(code=1)
    with _components(pool_size=4 + workers) as (components, url):
        sessions = make_sessionmaker(components.engine)
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=run_worker,
                args=(components, url, WorkerOptions(batch_size=batch_size, poll_s=0.5), stop),
                daemon=True,
            )
            for _ in range(workers)
        ]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        try:
            with _progress() as progress:
                queued = progress.add_task("queue", total=len(photos), rate="")
                submitted = bulk_enroll.submit(
                    components,
                    sessions,
                    gallery_id=gallery,
                    photos=photos,
                    allow_multiple=allow_multiple,
                    on_submitted=lambda n: progress.advance(queued, n),
                )
                embedded = progress.add_task("embed", total=len(submitted.job_ids), rate="")

                def update(finished: int) -> None:
                    elapsed = time.perf_counter() - started
                    rate = f"{finished / elapsed:.1f} faces/s" if elapsed > 0 else ""
                    progress.update(embedded, completed=finished, rate=rate)

                summary = bulk_enroll.wait(
                    sessions,
                    submitted,
                    photos=len(photos),
                    started=started,
                    timeout_s=timeout_s,
                    on_progress=update,
                )
        except Problem as exc:
            raise _fail(exc) from exc
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
    _print_enroll_summary(summary)
    if settings.log_level == "DEBUG":
        console.print(f"jobs: {len(submitted.job_ids)}")


def _print_enroll_summary(summary: object) -> None:
    from service.worker.bulk_enroll import BulkSummary

    assert isinstance(summary, BulkSummary)
    table = Table(title="faceprint enroll")
    table.add_column("outcome")
    table.add_column("photos", justify="right")
    table.add_row("enrolled", str(summary.enrolled))
    for label, key in (
        ("no face", "no_face"),
        ("low quality", "low_quality"),
        ("multiple faces", "multiple_faces"),
        ("unreadable image", "bad_image"),
    ):
        table.add_row(label, str(summary.failed.get(key, 0) + summary.refused.get(key, 0)))
    table.add_row("duplicates", str(summary.refused.get("duplicate", 0)))
    known = {"no_face", "low_quality", "multiple_faces", "bad_image"}
    for reason, count in sorted(summary.failed.items()):
        if reason not in known:
            table.add_row(f"failed: {reason}", str(count))
    if summary.pending:
        table.add_row("still queued (timeout)", str(summary.pending))
    table.add_row("total", str(summary.photos))
    console.print(table)
    console.print(f"{summary.enrolled} faces in {summary.seconds:.1f} s"
                  f" ({summary.faces_per_second:.1f} faces/s)")  # fmt: skip


# -- faceprint reindex -------------------------------------------------------------------


def reindex(
    gallery: Annotated[uuid.UUID, typer.Option(help="The gallery id.")],
    to_model: Annotated[
        str | None,
        typer.Option(help="Re-embed every stored original with this model (resumable)."),
    ] = None,
    activate: Annotated[
        bool, typer.Option("--activate", help="Switch the gallery to the reindexed model.")
    ] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Switch back to the previous model.")
    ] = False,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="Delete the previous model's templates.")
    ] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Abandon a reindex and delete its templates.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="--activate even if some faces failed.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Originals per embedding batch.")] = 64,
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Batches embedded at once. 1 leaves the other cores to verify and search;"
            " more finishes sooner on an idle machine.",
        ),
    ] = 1,
    nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="Lower this process's CPU priority by this much (Unix nice), so verify and"
            " search served on the same machine keep their latency.",
        ),
    ] = 10,
) -> None:
    """Upgrade a gallery's model without downtime.

    --to-model M re-embeds every stored original into M's index, with a progress bar;
    verify and search keep answering on the active model meanwhile, and new enrollments
    are written for both models. Interrupt it at any time: the same command continues
    where it stopped. At the end it prints coverage (templates old vs new, faces that
    failed and why) and a shadow comparison of both models on the gallery's own pairs.
    Then --activate switches atomically, --rollback switches back, --drop-old deletes the
    old templates (after which no rollback)."""
    from service.domain import reindex as service_reindex

    actions = [bool(to_model), activate, rollback, drop_old, cancel]
    if sum(actions) != 1:
        console.print(
            "error: give exactly one of --to-model, --activate, --rollback, --drop-old, --cancel"
        )
        raise typer.Exit(code=2)
    configure_logging("WARNING")
    if to_model:
        if nice and hasattr(os, "nice"):
            os.nice(nice)
        with _components() as (components, _):
            try:
                _run_reindex(components, gallery, to_model, batch_size, threads)
            except Problem as exc:
                raise _fail(exc) from exc
        return
    # Switching needs the database and the index, not the models: start fast.
    with _index_only() as (engine, index):
        try:
            if activate:
                model = service_reindex.activate(engine, gallery_id=gallery, force=force)
                console.print(f"gallery {gallery} now answers with {model}")
            elif rollback:
                model = service_reindex.rollback(engine, gallery_id=gallery)
                console.print(f"gallery {gallery} rolled back to {model}")
            elif drop_old:
                n = service_reindex.drop_old(engine, index, gallery_id=gallery)
                console.print(f"dropped {n} templates of the previous model")
            else:
                n = service_reindex.cancel(engine, index, gallery_id=gallery)
                console.print(f"reindex cancelled; {n} templates deleted")
        except Problem as exc:
            raise _fail(exc) from exc


def _run_reindex(
    components: Components, gallery: uuid.UUID, to_model: str, batch: int, threads: int
) -> None:
    from service.domain import reindex as service_reindex
    from service.worker.loop import PipelineReembedder

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
    with _progress() as progress:
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
        console.print(f"next: faceprint reindex --gallery {gallery} --activate")
    else:
        console.print("some faces have no new template; rerun to retry, or --activate --force")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``faceprint`` CLI."""
    app.command("worker")(worker)
    app.command("enroll")(enroll)
    app.command("reindex")(reindex)
