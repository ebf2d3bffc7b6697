"""Model upgrades without downtime: ``jobs`` re-embeds a gallery into a new model's index,
``switch`` activates, rolls back and drops, ``report`` measures the two models side by
side, ``reembed`` runs the face pipeline over stored originals."""

from service.domain.reindex.jobs import (
    Progress,
    ReindexBusy,
    RunSummary,
    StoredFace,
    run,
    start,
)
from service.domain.reindex.switch import (
    Report,
    activate,
    cancel,
    coverage_counts,
    drop_old,
    report,
    rollback,
)

__all__ = [
    "Progress",
    "ReindexBusy",
    "Report",
    "RunSummary",
    "StoredFace",
    "activate",
    "cancel",
    "coverage_counts",
    "drop_old",
    "report",
    "rollback",
    "run",
    "start",
]
