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

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
CLI_PRINCIPAL = Principal(kind="cli", id="faceprint-enroll", role=Role.admin)


def scan(root: Path) -> list[tuple[str, Path]]:
    """(person, photo) for every photo one level below ``root``, in a stable order."""
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    found = []
    for person in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for photo in sorted(person.iterdir()):
            if photo.is_file() and photo.suffix.lower() in PHOTO_SUFFIXES:
                found.append((person.name, photo))
    return found


@dataclass
class Submitted:
    job_ids: list[uuid.UUID] = field(default_factory=list)
    subjects_created: int = 0
    # Refused before any job was queued: duplicates and files that are not images.
    refused: Counter[str] = field(default_factory=Counter)


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
            except DuplicateFace:
                session.rollback()
                out.refused["duplicate"] += 1
            except ImageError:
                session.rollback()
                out.refused["bad_image"] += 1
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
