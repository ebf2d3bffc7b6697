"""Search benchmark: the same synthetic embeddings in every backend and in a NumPy exact
scan, in one run.

    python -m benchmarks.search --n 1000000 --dim 128
    python -m benchmarks.search --n 100000 --dim 512 --backends pgvector,qdrant-edge,milvus

Prints one table (load time, index build time, p50/p95/p99 query latency at k=1 and
k=10, identity hit@1, template recall@10 and top-1 agreement against the exact scan,
index size and memory, per ef_search) and writes it as JSON, one object per row, to
``benchmarks/results/search_<n>_<dim>[_<distribution>].json`` (and ``--json PATH``).
Queries run one at a time through the service's own ``retrieval`` code. Timings on a
shared machine are noisy: read them as ratios against the exact scan of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks import search_engines as eng
from benchmarks.search_data import Synthetic, fit_dlib, generate

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(stderr=True)

# (probe index, k, ef) -> template row numbers, best first
Query = Callable[[int, int, int], list[int]]


@dataclass
class Truth:
    top: np.ndarray  # (probes, 10) exact template rows, all templates
    focus_top: np.ndarray  # (probes, 10) exact rows within the small gallery
    p50_ms: float
    p95_ms: float
    p99_ms: float


def exact_scan(data: Synthetic, small_rows: np.ndarray, timed: int) -> Truth:
    """Ground truth by chunked matrix products; latency of a one-query NumPy scan."""
    x, q = data.templates, data.probes
    top = np.empty((len(q), 10), np.int64)
    focus_top = np.empty((len(q), 10), np.int64)
    small = x[small_rows]
    for start in range(0, len(q), 64):
        scores = q[start : start + 64] @ x.T
        part = np.argpartition(-scores, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        top[start : start + 64] = np.take_along_axis(part, order, 1)
        s_small = q[start : start + 64] @ small.T
        kk = min(10, small.shape[0] - 1)
        part = np.argpartition(-s_small, kk, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(s_small, part, 1), axis=1)
        focus_top[start : start + 64] = small_rows[np.take_along_axis(part, order, 1)]
    times = []
    for probe in q[:timed]:
        started = time.perf_counter()
        scores = x @ probe
        best = np.argpartition(-scores, 10)[:10]
        best[np.argsort(-scores[best])]
        times.append(time.perf_counter() - started)
    p50, p95, p99 = np.percentile(np.asarray(times) * 1e3, [50, 95, 99])
    return Truth(top, focus_top, float(p50), float(p95), float(p99))


def measure(
    query: Query, probes: np.ndarray, k: int, ef: int
) -> tuple[list[list[int]], np.ndarray]:
    results, times = [], []
    for i in probes:
        started = time.perf_counter()
        rows = query(int(i), k, ef)
        times.append(time.perf_counter() - started)
        results.append(rows)
    return results, np.asarray(times) * 1e3


def quality(
    results: list[list[int]], probes: np.ndarray, data: Synthetic, truth_top: np.ndarray
) -> dict[str, float]:
    hit = agree = recall = 0.0
    for res, i in zip(results, probes, strict=True):
        if res:
            hit += float(data.identity[res[0]] == data.probe_identity[i])
            agree += float(res[0] == truth_top[i, 0])
        recall += len(set(res[:10]) & set(truth_top[i].tolist())) / 10
    n = len(probes)
    return {"hit_at_1": hit / n, "agree_exact_top1": agree / n, "recall_at_10": recall / n}


def sweep(
    name: str,
    query: Query,
    data: Synthetic,
    truth: Truth,
    args: argparse.Namespace,
    base: dict[str, Any],
    probes: int | None = None,
    efs: list[int] | None = None,
) -> list[dict[str, Any]]:
    """One row per ef_search: latency at k=1 and k=10, quality at k=10."""
    main = np.arange(probes or args.probes)
    rows = []
    for ef in efs or args.ef:
        _, t1 = measure(query, main, 1, ef)
        results, t10 = measure(query, main, 10, ef)
        row = {**base, "backend": name, "params": {**base["params"], "ef_search": ef}}
        row["probes"] = len(main)
        row.update(_percentiles(t10), **{f"k1_{k}": v for k, v in _percentiles(t1).items()})
        row.update(quality(results, main, data, truth.top))
        rows.append(row)
        _progress(row)
    return rows


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
    }


def _progress(row: dict[str, Any]) -> None:
    console.print(
        f"  {row['backend']:<22} ef={row['params'].get('ef_search', '-')!s:<4} "
        f"p95 {row['p95_ms']:.2f} ms  hit@1 {row['hit_at_1']:.4f}"
        f"  agree {row['agree_exact_top1']:.4f}"
    )


def run_pgvector(
    data: Synthetic,
    truth: Truth,
    layout: eng.Layout,
    args: argparse.Namespace,
    base: dict[str, Any],
    workdir: Path,
) -> list[dict[str, Any]]:
    from retrieval.backends.pgvector_index import PgVectorIndex
    from retrieval.base import IndexConfig

    index = PgVectorIndex(
        IndexConfig(m=args.m, ef_construction=args.efc, max_scan_tuples=args.max_scan_tuples)
    )
    base = {
        **base,
        "params": {
            "m": args.m,
            "ef_construction": args.efc,
            "shared_buffers": args.shared_buffers,
            "huge_pages": args.huge_pages,
            "maintenance_work_mem": args.maintenance_work_mem,
        },
    }
    with eng.bench_postgres(
        workdir,
        shared_buffers=args.shared_buffers,
        keep=False,
        huge_pages=args.huge_pages,
        maintenance_work_mem=args.maintenance_work_mem,
    ) as url:
        engine = eng.sqlalchemy_engine(url)
        started = time.perf_counter()
        eng.load_postgres(engine, index, data.templates, data.identity, layout)
        load_s = time.perf_counter() - started
        console.print(f"  pgvector load {load_s:.1f} s; building HNSW …")
        built = eng.build_pgvector(engine, index, data.templates.shape[1])
        console.print(
            f"  pgvector build {built['build_s']:.1f} s, index {built['index_mb']:.0f} MB"
        )
        row_of = {tid: r for r, tid in enumerate(layout.template_ids)}
        with engine.connect() as conn:

            def query(
                i: int, k: int, ef: int, gallery: Any = None, using: PgVectorIndex = index
            ) -> list[int]:
                hits = using.search(
                    conn, data.probes[i], gallery_id=gallery, model_id=eng.MODEL, k=k, ef_search=ef
                )
                return [row_of[h.template_id] for h in hits]

            # The same filtered search forced through HNSW + iterative scan (no exact path).
            iterative = PgVectorIndex(replace(index.config, exact_below=0))

            common = {
                **base,
                "load_s": round(load_s, 1),
                "build_s": round(built["build_s"], 1),
                "index_mb": round(built["index_mb"], 1),
                "table_mb": round(built["table_mb"], 1),
                "memory_mb": round(eng.postgres_memory_mb(engine), 1),
            }
            rows = sweep("pgvector", query, data, truth, args, common)
            small = layout.small
            size = index.gallery_size(conn, small, eng.MODEL)
            plan = "exact via btree" if size <= index.config.exact_below else "HNSW iterative scan"
            rows.append(
                _filtered(
                    lambda i, k, ef: query(i, k, ef, small), f"pgvector ({plan})", data, truth,
                    args, common,
                )
            )  # fmt: skip
            rows.append(
                _filtered(
                    lambda i, k, ef: query(i, k, ef, small, iterative),
                    "pgvector (HNSW iterative scan)", data, truth, args, common,
                )
            )  # fmt: skip
            rows.append(_verify(conn, index, data, layout, args, common))
        engine.dispose()
    return rows


def _filtered(
    query: Query,
    name: str,
    data: Synthetic,
    truth: Truth,
    args: argparse.Namespace,
    common: dict[str, Any],
) -> dict[str, Any]:
    """Search inside the small gallery (≈1% of the templates) with the default ef."""
    focus = np.arange(args.probes, len(data.probes))
    ef = args.ef_default
    results, t10 = measure(query, focus, 10, ef)
    row = {
        **common,
        "backend": f"{name} filtered {args.small_fraction:.0%} gallery",
        "params": {**common["params"], "ef_search": ef},
    }
    row.update(_percentiles(t10), probes=len(focus))
    row.update(quality(results, focus, data, truth.focus_top))
    _progress(row)
    return row


def _verify(
    conn: Any,
    index: Any,
    data: Synthetic,
    layout: eng.Layout,
    args: argparse.Namespace,
    common: dict[str, Any],
) -> dict[str, Any]:
    """1:1 verify against subjects holding 10 templates, through the btree."""
    first = int(data.identity[-1]) + 1 - data.verify_identities
    rng = np.random.default_rng(1)
    times = []
    for _ in range(args.probes):
        ident = int(rng.integers(first, first + data.verify_identities))
        probe = data.probes[int(rng.integers(0, args.probes))]
        started = time.perf_counter()
        index.verify(conn, probe, subject_id=layout.subject_ids[ident], model_id=eng.MODEL)
        times.append(time.perf_counter() - started)
    row = {**common, "backend": "pgvector verify 1:1 (10 templates)", "params": {}}
    row.update(_percentiles(np.asarray(times) * 1e3))
    row.update(hit_at_1=None, agree_exact_top1=None, recall_at_10=None)
    console.print(f"  verify p95 {row['p95_ms']:.3f} ms")
    return row


def run_external(
    name: str,
    data: Synthetic,
    truth: Truth,
    layout: eng.Layout,
    args: argparse.Namespace,
    base: dict[str, Any],
    workdir: Path,
) -> list[dict[str, Any]]:
    from retrieval.base import IndexConfig

    dim = data.templates.shape[1]
    before = eng.rss_mb()
    if name == "qdrant-edge":
        from retrieval.backends.qdrant_edge_index import QdrantEdgeIndex

        path = workdir / "edge"
        index: Any = QdrantEdgeIndex(
            eng.edge_config(path, args.m, args.qdrant_efc, args.ef_default), path
        )
        params = {"m": args.m, "ef_construction": args.qdrant_efc}
    else:
        from retrieval.backends.milvus_index import MilvusIndex

        path = workdir / "milvus.db"
        index = MilvusIndex(
            IndexConfig(backend="milvus", m=args.m, ef_construction=args.efc), str(path)
        )
        params = {"index": "FLAT (milvus-lite)" if index.lite else "HNSW"}
    index.ensure_model(None, eng.MODEL, dim)
    started = time.perf_counter()
    for start in range(0, len(data.templates), 5_000):
        stop = min(len(data.templates), start + 5_000)
        index.upsert(eng.MODEL, eng.points(data.templates, data.identity, layout, start, stop))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    index.optimize(eng.MODEL)
    build_s = time.perf_counter() - started
    console.print(f"  {name} load {load_s:.1f} s, build {build_s:.1f} s")
    row_of = {tid: r for r, tid in enumerate(layout.template_ids)}

    def query(i: int, k: int, ef: int, gallery: Any = None) -> list[int]:
        found = index.fetch(eng.MODEL, data.probes[i], gallery, k, max(ef, k))
        return [row_of[t] for t, _ in found]

    size = (
        eng.du_mb(path) if path.is_dir() else path.stat().st_size / 2**20 if path.exists() else 0.0
    )
    common = {
        **base,
        "params": params,
        "load_s": round(load_s, 1),
        "build_s": round(build_s, 1),
        "index_mb": round(size, 1),
        "memory_mb": round(eng.rss_mb() - before, 1),
    }
    if name == "qdrant-edge":
        info = index._shard(eng.MODEL).info()
        common["indexed_vectors"] = int(info.indexed_vectors_count)
        common["segments"] = int(info.segments_count)
    if name == "milvus" and index.lite:
        # milvus-lite scans (FLAT): ef means nothing, and each query costs a full scan.
        rows = sweep(name, query, data, truth, args, common, args.lite_probes, [args.ef_default])
    else:
        rows = sweep(name, query, data, truth, args, common)
    rows.append(
        _filtered(lambda i, k, ef: query(i, k, ef, layout.small), name, data, truth, args, common)
    )
    index.close()
    return rows


def run_hnswlib(
    data: Synthetic, truth: Truth, args: argparse.Namespace, base: dict[str, Any]
) -> list[dict[str, Any]]:
    """hnswlib in memory: the reference for what an HNSW walk costs on this host.

    Not a backend of the service; it has no gallery filter or persistence. It shows how
    much of an engine's latency is the graph walk itself (memory latency) and how much
    the engine's own overhead (PostgreSQL's buffer manager, Qdrant's segments).
    """
    try:
        import hnswlib
    except ImportError:
        console.print("  hnswlib skipped: not installed (pip install -e '.[bench]')")
        return []

    n, dim = data.templates.shape
    before = eng.rss_mb()
    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(max_elements=n, M=args.m, ef_construction=args.hnswlib_efc, random_seed=0)
    index.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        index.add_items(data.templates[start:stop], np.arange(start, stop))
    build_s = time.perf_counter() - started
    index.set_num_threads(1)
    console.print(f"  hnswlib build {build_s:.1f} s")

    def query(i: int, k: int, ef: int) -> list[int]:
        index.set_ef(max(ef, k))
        labels, _ = index.knn_query(data.probes[i], k=k)
        return [int(v) for v in labels[0]]

    common = {
        **base,
        "params": {"m": args.m, "ef_construction": args.hnswlib_efc},
        "load_s": 0.0,
        "build_s": round(build_s, 1),
        "index_mb": round(index.index_file_size() / 2**20, 1),
        "memory_mb": round(eng.rss_mb() - before, 1),
    }
    return sweep("hnswlib (in-memory reference)", query, data, truth, args, common)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    fit = fit_dlib() if "model-matched" in args.distributions else None
    if fit is not None and (args.intra_cos is not None or args.inter_cos is not None):
        # A cone other than the fitted one (e.g. the 0.82 / 0.97 quoted in issue #4), to
        # see how much of a result is the data's and how much the engine's.
        fit = replace(
            fit,
            intra_cos=args.intra_cos if args.intra_cos is not None else fit.intra_cos,
            inter_cos=args.inter_cos if args.inter_cos is not None else fit.inter_cos,
        )
    rows: list[dict[str, Any]] = []
    for distribution in args.distributions:
        console.rule(f"{distribution}: n={args.n:,} dim={args.dim}")
        data = generate(
            distribution,
            n=args.n,
            dim=args.dim,
            probes=args.probes,
            seed=args.seed,
            fit=fit,
            focus_identities=args.small_fraction,
            focus_probes=args.probes // 4,
            verify_identities=200,
        )
        identities = int(data.identity[-1]) + 1
        layout = eng.make_layout(args.n, identities, args.small_fraction)
        small_rows = np.flatnonzero(data.identity < layout.small_identities)
        console.print(f"  generated; stats {data.stats}; exact scan …")
        truth = exact_scan(data, small_rows, timed=min(args.probes, args.exact_timed))
        base = {
            "distribution": distribution,
            "n": args.n,
            "dim": args.dim,
            "probes": args.probes,
            "generated": {k: round(v, 4) for k, v in data.stats.items()},
            "exact_p95_ms": round(truth.p95_ms, 3),
        }
        exact_row = {
            **base,
            "backend": "numpy exact (float32)",
            "params": {},
            "p50_ms": round(truth.p50_ms, 3),
            "p95_ms": round(truth.p95_ms, 3),
            "p99_ms": round(truth.p99_ms, 3),
            "agree_exact_top1": 1.0,
            "recall_at_10": 1.0,
            **quality(
                [list(t) for t in truth.top[: args.probes]], np.arange(args.probes), data, truth.top
            ),
        }
        rows.append(exact_row)
        _progress(exact_row)
        for backend in args.backends:
            if backend == "milvus" and args.n > args.milvus_max_n:
                console.print(
                    "  milvus skipped: milvus-lite has no ANN index;"
                    f" run it at n ≤ {args.milvus_max_n:,}"
                )
                continue
            with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-", dir=args.workdir) as tmp:
                if backend == "pgvector":
                    rows += run_pgvector(data, truth, layout, args, base, Path(tmp))
                elif backend == "hnswlib":
                    rows += run_hnswlib(data, truth, args, base)
                else:
                    rows += run_external(backend, data, truth, layout, args, base, Path(tmp))
            _write(rows, args, partial=True)
        del data, truth
    print_table(rows)
    _write(rows, args, partial=False)
    return rows


def _write(rows: list[dict[str, Any]], args: argparse.Namespace, *, partial: bool) -> None:
    """Write the rows so far (a long run that dies keeps what it measured)."""
    meta = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "revision": eng.git_revision(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for row in rows:
        row.setdefault("run", meta)
        row["run"]["complete"] = not partial
    suffix = "" if len(args.distributions) > 1 else f"_{args.distributions[0]}"
    out = RESULTS / f"search_{args.n}_{args.dim}{suffix}.json"
    for path in [Path(args.json)] if args.json else [out]:
        Path(path).write_text(json.dumps(rows, indent=1, default=str))
        if not partial:
            console.print(f"wrote {path}")


def print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(
        title="search benchmark (ms; one query at a time; shared machine: read as ratios)"
    )
    for col in (
        "backend",
        "data",
        "n×dim",
        "params",
        "load s",
        "build s",
        "size MB",
        "mem MB",
        "k1 p50/p95/p99",
        "k10 p50/p95/p99",
        "hit@1",
        "recall@10",
        "agree top1",
        "exact p95",
    ):
        table.add_column(col)

    def f(v: Any, spec: str = ".3f") -> str:
        return "-" if v is None else format(v, spec)

    for r in rows:
        params = ",".join(
            f"{k}={v}" for k, v in r.get("params", {}).items() if k != "shared_buffers"
        )
        table.add_row(
            r["backend"],
            r["distribution"],
            f"{r['n']:,}×{r['dim']}",
            params,
            f(r.get("load_s"), ".1f"),
            f(r.get("build_s"), ".1f"),
            f(r.get("index_mb"), ".0f"),
            f(r.get("memory_mb"), ".0f"),
            "/".join(f(r.get(f"k1_{p}"), ".2f") for p in ("p50_ms", "p95_ms", "p99_ms"))
            if "k1_p50_ms" in r
            else "-",
            "/".join(f(r.get(p), ".2f") for p in ("p50_ms", "p95_ms", "p99_ms")),
            f(r.get("hit_at_1"), ".4f"),
            f(r.get("recall_at_10"), ".4f"),
            f(r.get("agree_exact_top1"), ".4f"),
            f(r.get("exact_p95_ms"), ".2f"),
        )
    Console(width=250).print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="templates (default 100000)")
    parser.add_argument(
        "--dim", type=int, default=128, help="dimension: 128 (dlib) or 512 (ArcFace)"
    )
    parser.add_argument(
        "--probes", type=int, default=2000, help="queries per setting (default 2000)"
    )
    parser.add_argument(
        "--ef",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[40, 80, 160],
        help="ef_search values, comma-separated (default 40,80,160)",
    )
    parser.add_argument("--ef-default", type=int, default=80, help="ef for the filtered search")
    parser.add_argument(
        "--backends",
        type=lambda s: s.split(","),
        default=["pgvector", "qdrant-edge", "milvus"],
        help="comma-separated: pgvector, qdrant-edge, milvus, hnswlib (the in-memory"
        " reference; pip install -e '.[bench]')",
    )
    parser.add_argument(
        "--distributions",
        type=lambda s: s.split(","),
        default=["model-matched", "isotropic"],
        help="comma-separated: model-matched, isotropic",
    )
    parser.add_argument("--m", type=int, default=16, help="HNSW m (every engine)")
    parser.add_argument("--efc", type=int, default=64, help="pgvector ef_construction")
    parser.add_argument("--qdrant-efc", type=int, default=100, help="Qdrant Edge ef_construct")
    parser.add_argument("--hnswlib-efc", type=int, default=100, help="hnswlib ef_construction")
    parser.add_argument(
        "--max-scan-tuples", type=int, default=50_000, help="pgvector hnsw.max_scan_tuples"
    )
    parser.add_argument(
        "--shared-buffers", default="6GB", help="the benchmark server's shared_buffers"
    )
    parser.add_argument(
        "--maintenance-work-mem",
        default="2GB",
        help="the benchmark server's maintenance_work_mem (4GB for 1M x 512: the HNSW"
        " graph must fit for an in-memory build)",
    )
    parser.add_argument(
        "--huge-pages",
        choices=["try", "on", "off"],
        default="try",
        help="PostgreSQL's huge_pages (on: the host must have vm.nr_hugepages reserved)",
    )
    parser.add_argument(
        "--small-fraction", type=float, default=0.01, help="filtered gallery's share"
    )
    parser.add_argument(
        "--milvus-max-n", type=int, default=100_000, help="largest n for milvus-lite (FLAT)"
    )
    parser.add_argument(
        "--lite-probes", type=int, default=500, help="probes for milvus-lite (a full scan each)"
    )
    parser.add_argument(
        "--exact-timed", type=int, default=500, help="probes timed for the exact scan"
    )
    parser.add_argument(
        "--intra-cos",
        type=float,
        default=None,
        help="model-matched: mean same-person cosine to generate (default: the fit's)",
    )
    parser.add_argument(
        "--inter-cos",
        type=float,
        default=None,
        help="model-matched: mean different-person cosine to generate (default: the fit's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", default=None, help="where engines keep their files (default: tmp)"
    )
    parser.add_argument(
        "--json", default=None, help="write the rows as JSON here (default: results/search_…)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
