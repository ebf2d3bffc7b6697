"""How close the service's pgvector search comes to what pgvector itself can do.

    python -m benchmarks.search_pgvector_floor --n 1000000 --dim 128

On the same synthetic embeddings (``benchmarks.search_data``, model-matched unless told
otherwise) and the same PostgreSQL, it builds three HNSW indexes with the same m and
ef_construction and times one query at a time:

- *service*: the ``templates`` table through ``PgVectorIndex.search`` (the partial
  expression index per model, the settings sent with each query, the result mapping);
- *bare*: ``items (id int, embedding vector(dim))`` with a plain index and
  ``ORDER BY embedding <=> $1 LIMIT k``, a prepared statement: pgvector's own floor;
- *bare halfvec*: the same table indexed as ``embedding::halfvec(dim)``
  (``halfvec_cosine_ops``): half the bytes per vector in the graph.

Prints a table and writes ``benchmarks/results/search_pgvector_floor_<n>_<dim>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from rich.console import Console
from rich.table import Table

from benchmarks import search_engines as eng
from benchmarks.search import exact_scan, quality
from benchmarks.search_data import fit_dlib, generate
from retrieval.backends.pgvector_index import PgVectorIndex
from retrieval.base import IndexConfig

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=120)


def _bare_tables(dsn: str, x: np.ndarray, m: int, efc: int) -> dict[str, float]:
    dim = x.shape[1]
    built: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({dim}))")
        with (
            conn.cursor() as cur,
            cur.copy("COPY items (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int4", "vector"])
            for i, v in enumerate(x):
                copy.write_row((i, v))
        for name, expr, ops in (
            ("items_vector", "embedding", "vector_cosine_ops"),
            ("items_halfvec", f"(embedding::halfvec({dim}))", "halfvec_cosine_ops"),
        ):
            started = time.perf_counter()
            conn.execute(
                f"CREATE INDEX {name} ON items USING hnsw ({expr} {ops})"
                f" WITH (m = {m}, ef_construction = {efc})"
            )
            built[f"{name}_build_s"] = time.perf_counter() - started
            built[f"{name}_mb"] = (
                conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]  # type: ignore[index]
                / 2**20
            )
            console.print(f"  {name}: {built[f'{name}_build_s']:.0f} s")
        conn.execute("VACUUM ANALYZE items")
        conn.execute("SELECT pg_prewarm('items'), pg_prewarm('items_vector')")
        conn.execute("SELECT pg_prewarm('items_halfvec')")
    return built


def _time(
    query: Callable[[int, int], list[int]], probes: int, ef: int
) -> tuple[np.ndarray, list[list[int]]]:
    times, results = [], []
    for i in range(probes):
        started = time.perf_counter()
        results.append(query(i, ef))
        times.append(time.perf_counter() - started)
    return np.asarray(times) * 1e3, results


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--efc", type=int, default=64)
    parser.add_argument(
        "--ef", type=lambda s: [int(v) for v in s.split(",")], default=[40, 80, 160]
    )
    parser.add_argument("--distribution", default="model-matched")
    parser.add_argument("--shared-buffers", default="6GB")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    fit = fit_dlib() if args.distribution == "model-matched" else None
    data = generate(args.distribution, n=args.n, dim=args.dim, probes=args.probes, fit=fit)
    layout = eng.make_layout(args.n, int(data.identity[-1]) + 1, 0.01)
    truth = exact_scan(data, np.arange(10), timed=min(200, args.probes))
    index = PgVectorIndex(IndexConfig(m=args.m, ef_construction=args.efc))
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp,
        eng.bench_postgres(Path(tmp), shared_buffers=args.shared_buffers, keep=False) as url,
    ):
        engine = eng.sqlalchemy_engine(url)
        eng.load_postgres(engine, index, data.templates, data.identity, layout)
        built = eng.build_pgvector(engine, index, args.dim)
        console.print(f"  templates: {built['build_s']:.0f} s")
        dsn = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
        built.update(_bare_tables(dsn, data.templates, args.m, args.efc))
        row_of = {tid: r for r, tid in enumerate(layout.template_ids)}
        with engine.connect() as conn, psycopg.connect(dsn, autocommit=True) as bare:
            register_vector(bare)

            def service(i: int, ef: int) -> list[int]:
                hits = index.search(
                    conn, data.probes[i], gallery_id=None, model_id=eng.MODEL, k=10, ef_search=ef
                )
                return [row_of[h.template_id] for h in hits]

            def plain(order_by: sql.Composable) -> Callable[[int, int], list[int]]:
                statement = sql.SQL("SELECT id FROM items ORDER BY {} LIMIT 10").format(order_by)

                def query(i: int, ef: int) -> list[int]:
                    rows = bare.execute(statement, (data.probes[i],), prepare=True).fetchall()
                    return [r[0] for r in rows]

                return query

            engines = {
                "service (templates, PgVectorIndex.search)": service,
                "bare vector table": plain(sql.SQL("embedding <=> %s")),
                "bare table, halfvec index": plain(
                    sql.SQL("embedding::halfvec({d}) <=> %s::vector({d})::halfvec({d})").format(
                        d=sql.Literal(args.dim)
                    )
                ),
            }
            for ef in args.ef:
                bare.execute(f"SET hnsw.ef_search = {int(ef)}")
                for name, query in engines.items():
                    ms, results = _time(query, args.probes, ef)
                    row = {
                        "backend": name,
                        "distribution": args.distribution,
                        "n": args.n,
                        "dim": args.dim,
                        "params": {"m": args.m, "ef_construction": args.efc, "ef_search": ef},
                        "p50_ms": round(float(np.percentile(ms, 50)), 3),
                        "p95_ms": round(float(np.percentile(ms, 95)), 3),
                        "exact_p95_ms": round(truth.p95_ms, 3),
                        **quality(results, np.arange(args.probes), data, truth.top),
                    }
                    rows.append(row)
                    console.print(
                        f"  ef {ef:4d} {name:42s} p95 {row['p95_ms']:.2f}"
                        f"  hit@1 {row['hit_at_1']:.3f}  agree {row['agree_exact_top1']:.3f}"
                    )
        engine.dispose()
    table = Table(title=f"pgvector: service path vs bare tables, {args.n:,} × {args.dim}")
    for col in ("query", "ef", "p50 ms", "p95 ms", "hit@1", "agree exact"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["backend"],
            str(r["params"]["ef_search"]),
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{r['hit_at_1']:.3f}",
            f"{r['agree_exact_top1']:.3f}",
        )
    console.print(table)
    out = args.json or RESULTS / f"search_pgvector_floor_{args.n}_{args.dim}.json"
    out.write_text(json.dumps({"built": built, "rows": rows}, indent=1))
    console.print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
