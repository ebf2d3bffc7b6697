"""OpenAPI says what the service really answers: every error is problem+json with the
one ProblemDetails schema, every type sent is in x-problem-types, and every status a
route returns (swept over every route with no, weak and strong credentials and with
bad input, and on real failures) is one its operation lists."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import FACES_DIR, make_key

PROBLEM = "application/problem+json"
OBAMA = FACES_DIR / "identities" / "obama"


def operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]


def url_for(template: str, ids: dict[str, str] | None = None) -> str:
    url = template
    while "{" in url:
        name = url[url.index("{") + 1 : url.index("}")]
        url = url.replace("{" + name + "}", (ids or {}).get(name, str(uuid.uuid4())))
    return url


def check(schema: dict[str, Any], method: str, template: str, response: Response) -> None:
    """The status is listed for this operation; an error is a ProblemDetails of a
    listed type, in problem+json."""
    from service.http.openapi import ProblemDetails

    listed = schema["paths"][template][method.lower()]["responses"]
    where = f"{method} {template} answered {response.status_code}: {response.text[:200]}"
    assert str(response.status_code) in listed, where
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM, where
        problem = ProblemDetails.model_validate(response.json())
        assert problem.status == response.status_code, where
        assert problem.type in {t["type"] for t in schema["x-problem-types"]}, where


def test_errors_are_declared_as_problem_details(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    text = str(schema)
    assert "HTTPValidationError" not in text  # FastAPI's 422 body is never sent
    problem = schema["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    for method, template in operations(schema):
        responses = schema["paths"][template][method.lower()]["responses"]
        for status, described in responses.items():
            if int(status) >= 400:
                assert list(described["content"]) == [PROBLEM], (method, template, status)
                assert described["content"][PROBLEM]["schema"]["$ref"].endswith("/ProblemDetails")
    types = {t["type"].rsplit("/", 1)[1]: t["status"] for t in schema["x-problem-types"]}
    for slug, status in {"not-found": 404, "validation-error": 422, "no-face": 422,
                         "rate-limited": 429, "bad-cursor": 400, "duplicate-face": 409,
                         "method-not-allowed": 405, "unavailable": 503}.items():  # fmt: skip
        assert types[slug] == status
    # What the route's shape implies is there: a sample of each rule.
    paths = schema["paths"]
    assert {"401", "403", "404", "422", "429"} <= set(
        paths["/v1/galleries/{gallery_id}"]["get"]["responses"]
    )
    assert {"400", "413", "415", "422", "503"} <= set(paths["/v1/verify"]["post"]["responses"])
    assert "409" in paths["/v1/galleries/{gallery_id}/subjects"]["post"]["responses"]
    assert "503" in paths["/readyz"]["get"]["responses"]
    assert "401" not in paths["/healthz"]["get"]["responses"]


def test_every_route_answers_only_what_it_declares(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    keys = {
        "none": {},
        "client": {"X-API-Key": make_key(client, "client")},
        "admin": {"X-API-Key": make_key(client, "admin")},
        "restricted": {"X-API-Key": make_key(client, "admin", galleries=[str(uuid.uuid4())])},
        "bad": {"X-API-Key": "fp_000000000000_nope"},
    }
    seen: set[int] = set()
    for method, template in operations(schema):
        for headers in keys.values():
            not_json = {"content": b"not json", "headers": {"content-type": "application/json"}}
            for kwargs in ({}, {"json": {"unexpected": 1}}, {"params": {"limit": 0}}, not_json):
                request_headers = headers | kwargs.pop("headers", {})
                response = client.request(method, url_for(template), headers=request_headers,
                                          **kwargs)  # fmt: skip
                check(schema, method, template, response)
                seen.add(response.status_code)
        # A path parameter that is not even a UUID.
        if "{" in template:
            bad_id = url_for(template, {n: "not-a-uuid" for n in ("gallery_id", "subject_id",
                             "face_id", "key_id", "job_id", "webhook_id", "delivery_id",
                             "verification_id", "session_id")})  # fmt: skip
            response = client.request(method, bad_id, headers=keys["admin"])
            check(schema, method, template, response)
            seen.add(response.status_code)
    # The sweep did reach the error paths it is meant to check.
    assert {401, 403, 404, 422} <= seen


def _upload(path_or_bytes: Any, name: str = "probe.jpg") -> dict[str, Any]:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return {"image": (name, data)}


def test_real_failures_are_declared(client: TestClient, make_client) -> None:  # noqa: ANN001
    schema = client.get("/openapi.json").json()
    headers = {"X-API-Key": make_key(client, "admin")}
    gallery = client.post("/v1/galleries", json={"name": "g"}, headers=headers)
    check(schema, "POST", "/v1/galleries", gallery)
    gallery_id = gallery.json()["id"]
    subjects = "/v1/galleries/{gallery_id}/subjects"
    ids = {"gallery_id": gallery_id}
    first = client.post(url_for(subjects, ids), json={"external_id": "a"}, headers=headers)
    again = client.post(url_for(subjects, ids), json={"external_id": "a"}, headers=headers)
    check(schema, "POST", subjects, first)
    check(schema, "POST", subjects, again)
    assert again.status_code == 409
    faces = subjects + "/{subject_id}/faces"
    ids["subject_id"] = first.json()["id"]
    photo = OBAMA / "obama1.jpg"
    outcomes = []
    for body in (_upload(photo), _upload(photo), _upload(b"GIF89a not really"),
                 _upload(b"plain text", "x.txt")):  # fmt: skip
        response = client.post(url_for(faces, ids), files=body, headers=headers)
        check(schema, "POST", faces, response)
        outcomes.append(response.status_code)
    assert outcomes[:2] == [201, 409] and outcomes[2] in (400, 415)

    search = "/v1/galleries/{gallery_id}/search"
    partial_face = next((FACES_DIR / "hard").glob("*"), None)
    for body in (_upload(photo), _upload(b"\xff\xd8\xff broken jpeg")):
        check(
            schema, "POST", search, client.post(url_for(search, ids), files=body, headers=headers)
        )
    if partial_face is not None:
        check(schema, "POST", search, client.post(url_for(search, ids), files=_upload(partial_face),
                                                  headers=headers))  # fmt: skip
    verify = client.post("/v1/verify", files=_upload(photo), data={"gallery": gallery_id,
                         "external_id": "nobody"}, headers=headers)  # fmt: skip
    check(schema, "POST", "/v1/verify", verify)
    assert verify.status_code == 404
    check(schema, "GET", "/v1/galleries", client.get("/v1/galleries", params={"cursor": "x"},
                                                      headers=headers))  # fmt: skip
    login = client.post("/v1/auth/token", json={"email": "a@example.org", "password": "wrong"})
    check(schema, "POST", "/v1/auth/token", login)
    assert login.status_code == 401
    check(schema, "POST", "/v1/auth/token", client.post("/v1/auth/token", content=b"x"))

    small = make_client(max_upload_bytes=1000, rate_limit_per_minute=2)
    small_headers = {"X-API-Key": make_key(small, "admin")}
    too_large = small.post("/v1/detect", files=_upload(photo), headers=small_headers)
    check(schema, "POST", "/v1/detect", too_large)
    assert too_large.status_code == 413
    limited = [small.get("/v1/galleries", headers=small_headers) for _ in range(3)]
    for response in limited:
        check(schema, "GET", "/v1/galleries", response)
    assert limited[-1].status_code == 429


@pytest.mark.parametrize("path", ["/v1/verify", "/v1/galleries"])
def test_wrong_method_is_a_typed_problem(client: TestClient, path: str) -> None:
    response = client.put(path)
    assert response.status_code == 405 and response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/method-not-allowed")
