"""The graph cache: built once, reused while valid, rebuilt when corrupt or stale, safe
when two processes build at once; and the embedder and CLI on top of it."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from indexing.dlib_onnx import cache
from indexing.dlib_onnx.cache import GRAPH_FILE, SIDECAR_FILE, ensure_graph
from indexing.dlib_onnx.serialization import DlibFormatError
from indexing.embedders.base import Embedder
from indexing.embedders.dlib_onnx import DlibOnnxEmbedder
from indexing.errors import ModelUnavailable
from indexing.registry import DLIB_RESNET_V1, DLIB_RESNET_V1_ONNX, EmbedderContext, ModelRegistry


def test_built_once_then_reused(tmp_path: Path) -> None:
    first = ensure_graph(tmp_path)
    assert first.built
    assert first.path == tmp_path / GRAPH_FILE
    meta = json.loads((tmp_path / SIDECAR_FILE).read_text())
    assert meta["graph_sha256"] == first.sha256
    assert meta["source_sha256"] == first.source_sha256
    assert meta["builder_version"] == cache.BUILDER_VERSION
    second = ensure_graph(tmp_path)
    assert not second.built
    assert second.model_bytes == first.model_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == [GRAPH_FILE, SIDECAR_FILE]


def _edit_sidecar(tmp_path: Path, **changes: str) -> None:
    path = tmp_path / SIDECAR_FILE
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage",
    [
        "truncate_graph",
        "flip_graph_byte",
        "delete_sidecar",
        "garbage_sidecar",
        "older_builder",
        "other_weights",
    ],
)
def test_corrupt_or_stale_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    good = ensure_graph(tmp_path)
    graph = tmp_path / GRAPH_FILE
    if damage == "truncate_graph":
        graph.write_bytes(good.model_bytes[: len(good.model_bytes) // 2])
    elif damage == "flip_graph_byte":
        data = bytearray(good.model_bytes)
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))
    elif damage == "delete_sidecar":
        (tmp_path / SIDECAR_FILE).unlink()
    elif damage == "garbage_sidecar":
        (tmp_path / SIDECAR_FILE).write_text("[not json")
    elif damage == "older_builder":
        _edit_sidecar(tmp_path, builder_version="0")
    elif damage == "other_weights":
        _edit_sidecar(tmp_path, source_sha256="0" * 64)
    again = ensure_graph(tmp_path)
    assert again.built
    assert again.sha256 == good.sha256
    assert graph.read_bytes() == good.model_bytes
    assert not ensure_graph(tmp_path).built


def test_force_rebuilds(tmp_path: Path) -> None:
    ensure_graph(tmp_path)
    assert ensure_graph(tmp_path, force=True).built


def test_damaged_weights_are_refused_not_cached(tmp_path: Path) -> None:
    dat = tmp_path / "weights.dat"
    dat.write_bytes(cache.default_dat_path().read_bytes()[:-1000])
    with pytest.raises(DlibFormatError):
        ensure_graph(tmp_path / "models", dat)
    assert not (tmp_path / "models" / GRAPH_FILE).exists()


def _build_in_child(cache_dir: str) -> str:
    return ensure_graph(Path(cache_dir)).sha256


def test_two_processes_building_at_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        digests = pool.map(_build_in_child, [str(tmp_path)] * 2)
    assert digests[0] == digests[1]
    reread = ensure_graph(tmp_path)
    assert not reread.built and reread.sha256 == digests[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [GRAPH_FILE, SIDECAR_FILE]


def test_embedder_contract(tmp_path: Path) -> None:
    embedder = DlibOnnxEmbedder(DLIB_RESNET_V1_ONNX, tmp_path, max_batch=4)
    assert isinstance(embedder, Embedder)
    assert embedder.alignment == "dlib-150"
    assert embedder.runtime.name in ("onnxruntime", "openvino")
    assert embedder.embed([]).shape == (0, 128)
    chips = list(np.random.default_rng(5).integers(0, 256, size=(6, 150, 150, 3), dtype=np.uint8))
    out = embedder.embed(chips)  # two runs of at most 4
    assert out.shape == (6, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embedder.embed(chips[5:]), out[5:], atol=1e-5)
    with pytest.raises(ValueError, match="150×150×3"):
        embedder.embed([np.zeros((112, 112, 3), np.uint8)])


def test_unbuildable_graph_is_model_unavailable(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "models"
    not_a_dir.write_text("a file where the cache directory should be")
    with pytest.raises(ModelUnavailable, match="dlib-resnet-v1-onnx"):
        DlibOnnxEmbedder(DLIB_RESNET_V1_ONNX, not_a_dir)
    damaged = tmp_path / "damaged.dat"
    damaged.write_bytes(b"\x01\x01\x01\x0dloss_metric_9")
    with pytest.raises(ModelUnavailable, match="loss layer"):
        DlibOnnxEmbedder(DLIB_RESNET_V1_ONNX, tmp_path / "cache", dat_path=damaged)


def test_registry_entry_shares_dlib_threshold(tmp_path: Path) -> None:
    registry = ModelRegistry(EmbedderContext(model_dir=None, cache_dir=tmp_path))
    spec = registry.spec("dlib-resnet-v1-onnx")
    assert (spec.dim, spec.threshold) == (DLIB_RESNET_V1.dim, DLIB_RESNET_V1.threshold)
    assert registry.entry("dlib-resnet-v1-onnx").alignment == "dlib-150"
    embedder = registry.embedder("dlib-resnet-v1-onnx")
    assert embedder.spec is spec
    assert (tmp_path / GRAPH_FILE).exists()


def test_cli_models_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.cli.main import app
    from service.core.settings import get_settings

    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        built = runner.invoke(app, ["models", "build", "dlib-resnet-v1-onnx"])
        assert built.exit_code == 0, built.output
        assert "built" in built.output
        assert (tmp_path / "models" / GRAPH_FILE).exists()
        again = runner.invoke(app, ["models", "build", "dlib-resnet-v1-onnx"])
        assert again.exit_code == 0 and "cached graph is valid" in again.output
        unknown = runner.invoke(app, ["models", "build", "dlib-resnet-v1"])
        assert unknown.exit_code == 2
        assert "--force" in runner.invoke(app, ["models", "build", "--help"]).output
    finally:
        get_settings.cache_clear()
        shutil.rmtree(tmp_path / "models", ignore_errors=True)
