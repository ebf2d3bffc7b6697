"""Webhook delivery: time from an announcement's commit to its receipt, deliveries a
second to one receiver, and what ``announce`` adds to the transaction of a decision.

    python benchmarks/webhooks.py [--rate 100] [--seconds 5] [--burst 1000] [--dispatchers 4]

Runs an embedded PostgreSQL in a temporary directory, a receiver on 127.0.0.1 and the
real dispatcher. Latency: a thread commits ``verification.completed`` announcements at
``--rate`` a second (each in its own transaction, as a verify does) and the receiver
notes the arrival of each; p50/p95 of arrival minus commit. Throughput: ``--burst``
deliveries queued while no dispatcher runs, then the time until all arrived. Announce
cost: median time of the transaction with and without one subscribed endpoint. A
verify's own latency with webhooks on and off is not measured here (it needs the model
on an idle machine); the announce cost is the difference. Writes
``benchmarks/results/webhooks.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import threading
import time
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from sqlalchemy import Engine, text

from service.db import migrate
from service.db.embedded import EmbeddedPostgres, _sqlalchemy_url
from service.db.session import make_engine
from service.domain.events import TEST, VERIFICATION_COMPLETED, announce, announce_to
from service.domain.webhooks import signing
from service.domain.webhooks.dispatch import DispatchConfig, Dispatcher
from service.domain.webhooks.targets import Policy

ROOT = Path(__file__).resolve().parent
KEY = b"b" * 32


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.time()
                seq = json.loads(body)["data"].get("seq")
                with outer.lock:
                    outer.count += 1
                    if seq is not None:
                        outer.arrivals[int(seq)] = now
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _webhook(engine: Engine, url: str) -> uuid.UUID:
    webhook_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhooks (id, url, secret_encrypted, events, active)"
                " VALUES (:id, :url, :secret, ARRAY[:type], true)"
            ),
            {"id": webhook_id, "url": url, "type": VERIFICATION_COMPLETED,
             "secret": signing.encrypt(KEY, signing.new_secret())},
        )  # fmt: skip
    return webhook_id


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(engine: Engine, receiver: Receiver, rate: float, seconds: float) -> dict[str, float]:
    commits: dict[int, float] = {}
    total = int(rate * seconds)
    started = time.perf_counter()
    for seq in range(total):
        due = started + seq / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        with engine.begin() as conn:
            announce(conn, VERIFICATION_COMPLETED, {"seq": seq}, None)
        commits[seq] = time.time()
    deadline = time.time() + 30
    while len(receiver.arrivals) < total and time.time() < deadline:
        time.sleep(0.05)
    lags = [(receiver.arrivals[s] - commits[s]) * 1000 for s in commits if s in receiver.arrivals]
    return {
        "rate_per_s": rate,
        "sent": total,
        "received": len(lags),
        "p50_ms": round(_percentile(lags, 0.50), 1),
        "p95_ms": round(_percentile(lags, 0.95), 1),
        "max_ms": round(max(lags), 1),
    }


def throughput(engine: Engine, config: DispatchConfig, receiver: Receiver, burst: int,
               webhook_id: uuid.UUID) -> dict[str, float]:  # fmt: skip
    with engine.begin() as conn:
        for _ in range(burst):
            announce_to(conn, webhook_id, TEST, {})
    before = receiver.count
    dispatcher = Dispatcher(engine, KEY, config).start()
    started = time.perf_counter()
    while receiver.count - before < burst and time.perf_counter() - started < 120:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    dispatcher.stop()
    done = receiver.count - before
    return {"queued": burst, "delivered": done, "seconds": round(elapsed, 2),
            "per_second": round(done / elapsed, 1)}  # fmt: skip


def announce_cost(engine: Engine, repeats: int) -> dict[str, float]:
    def timed(announcing: bool = True) -> float:
        samples = []
        for seq in range(repeats):
            t0 = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(text("SELECT 1"))
                if announcing:
                    announce(conn, VERIFICATION_COMPLETED, {"seq": -seq - 1}, None)
            samples.append((time.perf_counter() - t0) * 1000)
        return statistics.median(samples)

    with_one = timed()
    with engine.begin() as conn:
        conn.execute(text("UPDATE webhooks SET active = false"))
    with_none, baseline = timed(), timed(announcing=False)
    return {"median_ms_one_endpoint": round(with_one, 3),
            "median_ms_no_endpoint": round(with_none, 3),
            "median_ms_without_announce": round(baseline, 3), "n": repeats}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--dispatchers", type=int, default=4)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="faceprint-bench-webhooks-"))
    embedded = EmbeddedPostgres(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedded.start()
    try:
        with psycopg.connect(embedded.admin_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_webhooks")
        url = _sqlalchemy_url(embedded.admin_uri(), "bench_webhooks")
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=args.dispatchers + 4)
        receiver = Receiver()
        webhook_id = _webhook(engine, receiver.url)
        config = DispatchConfig(schedule_s=(1.0,), threads=args.dispatchers, poll_s=1.0,
                                policy=Policy(allow_http=True, allow_private=True))  # fmt: skip
        dispatcher = Dispatcher(engine, KEY, config).start()
        lat = latency(engine, receiver, args.rate, args.seconds)
        dispatcher.stop()
        thr = throughput(engine, config, receiver, args.burst, webhook_id)
        cost = announce_cost(engine, 300)
        engine.dispose()
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)
    results = {"machine": platform.processor() or platform.machine(),
               "dispatchers": args.dispatchers, "commit_to_receipt": lat,
               "throughput": thr, "announce": cost}  # fmt: skip
    print(
        f"commit → receipt at {lat['rate_per_s']:.0f}/s: p50 {lat['p50_ms']} ms, "
        f"p95 {lat['p95_ms']} ms, max {lat['max_ms']} ms ({lat['received']}/{lat['sent']})"
    )
    print(
        f"throughput, {args.dispatchers} dispatchers, one receiver: {thr['per_second']}/s "
        f"({thr['delivered']}/{thr['queued']} in {thr['seconds']} s)"
    )
    print(f"announce in a transaction: {cost['median_ms_one_endpoint']} ms with one endpoint, "
          f"{cost['median_ms_no_endpoint']} ms with none, "
          f"{cost['median_ms_without_announce']} ms without announce "
          f"(transaction medians of {cost['n']})")  # fmt: skip
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "webhooks.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
