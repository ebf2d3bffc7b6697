"""Analytics reports over a large verification history.

Generates ``--rows`` history rows (default 1M; the target scale is 10M) spread over a
year with binary COPY into a fresh embedded PostgreSQL, then times every report
(``duplicates`` aside: it reads templates, not history) over the last 30 days and over
everything, and the single-row history insert of verify's hot path with and without the
analytics indexes (BRIN on time, partial on labels). Prints a table and writes
``benchmarks/results/analytics-<rows>.json``. Targets: every 30-day report <= 1 s,
every full-history report <= 10 s at 10M rows; insert p50 unchanged.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy import text

from service.core.principal import Principal, Role
from service.db import migrate
from service.db.embedded import EmbeddedPostgres, _sqlalchemy_url
from service.db.session import make_engine, make_sessionmaker
from service.domain import analytics

ROOT = Path(__file__).resolve().parent
ADMIN = Principal(kind="cli", id="bench", role=Role.admin)
COLUMNS = ("id", "created_at", "kind", "principal_type", "principal_id", "gallery_id",
           "subject_id", "model_id", "similarity", "threshold", "match", "latency_ms",
           "liveness_decision", "liveness_score", "label")  # fmt: skip
TYPES = ("uuid", "timestamptz", "text", "text", "text", "uuid", "uuid", "text", "float8",
         "float8", "bool", "float8", "text", "float8", "text")  # fmt: skip


def generate(libpq: str, rows: int, days: int = 365, seed: int = 7) -> float:
    """COPY ``rows`` rows in time order (as the service appends them); returns seconds."""
    rng = np.random.default_rng(seed)
    galleries = [uuid.uuid4() for _ in range(8)]
    subjects = [uuid.uuid4() for _ in range(5000)]
    keys = [f"key{i}" for i in range(20)]
    start = datetime.now(UTC) - timedelta(days=days)
    step = timedelta(days=days) / rows
    started = time.perf_counter()
    with psycopg.connect(libpq) as conn, conn.cursor() as cur:
        with cur.copy(
            f"COPY verifications ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(TYPES)
            chunk = 100_000
            for base in range(0, rows, chunk):
                n = min(chunk, rows - base)
                kinds = rng.choice(["verify", "search", "liveness"], n, p=[0.7, 0.2, 0.1])
                genuine = rng.random(n) < 0.8
                sims = np.where(genuine, rng.normal(0.7, 0.08, n), rng.normal(0.2, 0.1, n))
                labelled = rng.random(n) < 0.01
                lat = rng.gamma(4.0, 10.0, n)
                g = rng.integers(0, len(galleries), n)
                s = rng.integers(0, len(subjects), n)
                k = rng.integers(0, len(keys), n)
                for i in range(n):
                    kind = str(kinds[i])
                    live = kind == "liveness"
                    sim = None if live else float(sims[i])
                    label = None
                    if labelled[i]:
                        label = ("bona_fide" if genuine[i] else "attack") if live else (
                            "genuine" if genuine[i] else "impostor")  # fmt: skip
                    copy.write_row((
                        uuid.uuid4(), start + step * (base + i), kind, "api_key",
                        keys[k[i]], None if live else galleries[g[i]],
                        None if live else subjects[s[i]], None if live else "arcface-r100",
                        sim, None if live else 0.45, None if live else bool(sim >= 0.45),
                        float(lat[i]), ("live" if genuine[i] else "spoof") if live else None,
                        float(sims[i]) if live else None, label,
                    ))  # fmt: skip
        conn.commit()
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE verifications")
    return time.perf_counter() - started


def time_reports(url: str) -> list[dict]:
    engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    out = []
    for name in analytics.REPORTS:
        if name == "duplicates":
            continue
        for span, since in (("30d", now - timedelta(days=30)), ("all", None)):
            with sessions() as session:
                t0 = time.perf_counter()
                result = analytics.run_report(session, ADMIN, name, analytics.Filters(since=since))
                elapsed = time.perf_counter() - t0
            out.append({"report": name, "span": span, "seconds": round(elapsed, 3),
                        "rows": len(result.rows)})  # fmt: skip
    engine.dispose()
    return out


def insert_p50(url: str, n: int = 300) -> dict[str, float]:
    """Single-row INSERT latency (the history write of one verify) with the analytics
    indexes, then with them dropped (the indexes of revision 0005)."""
    engine = make_engine(url, pool_size=2)
    row = {"p": "api_key", "k": "key1", "g": uuid.uuid4(), "m": "arcface-r100"}
    sql = text(
        "INSERT INTO verifications (id, kind, principal_type, principal_id, gallery_id,"
        " model_id, similarity, threshold, match, latency_ms) VALUES (gen_random_uuid(),"
        " 'verify', :p, :k, :g, :m, 0.7, 0.45, true, 40)"
    )
    result = {}
    for variant in ("with_analytics_indexes", "without"):
        if variant == "without":
            with engine.begin() as conn:
                conn.execute(text("DROP INDEX ix_verifications_created_brin"))
                conn.execute(text("DROP INDEX ix_verifications_labelled"))
        times = []
        for _ in range(n):
            with engine.begin() as conn:
                t0 = time.perf_counter()
                conn.execute(sql, row)
                times.append((time.perf_counter() - t0) * 1000)
        result[variant] = round(statistics.median(times), 3)
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="faceprint-bench-analytics-"))
    embedded = EmbeddedPostgres(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedded.start()
    try:
        admin = embedded.admin_uri()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_analytics")
        url = _sqlalchemy_url(admin, "bench_analytics")
        migrate.upgrade(url)
        libpq = url.replace("postgresql+psycopg://", "postgresql://")
        copy_s = generate(libpq, args.rows)
        reports = time_reports(url)
        inserts = insert_p50(url)
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.rows:,} rows generated with binary COPY in {copy_s:.1f} s")
    print(f"{'report':<10} {'span':<5} {'seconds':>8} {'rows':>6}")
    for r in reports:
        print(f"{r['report']:<10} {r['span']:<5} {r['seconds']:>8.3f} {r['rows']:>6}")
    print(f"history insert p50 ms: {inserts}")
    results = {"machine": platform.processor() or platform.machine(), "rows": args.rows,
               "copy_seconds": round(copy_s, 1), "reports": reports,
               "insert_p50_ms": inserts}  # fmt: skip
    (ROOT / "results").mkdir(exist_ok=True)
    path = ROOT / "results" / f"analytics-{args.rows}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
