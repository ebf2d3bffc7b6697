"""``faceprint enroll DIR``: bulk enrolment of a folder of ``person/photo`` files."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from indexing.face_choice import FaceSelector
from service.cli.common import (
    batch_components,
    console,
    fail,
    progress_bar,
    say,
    warn_if_served_elsewhere,
)
from service.core.logging import configure_logging
from service.core.problems import Problem
from service.core.settings import get_settings
from service.db.session import make_sessionmaker

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
    face: Annotated[
        str,
        typer.Option(
            help="Which face of a photo: auto (the one that dominates it; photos where none"
            " does are refused), single (exactly one) or largest."
        ),
    ] = "auto",
    allow_multiple: Annotated[
        bool, typer.Option(hidden=True, help="Older spelling of --face largest.")
    ] = False,
    timeout_s: Annotated[
        float | None, typer.Option(help="Stop waiting after this long (jobs keep running).")
    ] = None,
    recursive: Annotated[
        bool,
        typer.Option(help="Also read the folders inside each person's folder (same person)."),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Write one CSV row per file: path, person, outcome, reason, job id."),
    ] = None,
) -> None:
    """Bulk-enroll a folder of person/photo.jpg through the job queue.

    Each sub-folder of DIRECTORY is a
    subject (its name becomes the subject's external_id, created if missing) and each
    photo in it one face. Ends with a summary: enrolled, no face, low quality, multiple
    faces, duplicates (already enrolled), unreadable."""
    from service.worker import bulk_enroll
    from service.worker.loop import WorkerOptions, run_worker

    if face not in ("auto", "single", "largest"):
        raise typer.BadParameter(
            f"must be auto, single or largest, not {face!r}", param_hint="--face"
        )
    selector = FaceSelector.parse("largest" if allow_multiple else face)
    settings = get_settings()
    configure_logging("WARNING")
    found = bulk_enroll.scan(directory, recursive=recursive)
    photos = found.photos
    for skipped in found.skipped:
        say(f"skipped {skipped.path}: {skipped.reason}")
    if not photos:
        say(f"error: no photos found in {directory}/<person>/")
        if report is not None:
            _write_report(report, found.skipped, [])
        raise typer.Exit(code=1)
    warn_if_served_elsewhere()
    with batch_components(pool_size=4 + workers) as (components, url):
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
            with progress_bar() as progress:
                queued = progress.add_task("queue", total=len(photos), rate="")
                submitted = bulk_enroll.submit(
                    components,
                    sessions,
                    gallery_id=gallery,
                    photos=photos,
                    face=selector,
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
            raise fail(exc) from exc
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        with sessions() as session:
            outcomes = bulk_enroll.file_outcomes(session, submitted)
    _print_enroll_summary(summary, skipped=len(found.skipped))
    for item in outcomes:
        if item.outcome in ("failed", "refused"):
            say(f"{item.outcome}: {item.path}: {item.reason}")
    if report is not None:
        _write_report(report, found.skipped, outcomes)
        say(f"report: {report} ({len(outcomes) + len(found.skipped)} files)")
    if settings.log_level == "DEBUG":
        console.print(f"jobs: {len(submitted.job_ids)}")


def _write_report(path: Path, skipped: list, outcomes: list) -> None:  # type: ignore[type-arg]
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "person", "outcome", "reason", "job_id"])
        for item in outcomes:
            writer.writerow([item.path, item.person, item.outcome, item.reason, item.job_id or ""])
        for item in skipped:
            writer.writerow([item.path, "", "skipped", item.reason, ""])


def _print_enroll_summary(summary: object, *, skipped: int = 0) -> None:
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
    if skipped:
        table.add_row("files skipped (not read)", str(skipped))
    console.print(table)
    console.print(f"{summary.enrolled} faces in {summary.seconds:.1f} s"
                  f" ({summary.faces_per_second:.1f} faces/s)")  # fmt: skip
