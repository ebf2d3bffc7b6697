"""Milvus through pymilvus: a Milvus server or cluster (``FACEPRINT_MILVUS_URI=http://…``)
or a milvus-lite file (``…/milvus.db``) for tests. One collection per model. milvus-lite
has no ANN index, so a FLAT index is used there; a server gets HNSW with the configured
m / ef_construction and ``ef`` per query."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from pymilvus import DataType, MilvusClient, MilvusException
from sqlalchemy import Connection

from retrieval.backends.external import PostgresCheckedReads, collection_name
from retrieval.base import IndexConfig, IndexHealth, IndexPoint, Vector
from retrieval.milvus_uri import is_milvus_lite
from retrieval.pg import PgSupport

_ID_LEN = 36  # a UUID's text form


class MilvusIndex(PostgresCheckedReads):
    name = "milvus"
    external = True

    def __init__(self, config: IndexConfig, uri: str) -> None:
        self.config = config
        self.uri = uri
        self.lite = is_milvus_lite(uri)
        self.client = MilvusClient(uri)
        self.pg = PgSupport()

    def ensure_model(self, conn: Connection | None, model_id: str, dim: int) -> None:
        name = collection_name(model_id)
        if self.client.has_collection(name):
            return
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=_ID_LEN)
        schema.add_field("gallery_id", DataType.VARCHAR, max_length=_ID_LEN)
        schema.add_field("subject_id", DataType.VARCHAR, max_length=_ID_LEN)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = self.client.prepare_index_params()
        if self.lite:
            index.add_index("vector", index_type="FLAT", metric_type="COSINE")
            # Strong: a delete is visible to the very next query.
            self.client.create_collection(
                name, schema=schema, index_params=index, consistency_level="Strong"
            )
            return
        # On a server the indexes are made one by one: the scalar one may need a second
        # try, and create_collection(index_params=…) would leave the collection behind,
        # unloaded, when its index fails.
        self.client.create_collection(name, schema=schema, consistency_level="Strong")
        index.add_index(
            "vector",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": self.config.m, "efConstruction": self.config.ef_construction},
        )
        self.client.create_index(name, index)
        self._index_gallery_field(name)
        self.client.load_collection(name)

    def _index_gallery_field(self, name: str) -> None:
        """INVERTED where the server has it (Milvus 2.4 on); Milvus 2.3 refuses it for a
        VARCHAR ("expected=Trie") and gets its default scalar index instead."""
        if not _before_2_4(self.client.get_server_version()):
            inverted = self.client.prepare_index_params()
            inverted.add_index("gallery_id", index_type="INVERTED")
            try:
                self.client.create_index(name, inverted)
                return
            except MilvusException as exc:  # a server that hides its version, say
                if "INVERTED" not in str(exc) and "expected=" not in str(exc):
                    raise
        default = self.client.prepare_index_params()
        default.add_index("gallery_id", index_type="")
        self.client.create_index(name, default)

    def drop_model(self, conn: Connection | None, model_id: str) -> None:
        self.client.drop_collection(collection_name(model_id))

    def upsert(self, model_id: str, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        self.client.upsert(
            collection_name(model_id),
            [
                {
                    "id": str(p.template_id),
                    "gallery_id": str(p.gallery_id),
                    "subject_id": str(p.subject_id),
                    "vector": p.vector.tolist(),
                }
                for p in points
            ],
        )

    def delete(self, model_id: str, template_ids: Sequence[uuid.UUID]) -> None:
        if template_ids:
            self.client.delete(collection_name(model_id), ids=[str(t) for t in template_ids])

    def delete_gallery(self, model_id: str, gallery_id: uuid.UUID) -> None:
        self.client.delete(collection_name(model_id), filter=_gallery_expr(gallery_id))

    def optimize(self, model_id: str) -> None:
        """Seal growing segments so the server indexes them."""
        self.client.flush(collection_name(model_id))

    def fetch(
        self, model_id: str, probe: Vector, gallery_id: uuid.UUID | None, limit: int, ef: int
    ) -> list[tuple[uuid.UUID, float]]:
        result = self.client.search(
            collection_name(model_id),
            data=[probe.tolist()],
            limit=limit,
            filter=_gallery_expr(gallery_id) if gallery_id is not None else "",
            search_params={"metric_type": "COSINE", "params": {} if self.lite else {"ef": ef}},
            output_fields=[],
        )
        return [(uuid.UUID(str(hit["id"])), float(hit["distance"])) for hit in result[0]]

    def count(
        self, conn: Connection | None, *, model_id: str, gallery_id: uuid.UUID | None = None
    ) -> int:
        rows = self.client.query(
            collection_name(model_id),
            filter=_gallery_expr(gallery_id) if gallery_id is not None else "",
            output_fields=["count(*)"],
        )
        return int(rows[0]["count(*)"])

    def health(self, conn: Connection | None) -> IndexHealth:
        try:
            names = self.client.list_collections()
        except Exception as exc:  # noqa: BLE001 - any client failure is "unhealthy"
            return IndexHealth(ok=False, backend=self.name, detail=str(exc))
        return IndexHealth(ok=True, backend=self.name, detail=f"{len(names)} collections")

    def close(self) -> None:
        self.client.close()


def _before_2_4(version: str) -> bool:
    """True for a server version such as "v2.3.5-lite"; False when it cannot tell."""
    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    return match is not None and (int(match[1]), int(match[2])) < (2, 4)


def _gallery_expr(gallery_id: uuid.UUID) -> str:
    # str(UUID) is hex and dashes only, so it cannot break out of the quotes.
    return f'gallery_id == "{uuid.UUID(str(gallery_id))}"'
