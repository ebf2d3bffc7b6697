"""A Qdrant Edge shard is held by one process: a second one gets a clear
IndexUnavailable naming the cause, not the engine's bare WAL error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.base import IndexConfig
from retrieval.errors import IndexUnavailable
from retrieval.factory import build_index

HOLD = """
import sys, time
import qdrant_edge as qe
shard = qe.EdgeShard.load(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def test_a_shard_held_by_another_process_is_reported_as_such(tmp_path: Path) -> None:
    config = IndexConfig(backend="qdrant-edge", qdrant_edge_path=tmp_path / "edge")
    first = build_index(config)
    first.ensure_model(None, "m", 4)
    first.close()

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "edge" / "m")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = build_index(config)
        with pytest.raises(IndexUnavailable, match="open in another process"):
            second.ensure_model(None, "m", 4)
        with pytest.raises(IndexUnavailable, match="open in another process"):
            second.fetch("m", np.ones(4, np.float32) / 2, None, 1, 10)
    finally:
        holder.kill()
        holder.wait()
    # Once the other process is gone, the shard opens again.
    third = build_index(config)
    third.ensure_model(None, "m", 4)
    third.close()
