"""``faceprint enroll DIR``: a folder of ``person/photo.jpg`` enrolled through the job
queue. Each photo goes through :func:`service.domain.faces.enroll_async` (the same function as
``POST …/faces?async=true``); the worker does the detection and embedding."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from indexing.errors import ImageError
from indexing.face_choice import FaceSelector
from service.core.principal import Principal, Role
from service.core.problems import NotFound
from service.domain import subjects
from service.domain.components import Components
from service.domain.enrollment import DuplicateFace
from service.domain.faces import enroll_async

# What indexing.decode reads (JPEG, PNG, WebP, GIF, BMP, TIFF).
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
CLI_PRINCIPAL = Principal(kind="cli", id="faceprint-enroll", role=Role.admin)


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Scan:
    photos: list[tuple[str, Path]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def scan(root: Path, *, recursive: bool = False) -> Scan:
    """(person, photo) for every photo in a person's folder, in a stable order, and
    every file passed over with the reason. Each folder directly under ``root`` is a
    person; with ``recursive`` the photos in folders below it are that person's too."""
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    out = Scan()
    for entry in sorted(e for e in root.iterdir() if not e.name.startswith(".")):
        if entry.is_file():
            out.skipped.append(
                Skipped(entry, "in the top folder: put it in a folder named after the person")
            )
            continue
        if not entry.is_dir():
            continue
        below = sorted(entry.rglob("*") if recursive else entry.iterdir())
        for path in below:
            if any(part.startswith(".") for part in path.relative_to(entry).parts):
                continue
            if path.is_dir():
                if not recursive:
                    out.skipped.append(Skipped(path, "a sub-folder: add --recursive to read it"))
                continue
            if path.suffix.lower() in PHOTO_SUFFIXES:
                out.photos.append((entry.name, path))
            else:
                out.skipped.append(
                    Skipped(
                        path, f"not a photo type the service reads ({path.suffix or 'no suffix'})"
                    )
                )
    return out


@dataclass
class Submitted:
    job_ids: list[uuid.UUID] = field(default_factory=list)
    subjects_created: int = 0
    # Refused before any job was queued: duplicates and files that are not images.
    refused: Counter[str] = field(default_factory=Counter)
    # Per photo: (person, path, the job's id, or the reason it was refused).
    files: list[tuple[str, Path, uuid.UUID | None, str | None]] = field(default_factory=list)


def _subject(session: Session, gallery_id: uuid.UUID, person: str) -> tuple[uuid.UUID, bool]:
    try:
        found = subjects.get_by_external_id(session, CLI_PRINCIPAL, gallery_id, person)
        return found.id, False
    except NotFound:
        created = subjects.create(
            session,
            principal=CLI_PRINCIPAL,
            gallery_id=gallery_id,
            external_id=person,
            display_name=person.replace("_", " "),
            metadata={"source": "faceprint enroll"},
        )
        session.commit()
        return created.id, True


def submit(
    components: Components,
    sessions: sessionmaker[Session],
    *,
    gallery_id: uuid.UUID,
    photos: list[tuple[str, Path]],
    face: FaceSelector = FaceSelector(),
    on_submitted: Callable[[int], None] | None = None,
) -> Submitted:
    """Store each original and queue its job (one transaction per photo, so a crash
    halfway leaves every queued photo intact; rerunning reports them as duplicates)."""
    out = Submitted()
    subject_ids: dict[str, uuid.UUID] = {}
    with sessions() as session:
        for person, photo in photos:
            if person not in subject_ids:
                subject_ids[person], created = _subject(session, gallery_id, person)
                out.subjects_created += created
            try:
                accepted = enroll_async(
                    session,
                    components,
                    principal=CLI_PRINCIPAL,
                    gallery_id=gallery_id,
                    subject_id=subject_ids[person],
                    image=photo.read_bytes(),
                    face=face,
                )
                out.job_ids.append(accepted.job_id)
                out.files.append((person, photo, accepted.job_id, None))
            except DuplicateFace:
                session.rollback()
                out.refused["duplicate"] += 1
                out.files.append((person, photo, None, "duplicate"))
            except ImageError:
                session.rollback()
                out.refused["bad_image"] += 1
                out.files.append((person, photo, None, "bad_image"))
            if on_submitted:
                on_submitted(1)
    return out


@dataclass
class BulkSummary:
    photos: int
    enrolled: int
    failed: Counter[str]
    refused: Counter[str]
    pending: int
    seconds: float

    @property
    def faces_per_second(self) -> float:
        return self.enrolled / self.seconds if self.seconds > 0 else 0.0


def outcome(session: Session, job_ids: list[uuid.UUID]) -> tuple[int, Counter[str], int]:
    """(done, failures by reason, still queued or running) over the given jobs."""
    rows = session.execute(
        text(
            "SELECT status, COALESCE(result->>'reason', 'unknown') AS reason, count(*) AS n"
            " FROM jobs WHERE id = ANY(:ids) GROUP BY 1, 2"
        ),
        {"ids": job_ids},
    ).all()
    done, pending, failed = 0, 0, Counter[str]()
    for row in rows:
        if row.status == "done":
            done += int(row.n)
        elif row.status == "failed":
            failed[row.reason] += int(row.n)
        else:
            pending += int(row.n)
    return done, failed, pending


def wait(
    sessions: sessionmaker[Session],
    submitted: Submitted,
    *,
    photos: int,
    started: float,
    timeout_s: float | None = None,
    poll_s: float = 0.25,
    on_progress: Callable[[int], None] | None = None,
) -> BulkSummary:
    """Poll until every queued job is done or failed (or the timeout passes)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        with sessions() as session:
            done, failed, pending = outcome(session, submitted.job_ids)
        if on_progress:
            on_progress(done + sum(failed.values()))
        if pending == 0 or (deadline is not None and time.monotonic() > deadline):
            return BulkSummary(
                photos=photos,
                enrolled=done,
                failed=failed,
                refused=submitted.refused,
                pending=pending,
                seconds=time.perf_counter() - started,
            )
        time.sleep(poll_s)


@dataclass(frozen=True)
class FileOutcome:
    path: Path
    person: str
    outcome: str  # enrolled, failed, refused, queued
    reason: str
    job_id: uuid.UUID | None


def file_outcomes(session: Session, submitted: Submitted) -> list[FileOutcome]:
    """What became of each photo, from its job's row (the worker writes the reason)."""
    ids = [job for _, _, job, _ in submitted.files if job is not None]
    rows = session.execute(
        text(
            "SELECT id, status, COALESCE(result->>'reason', '') AS reason,"
            " COALESCE(error, '') AS detail FROM jobs WHERE id = ANY(:ids)"
        ),
        {"ids": ids},
    ).all()
    jobs = {row.id: row for row in rows}
    out = []
    for person, path, job_id, refused in submitted.files:
        if job_id is None:
            out.append(FileOutcome(path, person, "refused", refused or "", None))
            continue
        row = jobs.get(job_id)
        if row is None or row.status not in ("done", "failed"):
            out.append(FileOutcome(path, person, "queued", "", job_id))
        elif row.status == "done":
            out.append(FileOutcome(path, person, "enrolled", "", job_id))
        else:
            # The error is the worker's sentence for it (no face found, …).
            out.append(FileOutcome(path, person, "failed", row.detail or row.reason, job_id))
    return out
