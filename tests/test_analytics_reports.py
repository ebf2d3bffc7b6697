"""Every report, after a scripted history over real HTTP, against the numbers computed
here again from the raw rows."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from service.db.models import Face, Verification
from tests import history_script
from tests.conftest import make_key


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


@pytest.fixture
def scripted(client, admin_key: str):  # noqa: ANN001, ANN201
    script = history_script.run(client, {"X-API-Key": admin_key})
    with client.app.state.container.sessionmaker() as session:
        rows = session.scalars(select(Verification)).all()
        faces = session.scalars(select(Face)).all()
        session.expunge_all()
    return script, rows, faces


def report(client, headers: dict, name: str, **params: str) -> list[dict]:  # noqa: ANN001
    response = client.get(f"/v1/analytics/{name}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def test_volume_outcomes_latency_and_drift(client, scripted) -> None:  # noqa: ANN001
    script, rows, faces = scripted
    headers = script.headers
    expected = Counter(
        (r.created_at.date().isoformat(), str(r.gallery_id) if r.gallery_id else None, r.kind)
        for r in rows
    )
    got = {(v["day"], v["gallery_id"], v["kind"]): v["decisions"] for v in
           report(client, headers, "volume")}  # fmt: skip
    assert got == dict(expected)

    by_gallery = {o["gallery_id"]: o for o in report(client, headers, "outcomes")}
    mine = by_gallery[script.gallery]
    verifies = [r for r in rows if r.kind == "verify"]
    assert mine["verifications"] == len(verifies) == 12
    assert mine["verify_matches"] == sum(r.match for r in verifies)
    assert mine["verify_match_rate"] == pytest.approx(sum(r.match for r in verifies) / 12)
    assert mine["searches"] == 2 and mine["enrolments"] == len(faces) == 3
    assert mine["failure_to_enrol_rate"] == 0.0
    passive = [r for r in rows if r.kind == "liveness"]
    no_gallery = by_gallery[None]
    assert no_gallery["liveness_checks"] == len(passive) == 2
    live = sum(r.liveness_decision == "live" for r in passive)
    assert no_gallery["liveness_passed"] == live

    latency = {(x["kind"], x["model_id"]): x for x in report(client, headers, "latency")}
    for (kind, model), entry in latency.items():
        values = [r.latency_ms for r in rows if r.kind == kind and r.model_id == model]
        assert entry["decisions"] == len(values)
        for q in (50, 95, 99):
            assert entry[f"p{q}_ms"] == pytest.approx(np.percentile(values, q))

    drift = report(client, headers, "drift")
    accepted = [r.similarity for r in verifies if r.match and r.label != "impostor"]
    assert [d["matches"] for d in drift] == [len(accepted)]
    assert drift[0]["mean"] == pytest.approx(np.mean(accepted))
    assert drift[0]["p50"] == pytest.approx(np.percentile(accepted, 50))
    monday = date.fromisoformat(drift[0]["week"])
    assert monday.weekday() == 0 and date.today() - monday < timedelta(days=7)


def test_scores_and_errors_from_labels(client, scripted) -> None:  # noqa: ANN001
    script, rows, _ = scripted
    headers = script.headers
    histogram = report(client, headers, "scores")
    scored = [r for r in rows if r.kind in ("verify", "search") and r.similarity is not None]
    counts: Counter = Counter()
    for r in scored:
        truth = r.label if r.label in ("genuine", "impostor") else "unlabelled"
        counts[(truth, min(int((r.similarity + 1) // 0.05), 39))] += 1
    assert {(h["truth"], round((h["bucket_low"] + 1) / 0.05)): h["decisions"]
            for h in histogram} == dict(counts)  # fmt: skip
    marked = [h for h in histogram if h["holds_threshold"]]
    threshold = scored[0].threshold
    assert all(h["bucket_low"] <= threshold < h["bucket_high"] for h in marked)

    got = {(e["metric"], e["liveness_mode"]): e for e in report(client, headers, "errors")}
    verifies = [r for r in rows if r.kind == "verify" and r.label]
    impostors = [r for r in verifies if r.label == "impostor"]
    genuines = [r for r in verifies if r.label == "genuine"]
    assert len(impostors) + len(genuines) == 11  # one verification left unreviewed
    for metric, trials, errors in (
        ("FMR", impostors, sum(r.match for r in impostors)),
        ("FNMR", genuines, sum(not r.match for r in genuines)),
    ):
        entry = got[(metric, None)]
        assert (entry["errors"], entry["trials"]) == (errors, len(trials))
        assert entry["rate"] == pytest.approx(errors / len(trials))
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx(wilson(errors, len(trials)))
        assert entry["threshold"] == pytest.approx(threshold)
    searched = [r for r in rows if r.kind == "search"]
    fnir = got[("FNIR", None)]
    assert (fnir["trials"], fnir["errors"]) == (2, sum(not r.match for r in searched))
    bpcer = got[("BPCER", "passive")]
    passive = [r for r in rows if r.kind == "liveness"]
    assert bpcer["trials"] == 2
    assert bpcer["errors"] == sum(r.liveness_decision != "live" for r in passive)
    assert (bpcer["ci_low"], bpcer["ci_high"]) == pytest.approx(wilson(bpcer["errors"], 2))
    assert ("APCER", "passive") not in got  # no attack was labelled: no rate, not zero


def test_liveness_signals(client, scripted) -> None:  # noqa: ANN001
    script, rows, _ = scripted
    entries = {(x["mode"], x["signal"]): x for x in report(client, script.headers, "liveness")}
    passive = [r for r in rows if r.kind == "liveness"]
    overall = entries[("passive", "overall")]
    assert overall["checks"] == 2
    assert overall["mean"] == pytest.approx(np.mean([r.liveness_score for r in passive]))
    per_signal: dict[str, list[float]] = defaultdict(list)
    for r in passive:
        for name, value in r.liveness_signals.items():
            if isinstance(value, dict) and "attack" in value:
                per_signal[name].append(value["attack"])
    assert per_signal
    for name, values in per_signal.items():
        assert entries[("passive", name)]["p50"] == pytest.approx(np.percentile(values, 50))


def test_duplicates_find_one_face_under_two_identities(client, admin_key: str) -> None:  # noqa: ANN001
    headers = {"X-API-Key": admin_key}
    script = history_script.enroll_gallery(client, headers)
    twin = client.post(f"/v1/galleries/{script.gallery}/subjects",
                       json={"external_id": "barack"}, headers=headers).json()  # fmt: skip
    face = client.post(
        f"/v1/galleries/{script.gallery}/subjects/{twin['id']}/faces",
        params={"check_quality": "false"},
        files=history_script.upload("obama", "obama2.jpg"),
        headers=headers,
    )
    assert face.status_code == 201
    pairs = report(client, headers, "duplicates")
    assert [{p["external_a"], p["external_b"]} for p in pairs] == [{"obama", "barack"}]
    assert pairs[0]["similarity"] >= pairs[0]["threshold"]


def test_scope_and_bad_requests(client, scripted) -> None:  # noqa: ANN001
    script, _, _ = scripted
    other = client.post("/v1/galleries", json={"name": "other"}, headers=script.headers).json()
    operator = {"X-API-Key": make_key(client, "operator", [other["id"]])}
    assert report(client, operator, "volume") == []
    refused = client.get("/v1/analytics/volume", params={"gallery": script.gallery},
                         headers=operator)  # fmt: skip
    assert refused.status_code == 403
    own = {"X-API-Key": make_key(client, "operator", [script.gallery])}
    kinds = {v["kind"] for v in report(client, own, "volume")}
    assert kinds == {"verify", "search"}  # the gallery-less liveness checks are not its own
    a_client = {"X-API-Key": make_key(client, "client", [script.gallery])}
    for path, params, headers, status in (
        ("/v1/analytics/volume", {}, a_client, 403),
        ("/v1/analytics/nothing", {}, script.headers, 404),
        ("/v1/analytics/volume", {"since": "yesterday"}, script.headers, 422),
        ("/v1/analytics/volume", {"gallery": "no-uuid"}, script.headers, 422),
        ("/v1/analytics/volume", {"since": "2030-01-02", "until": "2030-01-01"},
         script.headers, 422),
    ):  # fmt: skip
        response = client.get(path, params=params, headers=headers)
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    future = report(client, script.headers, "volume", since="2999-01-01T00:00:00Z")
    assert future == []
    assert set(client.get("/v1/analytics", headers=script.headers).json()["reports"]) >= {
        "volume", "errors", "drift", "duplicates"}  # fmt: skip
