"""Drive POST /v1/verify over HTTP from this process against a `faceprint serve` in
another, and print latency percentiles and throughput per concurrency level.

By default it starts the service itself on a fresh embedded data directory, enrolls one
photo and verifies another photo of the same person against it:

    python benchmarks/http_verify.py --seconds 30 --concurrency 1 4 16

or point it at a running service: ``--url http://127.0.0.1:8000 --key fp_…``.
The ``Server-Timing`` header of each answer splits the service's time into the face
pipeline and the rest (parsing, auth, index query, history write).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
FACES = REPO.parent / "shared" / "data" / "faces" / "identities"
RESULTS = REPO / "benchmarks" / "results"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def multipart_body(fields: dict[str, str], file: tuple[str, str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    field, filename, data = file
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def parse_server_timing(header: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


class Service:
    """`faceprint serve` on a temporary data directory, stopped on exit."""

    def __init__(self, port: int, workers: int) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="faceprint-bench-"))
        # The limiter would answer 429 long before the service is saturated: this measures
        # the service, so the benchmark's own server runs without it.
        self.env = dict(
            os.environ, FACEPRINT_DATA_DIR=str(self.data), FACEPRINT_RATE_LIMIT_PER_MINUTE="0"
        )
        self.env.pop("FACEPRINT_DATABASE_URL", None)
        self.url = f"http://127.0.0.1:{port}"
        faceprint = shutil.which("faceprint") or str(Path(sys.executable).parent / "faceprint")
        self.faceprint = faceprint
        self.proc = subprocess.Popen(
            [faceprint, "serve", "--port", str(port), "--workers", str(workers)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the service did not become ready")

    def create_key(self) -> str:
        out = subprocess.run(
            [self.faceprint, "keys", "create", "--name", "bench", "--role", "admin"],
            env=self.env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.data, ignore_errors=True)


def setup_subject(url: str, key: str, enroll: Path) -> tuple[str, str]:
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        gallery = client.post("/v1/galleries", json={"name": "bench"}).raise_for_status().json()
        subject = (
            client.post(
                f"/v1/galleries/{gallery['id']}/subjects", json={"external_id": "probe-owner"}
            )
            .raise_for_status()
            .json()
        )
        client.post(
            f"/v1/galleries/{gallery['id']}/subjects/{subject['id']}/faces",
            files={"image": (enroll.name, enroll.read_bytes())},
        ).raise_for_status()
    return gallery["id"], subject["id"]


def run_level(
    url: str, key: str, gallery: str, subject: str, probe: bytes, concurrency: int, seconds: float
) -> dict[str, object]:
    latencies: list[float] = []
    pipeline: list[float] = []
    service: list[float] = []
    server_total: list[float] = []
    handling: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    body, content_type = multipart_body(
        {"gallery": gallery, "subject": subject}, ("image", "probe.jpg", probe)
    )
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    headers = {"X-API-Key": key, "Content-Type": content_type}

    def worker() -> None:
        # A plain keep-alive connection and a body encoded once: the load generator
        # shares the service's two cores, so it must cost as little CPU as it can.
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = None
            try:
                conn.request("POST", "/v1/verify", body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                ok = response.status == 200 and json.loads(payload)["match"] is True
                label = "ok" if ok else f"http {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                elapsed, label = 0.0, type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
            with lock:
                if label != "ok" or response is None:
                    errors[label] = errors.get(label, 0) + 1
                    continue
                latencies.append(elapsed)
                timing = parse_server_timing(response.getheader("server-timing") or "")
                if "pipeline" in timing and "total" in timing:
                    pipeline.append(timing["pipeline"])
                    service.append(timing["service"])
                    server_total.append(timing["total"])
                    handling.append(timing.get("handling", timing["total"]))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    outside = [lat - p for lat, p in zip(latencies, pipeline, strict=False)]
    # Inside the server but outside the pipeline: parsing, auth, index query, history.
    # Measured from the moment the upload has arrived: the network is not the service.
    server_outside = [t - p for t, p in zip(handling, pipeline, strict=True)]
    return {
        "concurrency": concurrency,
        "seconds": round(wall, 1),
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "per_minute": round(len(latencies) / wall * 60, 0),
        "pipeline_p50_ms": round(percentile(pipeline, 50), 2),
        "service_p50_ms": round(percentile(service, 50), 2),
        "outside_pipeline_p50_ms": round(statistics.median(outside), 2) if outside else None,
        "server_total_p50_ms": round(percentile(server_total, 50), 2),
        "server_handling_p50_ms": round(percentile(handling, 50), 2),
        "server_outside_pipeline_p50_ms": (
            round(statistics.median(server_outside), 2) if server_outside else None
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running service; default: start one here")
    parser.add_argument("--key", help="an admin or operator API key for --url")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--probe", type=Path, default=FACES / "obama" / "obama5_480p.jpg")
    parser.add_argument("--enroll", type=Path, default=FACES / "obama" / "obama1.jpg")
    parser.add_argument("--json", type=Path, default=RESULTS / "http_verify.json")
    args = parser.parse_args()

    service = None
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        url, key = args.url, args.key
    else:
        service = Service(args.port, args.workers)
        service.wait_ready()
        url, key = service.url, service.create_key()
    try:
        gallery, subject = setup_subject(url, key, args.enroll)
        probe = args.probe.read_bytes()
        run_level(url, key, gallery, subject, probe, 1, min(3.0, args.seconds))  # warm-up
        rows = [
            run_level(url, key, gallery, subject, probe, c, args.seconds) for c in args.concurrency
        ]
    finally:
        if service is not None:
            service.stop()

    header = (
        f"{'conc':>4} {'reqs':>6} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'per min':>8} {'pipeline p50':>12} {'server p50':>10} {'svc-pipe p50':>12}"
        f" {'client-pipe p50':>15}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['concurrency']:>4} {r['requests']:>6} {r['errors']:>4} {r['p50_ms']:>8}"
            f" {r['p95_ms']:>8} {r['p99_ms']:>8} {r['per_minute']:>8}"
            f" {r['pipeline_p50_ms']:>12} {r['server_total_p50_ms']:>10}"
            f" {r['server_outside_pipeline_p50_ms']!s:>12} {r['outside_pipeline_p50_ms']!s:>15}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "http_verify",
        "probe": args.probe.name,
        "workers": args.workers,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows,
    }
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
