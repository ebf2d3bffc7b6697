"""Which face an enrolment uses: the one that dominates the photo, the caller's pick, or
a refusal that says why; faces cut off by the frame are refused."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from indexing.errors import LowQuality, MultipleFaces, NoFace
from indexing.face_choice import (
    BadFaceSelector,
    FaceSelector,
    choose_face,
    iou,
    select_enrollment_face,
)
from indexing.pipeline import FacePipeline
from indexing.types import BBox
from service.worker.loop import job_face_selector
from tests.conftest import FACES_DIR

IDENTITIES = FACES_DIR / "identities"
MULTI = FACES_DIR / "multi"


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def with_bystander() -> bytes:
    """Obama in front; a smaller Kit Harington in a corner behind him (a press photo)."""
    front = Image.open(IDENTITIES / "obama" / "obama1.jpg").convert("RGB")
    back = Image.open(IDENTITIES / "kit_harington" / "kit1.jpg").convert("RGB")
    back = back.resize((front.width // 3, front.width // 3 * back.height // back.width))
    front.paste(back, (front.width - back.width, 0))
    return _jpeg(front)


def test_selector_parsing() -> None:
    assert FaceSelector.parse(None) == FaceSelector()
    assert FaceSelector.parse(" Largest ").mode == "largest"
    box = FaceSelector.parse("10,20,30,40")
    assert box.box == BBox(10, 20, 40, 60) and box.as_text() == "10,20,30,40"
    assert FaceSelector.parse(box.as_text()) == box
    for bad in ("biggest", "1,2,3", "1,2,0,4", "a,b,c,d", "nan,1,2,3"):
        with pytest.raises(BadFaceSelector):
            FaceSelector.parse(bad)
    # Jobs queued before ``face`` existed keep their meaning.
    assert job_face_selector({"allow_multiple": True}).mode == "largest"
    assert job_face_selector({"allow_multiple": False}).mode == "single"
    assert job_face_selector({"face": "auto", "allow_multiple": True}).mode == "auto"


def test_a_dominant_face_is_enrolled_and_the_rest_reported(pipeline: FacePipeline) -> None:
    faces = pipeline.detect(with_bystander())
    assert len(faces) == 2
    choice = select_enrollment_face(faces)
    assert choice.face is max(faces, key=lambda f: f.bbox.width)
    assert [f.bbox for f in choice.others] == [f.bbox for f in faces if f is not choice.face]
    with pytest.raises(MultipleFaces) as err:
        choose_face(faces, FaceSelector(mode="single"))
    assert err.value.count == 2
    # A box picks the bystander instead.
    small = min(faces, key=lambda f: f.bbox.width)
    picked = choose_face(faces, FaceSelector(box=small.bbox))
    assert picked.face is small and picked.others[0] is choice.face


@pytest.mark.parametrize("name", ["two_people.jpg", "kit_with_rose.jpg", "obama_and_biden.jpg"])
def test_faces_of_similar_prominence_are_refused_with_a_way_out(
    pipeline: FacePipeline, name: str
) -> None:
    faces = pipeline.detect((MULTI / name).read_bytes())
    with pytest.raises(MultipleFaces) as err:
        choose_face(faces)
    assert "none stands out" in err.value.detail and "face=largest" in err.value.detail
    largest = choose_face(faces, FaceSelector(mode="largest"))
    assert largest.face.bbox.width == max(f.bbox.width for f in faces)
    assert len(largest.others) == len(faces) - 1


def test_a_box_that_misses_every_face_is_no_face(pipeline: FacePipeline) -> None:
    faces = pipeline.detect((MULTI / "two_people.jpg").read_bytes())
    with pytest.raises(NoFace) as err:
        choose_face(faces, FaceSelector(box=BBox(0, 500, 40, 540)))
    assert "no face found in the box" in err.value.detail
    assert iou(BBox(0, 0, 10, 10), BBox(5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_a_face_cut_off_by_the_frame_is_refused(pipeline: FacePipeline) -> None:
    path = IDENTITIES / "rose_leslie" / "rose2.jpg"
    whole = pipeline.detect(path.read_bytes())[0]
    assert whole.quality.outside == 0.0 and whole.quality.problems == []
    image = Image.open(path).convert("RGB")
    cut = int(whole.bbox.left + 0.3 * whole.bbox.width)
    faces = pipeline.detect(_jpeg(image.crop((cut, 0, image.width, image.height))))
    assert faces and faces[0].quality.outside > 0.2
    with pytest.raises(LowQuality) as err:
        select_enrollment_face(faces)
    assert any(p.startswith("face cut off by the frame") for p in err.value.problems)
    for name in ("obama_partial_face.jpg", "obama_partial_face2.jpg"):
        (face,) = pipeline.detect((FACES_DIR / "hard" / name).read_bytes())
        assert face.quality.outside > 0.1, name
        assert any(p.startswith("face cut off") for p in face.quality.problems), name


def _enrol(client, headers: dict, image: bytes, **params: str):  # noqa: ANN001, ANN202
    gallery = client.post("/v1/galleries", json={"name": "g"}, headers=headers).json()["id"]
    subject = client.post(
        f"/v1/galleries/{gallery}/subjects", json={"external_id": "p"}, headers=headers
    ).json()["id"]
    return client.post(
        f"/v1/galleries/{gallery}/subjects/{subject}/faces",
        params=params,
        files={"image": ("p.jpg", image, "image/jpeg")},
        headers=headers,
    ), gallery


def test_enrolment_api_uses_the_dominant_face(client, admin_key: str) -> None:  # noqa: ANN001
    headers = {"X-API-Key": admin_key}
    photo = with_bystander()
    r, gallery = _enrol(client, headers, photo)
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["other_faces"]) == 1
    assert body["bbox"]["width"] > 2 * body["other_faces"][0]["width"]
    # The enrolled face is Obama's: another photo of him verifies against the subject.
    probe = (IDENTITIES / "obama" / "obama2.jpg").read_bytes()
    v = client.post(
        "/v1/verify",
        data={"gallery": gallery, "subject": body["subject_id"]},
        files={"image": ("o.jpg", probe, "image/jpeg")},
        headers=headers,
    )
    assert v.status_code == 200, v.text
    assert v.json()["match"] is True

    r, _ = _enrol(client, headers, photo, face="single")
    assert r.status_code == 422 and r.json()["type"].endswith("/multiple-faces"), r.text
    r, _ = _enrol(client, headers, photo, face="biggest")
    assert r.status_code == 422 and r.json()["type"].endswith("/validation-error"), r.text
    assert r.json()["errors"][0]["loc"] == ["query", "face"]

    group = (MULTI / "two_people.jpg").read_bytes()
    r, _ = _enrol(client, headers, group)
    assert r.status_code == 422 and "none stands out" in r.json()["detail"], r.text
    r, _ = _enrol(client, headers, group, face="247,62,145,145")
    assert r.status_code == 201, r.text
    assert abs(r.json()["bbox"]["x"] - 247) < 20 and len(r.json()["other_faces"]) == 1
    r, _ = _enrol(client, headers, group, allow_multiple="true")
    assert r.status_code == 201 and r.json()["bbox"]["x"] > 700, r.text


def test_verify_and_search_say_which_face_they_used(client, admin_key: str) -> None:  # noqa: ANN001
    headers = {"X-API-Key": admin_key}
    gallery = client.post("/v1/galleries", json={"name": "g"}, headers=headers).json()["id"]
    subject = client.post(
        f"/v1/galleries/{gallery}/subjects", json={"external_id": "obama"}, headers=headers
    ).json()["id"]
    enrolled = client.post(
        f"/v1/galleries/{gallery}/subjects/{subject}/faces",
        files={"image": ("o.jpg", (IDENTITIES / "obama" / "obama1.jpg").read_bytes())},
        headers=headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    group = (MULTI / "obama_and_biden.jpg").read_bytes()

    def search(**fields: str):  # noqa: ANN202
        return client.post(
            f"/v1/galleries/{gallery}/search",
            data=fields,
            files={"image": ("g.jpg", group, "image/jpeg")},
            headers=headers,
        )

    plain = search()
    assert plain.status_code == 200, plain.text
    assert len(plain.json()["other_faces"]) == 2 and plain.json()["faces"] is None
    every = search(face="all").json()
    assert len(every["faces"]) == 3
    found = [f for f in every["faces"] if f["candidates"]]
    assert [f["candidates"][0]["subject_id"] for f in found] == [subject], every
    # Naming Obama's box finds him, whichever face is the largest.
    box = found[0]["probe"]["bbox"]
    named = search(face=",".join(str(box[k]) for k in ("x", "y", "width", "height"))).json()
    assert named["candidates"][0]["subject_id"] == subject
    assert named["probe"]["bbox"] == box and len(named["other_faces"]) == 2
    # face=all: one row of history per face searched.
    rows = client.get("/v1/verifications", params={"kind": "search"}, headers=headers)
    assert rows.status_code == 200, rows.text
    ids = {r["id"] for r in rows.json()["items"]}
    # plain, all (three faces), named
    assert {f["verification_id"] for f in every["faces"]} <= ids and len(ids) == 1 + 3 + 1

    box_text = f"{box['x']},{box['y']},{box['width']},{box['height']}"
    verified = client.post(
        "/v1/verify",
        data={"gallery": gallery, "subject": subject, "face": box_text},
        files={"image": ("g.jpg", group, "image/jpeg")},
        headers=headers,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["match"] is True and len(verified.json()["other_faces"]) == 2
    for bad in ("all", "single", "nowhere"):
        r = client.post(
            "/v1/verify",
            data={"gallery": gallery, "subject": subject, "face": bad},
            files={"image": ("g.jpg", group, "image/jpeg")},
            headers=headers,
        )
        assert r.status_code == 422 and r.json()["type"].endswith("/validation-error"), r.text
