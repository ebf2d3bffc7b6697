"""A second terminal without the service's FACEPRINT_DATA_DIR: the command says that
it works on another data directory than the running ``faceprint serve``, and which
database its key went to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

HOLD = """
import sys, time
from pathlib import Path
from service.core.datadir import ServeLock
lock = ServeLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A process holding the serve lock of a data dir, as `faceprint serve` does."""
    data = tmp_path / "served"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield data, holder.pid
    finally:
        holder.terminate()
        holder.wait(timeout=10)


def test_the_lock_tells_where_a_service_runs(serving: tuple[Path, int], tmp_path: Path) -> None:
    from service.core.datadir import served_elsewhere, served_here

    served, pid = serving
    other = tmp_path / "other"
    other.mkdir()
    assert served_here(served) and not served_here(other)
    assert (served.resolve(), pid) in [(p.resolve(), n) for p, n in served_elsewhere(other)]
    assert all(p.resolve() != served.resolve() for p, _ in served_elsewhere(served))


def test_keys_create_on_another_data_dir_warns(serving: tuple[Path, int], tmp_path: Path) -> None:
    served, pid = serving
    other = tmp_path / "second-terminal"
    env = {k: v for k, v in os.environ.items() if k != "FACEPRINT_DATABASE_URL"}
    env["FACEPRINT_DATA_DIR"] = str(other)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "keys", "create", "--name", "x",
         "--role", "admin"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("fp_")
    assert f"no faceprint serve runs on {other}" in done.stderr
    assert f"pid {pid}" in done.stderr and f"FACEPRINT_DATA_DIR={served}" in done.stderr
    assert f"written to the embedded PostgreSQL in {other}" in done.stderr
