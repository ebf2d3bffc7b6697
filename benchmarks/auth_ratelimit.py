"""Cost of authentication and rate limiting per request, one run.

    python benchmarks/auth_ratelimit.py [--repeats 2000] [--redis-url redis://127.0.0.1:6379/15]

Measures (medians, and p99 where it matters): an argon2id hash and verify (the cost of
one login, and of a login with an unknown email), issuing and decoding an access JWT,
and one rate-limiter hit in memory and in Redis (single caller, and 8 threads on one
key for throughput). Without a reachable Redis the Redis rows are skipped. Writes
``benchmarks/results/auth_ratelimit.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from service.core.principal import Role
from service.core.ratelimit import MemoryWindowCounter, RedisWindowCounter, WindowCounter
from service.domain.auth.passwords import Passwords
from service.domain.auth.tokens import AccessTokens

ROOT = Path(__file__).resolve().parent
WINDOW_MS = 60_000


def _timings_ms(action: Callable[[], object], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "n": repeats,
    }


def _throughput(counter: WindowCounter, threads: int, per_thread: int) -> dict[str, float]:
    def work() -> None:
        for _ in range(per_thread):
            counter.hit("bench:shared", limit=10**9, window_ms=WINDOW_MS)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return {"hits_per_s": threads * per_thread / elapsed, "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=2000, help="timed runs per fast operation")
    ap.add_argument("--hash-repeats", type=int, default=15, help="timed argon2 operations")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = ap.parse_args()

    results: dict[str, dict[str, float]] = {}
    passwords = Passwords()
    stored = passwords.hash("correct horse battery staple")
    results["argon2id hash"] = _timings_ms(
        lambda: passwords.hash("correct horse battery staple"), args.hash_repeats
    )
    results["argon2id verify (login)"] = _timings_ms(
        lambda: passwords.verify(stored, "wrong password"), args.hash_repeats
    )
    results["unknown email (dummy verify)"] = _timings_ms(
        lambda: passwords.verify_absent("wrong password"), args.hash_repeats
    )

    tokens = AccessTokens(secret="b" * 48, ttl_s=900)
    user_id = uuid.uuid4()
    token = tokens.issue(user_id=user_id, role=Role.admin).token
    results["JWT issue"] = _timings_ms(
        lambda: tokens.issue(user_id=user_id, role=Role.admin), args.repeats
    )
    results["JWT decode + verify"] = _timings_ms(lambda: tokens.decode(token), args.repeats)

    counters: dict[str, WindowCounter] = {"memory": MemoryWindowCounter()}
    try:
        redis.Redis.from_url(args.redis_url).ping()
        counters["redis"] = RedisWindowCounter(args.redis_url, prefix="faceprint:bench:")
    except redis.RedisError as exc:
        Console(stderr=True).print(f"[yellow]skipping Redis: {exc}[/]")
    throughput: dict[str, dict[str, float]] = {}
    for name, counter in counters.items():
        results[f"limiter hit ({name})"] = _timings_ms(
            lambda c=counter: c.hit("bench:one", limit=10**9, window_ms=WINDOW_MS), args.repeats
        )
        throughput[name] = _throughput(counter, threads=8, per_thread=max(1, args.repeats // 4))
        counter.close()

    table = Table(title="auth and rate limiting (ms; shared machine, noisy)")
    for column in ("operation", "median ms", "p99 ms", "n"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for name, row in results.items():
        table.add_row(name, f"{row['median_ms']:.3f}", f"{row['p99_ms']:.3f}", str(row["n"]))
    for name, row in throughput.items():
        table.add_row(
            f"limiter throughput ({name}, 8 threads)", f"{row['hits_per_s']:.0f}/s", "", ""
        )
    Console().print(table)

    out = ROOT / "results" / "auth_ratelimit.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {"python": platform.python_version(), "cpu": platform.processor()},
                "latency": results,
                "throughput": throughput,
            },
            indent=2,
        )
    )
    Console(stderr=True).print(f"wrote {out}")


if __name__ == "__main__":
    main()
