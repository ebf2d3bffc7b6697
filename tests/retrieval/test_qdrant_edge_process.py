"""A Qdrant Edge shard is held by one process: a second one gets a clear
IndexUnavailable naming the cause, not the engine's bare WAL error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

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


@contextmanager
def held(shard: Path) -> Iterator[None]:
    """The shard open in another process for the duration."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(shard)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_shard_held_by_another_process_is_reported_as_such(tmp_path: Path) -> None:
    config = IndexConfig(backend="qdrant-edge", qdrant_edge_path=tmp_path / "edge")
    first = build_index(config)
    first.ensure_model(None, "m", 4)
    first.close()

    with held(tmp_path / "edge" / "m"):
        second = build_index(config)
        with pytest.raises(IndexUnavailable, match="open in another process"):
            second.ensure_model(None, "m", 4)
        with pytest.raises(IndexUnavailable, match="open in another process"):
            second.fetch("m", np.ones(4, np.float32) / 2, None, 1, 10)
        # Nor are its files deleted under the process that holds it.
        with pytest.raises(IndexUnavailable, match="open in another process"):
            second.drop_model(None, "m")
        assert (tmp_path / "edge" / "m").is_dir()
    # Once the other process is gone, the shard opens again.
    third = build_index(config)
    third.ensure_model(None, "m", 4)
    third.close()


def test_the_cli_says_so_in_one_line(
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`faceprint index rebuild` while the API holds the shard: an error line, exit 1."""
    from service.cli.main import main
    from service.core.settings import get_settings

    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (id, dim, metric, threshold, version)"
                " VALUES ('m', 4, 'cosine', 0.5, '1')"
            )
        )
    engine.dispose()
    data = tmp_path / "data"
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(data))
    monkeypatch.setenv("FACEPRINT_DATABASE_URL", db_url)
    monkeypatch.setenv("FACEPRINT_VECTOR_BACKEND", "qdrant-edge")
    monkeypatch.setattr(sys, "argv", ["faceprint", "index", "rebuild", "--model", "m"])
    get_settings.cache_clear()
    config = IndexConfig(backend="qdrant-edge", qdrant_edge_path=data / "qdrant-edge")
    index = build_index(config)
    index.ensure_model(None, "m", 4)
    index.close()
    try:
        with held(data / "qdrant-edge" / "m"), pytest.raises(SystemExit) as exited:
            main()
    finally:
        get_settings.cache_clear()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "error: qdrant-edge index unavailable: the shard is open in another process" in err
    assert "Traceback" not in err


def test_an_unreadable_shard_is_still_dropped(tmp_path: Path) -> None:
    """What a rebuild is for: a shard the engine cannot open is replaced, not kept."""
    config = IndexConfig(backend="qdrant-edge", qdrant_edge_path=tmp_path / "edge")
    broken = tmp_path / "edge" / "m"
    broken.mkdir(parents=True)
    (broken / "edge_config.json").write_text("{not json")
    index = build_index(config)
    index.drop_model(None, "m")
    assert not broken.exists()
    index.ensure_model(None, "m", 4)
    assert index.count(None, model_id="m") == 0
    index.close()
