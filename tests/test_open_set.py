"""GET /v1/galleries/{id} says what a search risks at the gallery's size."""

from __future__ import annotations

import math
from typing import Any


def test_gallery_reports_its_expected_fpir(client: Any, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = client.post("/v1/galleries", json={"name": "door"}, headers=headers).json()
    url = f"/v1/galleries/{gallery['id']}"
    empty = client.get(url, headers=headers).json()["open_set"]
    assert empty["subjects"] == 0 and empty["expected_fpir"] == 0.0
    for i in range(5):
        made = client.post(f"{url}/subjects", json={"external_id": f"p{i}"}, headers=headers)
        assert made.status_code == 201, made.text
    got = client.get(url, headers=headers).json()["open_set"]
    listed = client.get("/v1/models", headers=headers).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    model = next(m for m in items if m["id"] == gallery["model_id"])
    assert got["subjects"] == 5 and got["threshold"] == model["threshold"]
    assert got["fmr"] == model["target_fmr"]
    expected = 1 - (1 - model["target_fmr"]) ** 5
    assert math.isclose(got["expected_fpir"], expected, rel_tol=1e-9)
    assert 0 < got["expected_fpir"] < 5 * model["target_fmr"]
