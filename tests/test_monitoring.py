"""The Prometheus alert rules and the Grafana dashboard ask only for metrics the
service and the workers export, on routes that exist; the lag gauges measure what
they say."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import text

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "monitoring"
ALERTS = yaml.safe_load((MONITORING / "alerts.yml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana/dashboards/faceprint.json").read_text())
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
METRIC = re.compile(r"\bfaceprint_[a-z_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _samples(exposition: str) -> set[str]:
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\w+)$", exposition, re.M):
        for suffix in SUFFIXES.get(kind, ("",)):
            names.add(name if name.endswith(suffix) else name + suffix)
    return names


def exported(client: TestClient) -> set[str]:
    from indexing.timings import PipelineMetrics
    from service.jobs.metrics import WorkerMetrics

    # The worker's registry, and the pipeline's (the service registers it in the one it
    # exports; the tests' shared pipeline keeps a private one).
    worker = WorkerMetrics(CollectorRegistry())
    pipeline = CollectorRegistry()
    PipelineMetrics(pipeline)
    names = _samples(client.get("/metrics").text)
    for registry in (worker.registry, pipeline):
        names |= _samples(generate_latest(registry).decode())
    return names


def _exprs() -> list[str]:
    rules = [r["expr"] for group in ALERTS["groups"] for r in group["rules"]]
    panels = [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]
    return rules + panels


def test_rules_and_panels_ask_for_exported_metrics(client: TestClient) -> None:
    names = exported(client)
    asked = {m for expr in _exprs() for m in METRIC.findall(expr)}
    assert asked, "no metric read from the rules and the dashboard"
    assert not asked - names, f"not exported: {sorted(asked - names)}"


def test_the_alerts_cover_what_an_operator_is_paged_for() -> None:
    rules = {r["alert"]: r for group in ALERTS["groups"] for r in group["rules"]}
    for name in ("FaceprintHighErrorRate", "FaceprintSlowVerify", "FaceprintEnrollmentQueueStuck",
                 "FaceprintWebhookBacklog", "FaceprintIndexOutboxLag"):  # fmt: skip
        assert name in rules and rules[name]["annotations"]["summary"]


def test_route_labels_are_real_routes(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    for expr in _exprs():
        for route in re.findall(r'route="([^"]+)"', expr):
            assert route in paths, route


def test_compose_provisions_what_is_in_the_repository() -> None:
    services: dict[str, Any] = COMPOSE["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), (name, source)
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    for target in targets:
        host, port = target.split(":")
        assert host in services, target
        command = services[host].get("command", [])
        if host != "api":
            assert command[command.index("--metrics-port") + 1] == port, target
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_the_lag_gauges_measure_the_backlog(client: TestClient) -> None:
    from service.jobs import queue

    engine = client.app.state.container.engine
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO index_outbox (op, template_id, model_id, created_at)"
            " VALUES ('upsert', gen_random_uuid(), 'm', now() - interval '120 seconds')"
        ))  # fmt: skip
        conn.execute(text(
            "INSERT INTO jobs (id, kind, payload, run_after)"
            " VALUES (gen_random_uuid(), 'enroll', '{}', now() - interval '90 seconds')"
        ))  # fmt: skip
    scraped = client.get("/metrics").text
    assert re.search(r"^faceprint_index_outbox_pending 1\.0$", scraped, re.M)
    oldest = re.search(r"^faceprint_index_outbox_oldest_seconds (\S+)$", scraped, re.M)
    assert oldest is not None and float(oldest.group(1)) >= 120
    with client.app.state.container.sessionmaker() as session:
        assert queue.oldest_queued_seconds(session) >= 90
        assert queue.oldest_queued_seconds(session, ["other-kind"]) == 0
