"""Qdrant Edge (``qdrant-edge-py``): Qdrant's embedded engine, in-process, on disk, real
HNSW. One shard directory per model under ``qdrant_edge_path``; the gallery and subject
ids are payload, the gallery keyword-indexed so filtered search stays exact."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import qdrant_edge as qe
from sqlalchemy import Connection

from retrieval.backends.external import PostgresCheckedReads
from retrieval.base import IndexConfig, IndexHealth, IndexPoint, Vector, check_model_id
from retrieval.errors import IndexUnavailable
from retrieval.pg import PgSupport


class QdrantEdgeIndex(PostgresCheckedReads):
    name = "qdrant-edge"
    external = True

    def __init__(self, config: IndexConfig, path: Path) -> None:
        self.config = config
        self.root = path
        self.root.mkdir(parents=True, exist_ok=True)
        self.pg = PgSupport()
        self._shards: dict[str, qe.EdgeShard] = {}
        # Edge shards are not documented as safe for concurrent writers.
        self._lock = threading.Lock()

    def _path(self, model_id: str) -> Path:
        return self.root / check_model_id(model_id)

    def _shard_config(self, dim: int) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(
                m=self.config.m,
                ef_construct=self.config.ef_construction,
                full_scan_threshold=10_000,
                payload_m=self.config.m,
            ),
        )

    def _shard(self, model_id: str) -> qe.EdgeShard:
        shard = self._shards.get(model_id)
        if shard is not None:
            return shard
        with self._lock:
            shard = self._shards.get(model_id)
            if shard is None:
                path = self._path(model_id)
                if not path.exists():
                    raise IndexUnavailable(self.name, f"no shard for model {model_id!r}")
                shard = self._load(path)
                self._shards[model_id] = shard
            return shard

    def _load(self, path: Path) -> qe.EdgeShard:
        try:
            return qe.EdgeShard.load(str(path))
        except Exception as exc:
            # The engine locks the shard's write-ahead log for the process holding it.
            if "WouldBlock" in str(exc):
                raise IndexUnavailable(
                    self.name,
                    "the shard is open in another process (a running `faceprint serve`?);"
                    " one process at a time can hold a Qdrant Edge shard",
                ) from exc
            raise

    def ensure_model(self, conn: Connection | None, model_id: str, dim: int) -> None:
        with self._lock:
            if model_id in self._shards:
                return
            path = self._path(model_id)
            if path.exists():
                shard = self._load(path)
            else:
                shard = qe.EdgeShard.create(str(path), self._shard_config(dim))
                shard.update(
                    qe.UpdateOperation.create_field_index(
                        "gallery_id", qe.PayloadSchemaType.Keyword
                    )
                )
            self._shards[model_id] = shard

    def drop_model(self, conn: Connection | None, model_id: str) -> None:
        with self._lock:
            shard = self._shards.pop(model_id, None)
            path = self._path(model_id)
            if shard is None and path.exists():
                # Taking the shard first: files deleted under another process that holds
                # it would leave that process writing to a shard nobody will open again.
                # (A shard held elsewhere raises IndexUnavailable here and stays.)
                try:
                    shard = self._load(path)
                except IndexUnavailable:
                    raise
                except Exception:  # noqa: BLE001 - an unreadable shard is what a rebuild replaces
                    shard = None
            if shard is not None:
                shard.close()
            shutil.rmtree(path, ignore_errors=True)

    def upsert(self, model_id: str, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        shard = self._shard(model_id)
        op = qe.UpdateOperation.upsert_points(
            [
                qe.Point(
                    str(p.template_id),
                    p.vector.tolist(),
                    {"gallery_id": str(p.gallery_id), "subject_id": str(p.subject_id)},
                )
                for p in points
            ]
        )
        with self._lock:
            shard.update(op)

    def delete(self, model_id: str, template_ids: Sequence[uuid.UUID]) -> None:
        if not template_ids:
            return
        shard = self._shard(model_id)
        with self._lock:
            shard.update(qe.UpdateOperation.delete_points([str(t) for t in template_ids]))

    def delete_gallery(self, model_id: str, gallery_id: uuid.UUID) -> None:
        shard = self._shard(model_id)
        with self._lock:
            shard.update(qe.UpdateOperation.delete_points_by_filter(_gallery_filter(gallery_id)))

    def optimize(self, model_id: str) -> None:
        """Build HNSW over the segments that outgrew the indexing threshold, then flush.
        Edge runs no background optimizer: rebuild and the relay loop call this."""
        shard = self._shard(model_id)
        with self._lock:
            shard.optimize()
            shard.flush()

    # -- reads ----------------------------------------------------------------------

    def fetch(
        self, model_id: str, probe: Vector, gallery_id: uuid.UUID | None, limit: int, ef: int
    ) -> list[tuple[uuid.UUID, float]]:
        points = self._shard(model_id).query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(probe.tolist()),
                filter=_gallery_filter(gallery_id) if gallery_id is not None else None,
                params=qe.SearchParams(hnsw_ef=ef),
                with_payload=False,
            )
        )
        return [(_as_uuid(p.id), float(p.score)) for p in points]

    def count(
        self, conn: Connection | None, *, model_id: str, gallery_id: uuid.UUID | None = None
    ) -> int:
        request = qe.CountRequest(
            exact=True, filter=_gallery_filter(gallery_id) if gallery_id is not None else None
        )
        return int(self._shard(model_id).count(request))

    def health(self, conn: Connection | None) -> IndexHealth:
        try:
            models = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            total = sum(self._shard(m).info().points_count for m in models)
        except Exception as exc:  # noqa: BLE001 - any engine failure is "unhealthy"
            return IndexHealth(ok=False, backend=self.name, detail=str(exc))
        return IndexHealth(ok=True, backend=self.name, detail=f"{total} points in {self.root}")

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()


def _gallery_filter(gallery_id: uuid.UUID) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition("gallery_id", match=qe.MatchValue(str(gallery_id)))])


def _as_uuid(point_id: object) -> uuid.UUID:
    return point_id if isinstance(point_id, uuid.UUID) else uuid.UUID(str(point_id))
