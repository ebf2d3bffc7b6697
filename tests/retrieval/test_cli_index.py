"""``faceprint index rebuild`` end to end: real database, real Qdrant Edge shard files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from retrieval.factory import build_index
from service.cli.main import app
from service.core.settings import Settings, get_settings
from service.domain.components import index_config
from tests.retrieval.conftest import MODEL, make_gallery, register_model


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, db_url: str, data_dir: Path) -> Iterator[Settings]:
    monkeypatch.setenv("FACEPRINT_DATABASE_URL", db_url)
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FACEPRINT_VECTOR_BACKEND", "qdrant-edge")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_index_rebuild_refills_qdrant_edge_from_postgres(engine: Engine, env: Settings):
    config = index_config(env)
    assert config.qdrant_edge_path == env.data_dir / "qdrant-edge"
    index = build_index(config)
    with engine.begin() as conn:
        register_model(conn, index)
        one = make_gallery(conn, index, np.random.default_rng(1), subjects=5, per_subject=2)
        make_gallery(conn, index, np.random.default_rng(2), subjects=5, per_subject=2)
    index.close()  # the shard files stay; nothing was relayed yet

    result = CliRunner().invoke(app, ["index", "rebuild"])
    assert result.exit_code == 0, result.output
    assert f"{MODEL}: 20 vectors" in result.output

    result = CliRunner().invoke(app, ["index", "rebuild", "--gallery", str(one.id)])
    assert result.exit_code == 0, result.output
    assert f"{MODEL}: 10 vectors" in result.output

    index = build_index(config)
    with engine.connect() as conn:
        assert index.count(conn, model_id=MODEL) == 20
        assert index.count(conn, model_id=MODEL, gallery_id=one.id) == 10
        hits = index.search(
            conn, one.templates[3].embedding, gallery_id=one.id, model_id=MODEL, k=1
        )
    index.close()
    assert hits[0].template_id == one.templates[3].id


def test_index_rebuild_pgvector_and_help(engine: Engine, env: Settings, monkeypatch):
    monkeypatch.setenv("FACEPRINT_VECTOR_BACKEND", "pgvector")
    get_settings.cache_clear()
    index = build_index(index_config(get_settings()))
    with engine.begin() as conn:
        register_model(conn, index)
        make_gallery(conn, index, np.random.default_rng(3), subjects=4, per_subject=2)
    result = CliRunner().invoke(app, ["index", "rebuild"])
    assert result.exit_code == 0, result.output
    assert f"{MODEL}: 8 vectors" in result.output
    help_text = CliRunner().invoke(app, ["index", "rebuild", "--help"]).output
    assert "system of record" in help_text and "--gallery" in help_text
