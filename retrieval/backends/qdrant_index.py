"""Qdrant through qdrant-client: a server or cluster over the network
(``FACEPRINT_QDRANT_URL=http://…``), or qdrant-client's local mode (``:memory:`` or
``local:<dir>``), a brute-force scan fit only for small tests. One collection per model;
gallery and subject ids are payload, the gallery keyword-indexed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from sqlalchemy import Connection

from retrieval.backends.external import PostgresCheckedReads, collection_name
from retrieval.base import IndexConfig, IndexHealth, IndexPoint, Vector
from retrieval.pg import PgSupport


def make_client(config: IndexConfig) -> QdrantClient:
    url = config.qdrant_url or ":memory:"
    if url == ":memory:":
        return QdrantClient(location=":memory:")
    if url.startswith("local:"):
        return QdrantClient(path=url.removeprefix("local:"))
    return QdrantClient(url=url, api_key=config.qdrant_api_key, timeout=10)


class QdrantIndex(PostgresCheckedReads):
    name = "qdrant"
    external = True

    def __init__(self, config: IndexConfig, client: QdrantClient) -> None:
        self.config = config
        self.client = client
        self.pg = PgSupport()
        # Local mode scans everything: payload indexes and hnsw_ef mean nothing there.
        self.local = not (config.qdrant_url or "").startswith(("http://", "https://"))

    def ensure_model(self, conn: Connection | None, model_id: str, dim: int) -> None:
        name = collection_name(model_id)
        if self.client.collection_exists(name):
            return
        self.client.create_collection(
            name,
            vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
            hnsw_config=qm.HnswConfigDiff(
                m=self.config.m, ef_construct=self.config.ef_construction, payload_m=self.config.m
            ),
        )
        if not self.local:
            self.client.create_payload_index(name, "gallery_id", qm.PayloadSchemaType.KEYWORD)

    def drop_model(self, conn: Connection | None, model_id: str) -> None:
        self.client.delete_collection(collection_name(model_id))

    def upsert(self, model_id: str, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        self.client.upsert(
            collection_name(model_id),
            points=[
                qm.PointStruct(
                    id=str(p.template_id),
                    vector=p.vector.tolist(),
                    payload={"gallery_id": str(p.gallery_id), "subject_id": str(p.subject_id)},
                )
                for p in points
            ],
            wait=True,
        )

    def delete(self, model_id: str, template_ids: Sequence[uuid.UUID]) -> None:
        if not template_ids:
            return
        self.client.delete(
            collection_name(model_id),
            points_selector=qm.PointIdsList(points=[str(t) for t in template_ids]),
            wait=True,
        )

    def delete_gallery(self, model_id: str, gallery_id: uuid.UUID) -> None:
        self.client.delete(
            collection_name(model_id),
            points_selector=qm.FilterSelector(filter=_gallery_filter(gallery_id)),
            wait=True,
        )

    def optimize(self, model_id: str) -> None:
        """Nothing to do: the Qdrant server runs its own optimizers in the background."""

    def fetch(
        self, model_id: str, probe: Vector, gallery_id: uuid.UUID | None, limit: int, ef: int
    ) -> list[tuple[uuid.UUID, float]]:
        response = self.client.query_points(
            collection_name(model_id),
            query=probe.tolist(),
            query_filter=_gallery_filter(gallery_id) if gallery_id is not None else None,
            search_params=None if self.local else qm.SearchParams(hnsw_ef=ef),
            limit=limit,
            with_payload=False,
        )
        return [(uuid.UUID(str(p.id)), float(p.score)) for p in response.points]

    def count(
        self, conn: Connection | None, *, model_id: str, gallery_id: uuid.UUID | None = None
    ) -> int:
        result = self.client.count(
            collection_name(model_id),
            count_filter=_gallery_filter(gallery_id) if gallery_id is not None else None,
            exact=True,
        )
        return int(result.count)

    def health(self, conn: Connection | None) -> IndexHealth:
        try:
            names = [c.name for c in self.client.get_collections().collections]
        except Exception as exc:  # noqa: BLE001 - any client failure is "unhealthy"
            return IndexHealth(ok=False, backend=self.name, detail=str(exc))
        return IndexHealth(ok=True, backend=self.name, detail=f"{len(names)} collections")

    def close(self) -> None:
        self.client.close()


def _gallery_filter(gallery_id: uuid.UUID) -> qm.Filter:
    return qm.Filter(
        must=[qm.FieldCondition(key="gallery_id", match=qm.MatchValue(value=str(gallery_id)))]
    )
