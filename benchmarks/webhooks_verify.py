"""What webhooks cost a verify: latency with an endpoint listening and without, paired.

    python benchmarks/webhooks_verify.py [--n 100] [--rounds 3]

Starts ``faceprint serve`` on a fresh embedded data directory (rate limits off), enrols
one photo, and sends ``--n`` verifies over one keep-alive connection per block, with
no endpoint, then with one endpoint subscribed to ``verification.completed`` (a
receiver on 127.0.0.1 answering 204), alternating ``--rounds`` times so both see the
same machine. Prints p50/p95 per state and the on/off ratio of the medians (overall
and per round), and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "identities"
FACEPRINT = str(Path(sys.executable).parent / "faceprint")


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100, help="verifies per block")
    ap.add_argument("--rounds", type=int, default=3, help="off/on pairs")
    args = ap.parse_args()

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="faceprint-bench-"))
    env = {
        **os.environ,
        "FACEPRINT_DATA_DIR": str(root / "data"),
        "FACEPRINT_RATE_LIMIT_PER_MINUTE": "0",
        "FACEPRINT_WEBHOOK_ALLOW_HTTP": "true",
        "FACEPRINT_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    env.pop("FACEPRINT_DATABASE_URL", None)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    with (root / "serve.log").open("w") as log:
        proc = subprocess.Popen(
            [FACEPRINT, "serve", "--port", str(port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"serve did not come up; see {root / 'serve.log'}")
            time.sleep(0.3)
        key = subprocess.run(
            [FACEPRINT, "keys", "create", "--name", "bench", "--role", "admin"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30)
        gallery = client.post("/v1/galleries", json={"name": "bench"}).json()["id"]
        subject = client.post(
            f"/v1/galleries/{gallery}/subjects", json={"external_id": "obama"}
        ).json()["id"]
        enrolled = client.post(
            f"/v1/galleries/{gallery}/subjects/{subject}/faces",
            files={"image": ("o.jpg", (FACES / "obama" / "obama1.jpg").read_bytes())},
        )
        enrolled.raise_for_status()
        probe = (FACES / "obama" / "obama2.jpg").read_bytes()

        def block() -> list[float]:
            out = []
            for _ in range(args.n):
                t0 = time.perf_counter()
                r = client.post(
                    "/v1/verify",
                    data={"gallery": gallery, "subject": subject},
                    files={"image": ("p.jpg", probe, "image/jpeg")},
                )
                out.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            return out

        block()  # warm-up
        receiver_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        rounds = []
        for _ in range(args.rounds):
            off = block()
            hook = client.post(
                "/v1/webhooks", json={"url": receiver_url, "events": ["verification.completed"]}
            )
            hook.raise_for_status()
            on = block()
            client.delete(f"/v1/webhooks/{hook.json()['id']}").raise_for_status()
            rounds.append({"off": off, "on": on})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        receiver.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    off_all = [v for r in rounds for v in r["off"]]
    on_all = [v for r in rounds for v in r["on"]]
    per_round = [statistics.median(r["on"]) / statistics.median(r["off"]) for r in rounds]
    result = {
        "n_per_block": args.n,
        "rounds": args.rounds,
        "off": {"p50_ms": statistics.median(off_all), "p95_ms": _quantile(off_all, 0.95)},
        "on": {"p50_ms": statistics.median(on_all), "p95_ms": _quantile(on_all, 0.95)},
        "ratio_p50": statistics.median(on_all) / statistics.median(off_all),
        "ratio_p50_per_round": per_round,
        "machine": platform.processor() or platform.machine(),
    }
    print(f"{'state':<8}{'p50 ms':>10}{'p95 ms':>10}")
    for state in ("off", "on"):
        print(f"{state:<8}{result[state]['p50_ms']:>10.1f}{result[state]['p95_ms']:>10.1f}")
    print(
        f"on/off p50: {result['ratio_p50']:.3f} "
        f"(per round: {', '.join(f'{r:.3f}' for r in per_round)})"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "webhooks_verify.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
