"""``faceprint models calibrate`` end to end on the shared identities photos: the record it
writes, the registry (and so verify and search) using it, a changed model file or
another embedding mode not inheriting it, and the sets it refuses."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import Result
from onnx import numpy_helper
from typer.testing import CliRunner

from indexing.calibration import (
    CalibrationRecord,
    PairScores,
    TooFewPairs,
    file_sha256,
    load_pairs,
    operating_point,
    pair_counts,
    threshold_at_fmr,
    write_record,
)
from indexing.pipeline import PipelineConfig, build_pipeline
from indexing.registry import (
    ARCFACE_ONNX,
    DLIB_RESNET_V1,
    DLIB_RESNET_V1_FLIP,
    DLIB_RESNET_V1_ONNX,
    EmbedderContext,
    ModelRegistry,
)
from tests.conftest import FACES_DIR, make_key
from tests.test_pipeline_arcface import _tiny_graph

ARC = "arcface-onnx"
ONNX = "dlib-resnet-v1-onnx"
IDENTITIES = FACES_DIR / "identities"
GRAPH = "w600k_r50.onnx"
Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FACEPRINT_MODEL_DIR holding one tiny graph of ArcFace's signature."""
    root = tmp_path_factory.mktemp("models")
    (root / "buffalo_tiny").mkdir()
    _tiny_graph(root / "buffalo_tiny" / GRAPH)
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def faceprint(data_dir: Path, pack: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    from service.cli.main import app
    from service.core.settings import get_settings

    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FACEPRINT_MODEL_DIR", str(pack))
    get_settings.cache_clear()

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


def _registry(
    model_dir: Path, data_dir: Path, *, flip: bool = False, detector: str = "blazeface"
) -> ModelRegistry:
    return ModelRegistry(
        EmbedderContext(
            model_dir=model_dir,
            cache_dir=data_dir / "models",
            flip_average=flip,
            calibration_dir=data_dir / "calibration",
            detector=detector,
        )
    )


def _identity_scores(model_dir: Path, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Same- and different-person cosines of every identities pair, measured with the
    pipeline's public API (not the calibration module the command uses)."""
    pipe = build_pipeline(PipelineConfig(model_dir=model_dir, cache_dir=tmp_path / "cache"))
    photos = sorted(p for p in IDENTITIES.glob("*/*") if p.is_file())
    vectors = [
        pipe.analyze(p.read_bytes(), model_ids=[ARC], max_faces=1)[0].embeddings[ARC]
        for p in photos
    ]
    genuine, impostor = [], []
    for (pa, va), (pb, vb) in itertools.combinations(zip(photos, vectors, strict=True), 2):
        (genuine if pa.parent == pb.parent else impostor).append(float(va @ vb))
    return np.array(genuine), np.array(impostor)


def _other_weights(src: Path, dst: Path) -> None:
    """The same graph with one weight changed: another network under the same file name."""
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.name == "conv_w":
            w = numpy_helper.to_array(init).copy()
            w[0, 0, 0, 0] += 0.5
            init.CopyFrom(numpy_helper.from_array(w, "conv_w"))
    onnx.save(model, str(dst))


def test_calibrate_writes_the_record_the_registry_then_serves(
    faceprint: Invoke, data_dir: Path, pack: Path, tmp_path: Path
) -> None:
    result = faceprint(
        "models", "calibrate", "--model", ARC, "--pairs", str(IDENTITIES), "--fmr", "1e-2"
    )
    assert result.exit_code == 0, result.output
    for row in ("FNMR at FMR 1e-2", "FNMR at FMR 1e-3", "no face found", "genuine / impostor"):
        assert row in result.output
    assert "needs 1,000 impostor pairs" in result.output  # 1e-3 is out of this set's reach

    record_file = data_dir / "calibration" / f"{ARC}.json"
    raw = json.loads(record_file.read_text())
    graph = pack / "buffalo_tiny" / GRAPH
    assert raw["model_id"] == ARC and raw["fmr"] == 0.01 and raw["flip_average"] is False
    assert raw["model_sha256"] == hashlib.sha256(graph.read_bytes()).hexdigest()
    assert (raw["photos"], raw["genuine_pairs"], raw["impostor_pairs"]) == (18, 29, 124)
    assert raw["dataset"] == str(IDENTITIES.resolve()) and raw["created_at"].endswith("+00:00")
    assert raw["no_face"] == 0 and raw["detector"] == "blazeface"

    # The threshold is the lowest that keeps FMR <= 1e-2 on these pairs: with 124
    # impostor pairs one may match, so it sits just above the second-highest impostor
    # (up to float32 rounding: the command scores all pairs in one matrix product).
    genuine, impostor = _identity_scores(pack, tmp_path)
    threshold = raw["threshold"]
    top = np.sort(impostor)[::-1]
    assert threshold == pytest.approx(top[1], abs=1e-6) and top[0] > threshold > top[2]
    assert raw["fnmr"] == pytest.approx(float((genuine < threshold).mean()))

    registry = _registry(pack, data_dir)
    spec, source = registry.spec(ARC), registry.threshold_source(ARC)
    assert spec.threshold == threshold and spec.target_fmr == 0.01
    assert source.kind == "calibration" and source.record == record_file
    assert "identities (18 photos, 124 impostor pairs) at FMR 1e-2" in spec.calibrated_on
    # Other models keep their shipped thresholds.
    assert registry.spec(ONNX) == DLIB_RESNET_V1_ONNX
    assert registry.threshold_source(ONNX).kind == "shipped"
    listed = faceprint("models", "list")
    assert listed.exit_code == 0, listed.output
    assert "calibration" in listed.output and f"{threshold:.4f}" in listed.output

    # Another network under the same file name does not inherit the threshold.
    changed = tmp_path / "changed"
    shutil.copytree(pack, changed)
    _other_weights(graph, changed / "buffalo_tiny" / GRAPH)
    stale = _registry(changed, data_dir)
    assert stale.spec(ARC) == ARCFACE_ONNX
    source = stale.threshold_source(ARC)
    assert source.kind == "shipped" and source.record == record_file
    assert source.ignored is not None and "model file changed" in source.ignored
    listed = faceprint("models", "list")  # still the original pack: still calibrated
    assert "not used" not in listed.output


def test_calibrating_with_another_detector_says_the_service_will_not_use_it(
    faceprint: Invoke, data_dir: Path
) -> None:
    args = ("--model", ARC, "--pairs", str(IDENTITIES), "--fmr", "1e-2")
    result = faceprint("models", "calibrate", *args, "--detector", "blazeface-full")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "the service detects with 'blazeface'" in text and "'blazeface-full'" in text
    listed = faceprint("models", "list")  # the service's detector is blazeface
    assert listed.exit_code == 0, listed.output
    listed_text = " ".join(listed.output.split())
    assert "not used: it was calibrated on faces found by 'blazeface-full'" in listed_text


def test_refuses_sets_that_cannot_support_the_rate(
    faceprint: Invoke, data_dir: Path, tmp_path: Path
) -> None:
    def refused(*args: str) -> str:
        result = faceprint("models", "calibrate", *args)
        assert result.exit_code != 0, result.output
        assert not (data_dir / "calibration").exists()
        return " ".join(result.output.split())

    # 124 different-person pairs cannot show a rate of 1e-3 (one match would be 0.8%).
    assert "needs at least 1,000" in refused("--model", ARC, "--pairs", str(IDENTITIES))
    # One photo per person: no same-person pair, whatever the rate.
    singles = tmp_path / "singles"
    for person in sorted(IDENTITIES.iterdir()):
        (singles / person.name).mkdir(parents=True)
        first = sorted(person.iterdir())[0]
        shutil.copy(first, singles / person.name / first.name)
    message = refused("--model", ARC, "--pairs", str(singles), "--fmr", "0.1")
    assert "no same-person pairs" in message
    # A pairs file with only genuine pairs.
    rows = tmp_path / "pairs.csv"
    obama = sorted((IDENTITIES / "obama").iterdir())
    with rows.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["img1", "img2", "same"])
        writer.writerows([str(a), str(b), 1] for a, b in itertools.combinations(obama, 2))
    assert "0 different-person pairs" in refused(
        "--model", ARC, "--pairs", str(rows), "--fmr", "0.1"
    )
    # Photos that are not there, an unknown model, a model whose files are missing.
    rows.write_text("img1,img2,same\nnobody/a.jpg,nobody/b.jpg,1\n")
    assert "do not exist" in refused("--model", ARC, "--pairs", str(rows))
    args = ("--pairs", str(IDENTITIES), "--fmr", "1e-2")
    assert "unknown model id" in refused("--model", "no-such-model", *args)
    assert "unknown detector" in refused("--model", ARC, *args, "--detector", "no-such")


def test_refuses_a_model_without_its_files(
    faceprint: Invoke, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.core.settings import get_settings

    monkeypatch.delenv("FACEPRINT_MODEL_DIR")
    get_settings.cache_clear()
    result = faceprint(
        "models", "calibrate", "--model", ARC, "--pairs", str(IDENTITIES), "--fmr", "1e-2"
    )
    assert result.exit_code == 1
    assert "FACEPRINT_MODEL_DIR is not set" in result.output
    assert not (data_dir / "calibration").exists()


def test_help_explains_the_commands(faceprint: Invoke) -> None:
    for command in ("build", "list", "calibrate"):
        result = faceprint("models", command, "--help")
        assert result.exit_code == 0, result.output
    text = " ".join(faceprint("models", "calibrate", "--help").output.split())
    assert "sha256" in text and "--fmr" in text and "1/FMR" in text


def _dlib_record(threshold: float, *, flip: bool, sha256: str | None = None) -> CalibrationRecord:
    weights = ModelRegistry(EmbedderContext(None, Path("."))).weights(DLIB_RESNET_V1.id)
    return CalibrationRecord(
        model_id=DLIB_RESNET_V1.id,
        threshold=threshold,
        fmr=1e-3,
        fnmr=0.05,
        dataset="/data/site-photos",
        photos=2_000,
        genuine_pairs=900,
        impostor_pairs=1_900_000,
        flip_average=flip,
        created_at="2026-11-27T00:00:00+00:00",
        model_sha256=sha256 or file_sha256(weights),
        detector="blazeface",
        no_face=0,
    )


def test_records_are_per_embedding_mode(tmp_path: Path) -> None:
    """Mirror-averaged vectors score differently: each mode reads its own record."""
    write_record(tmp_path / "calibration", _dlib_record(0.95, flip=True))
    plain = _registry(tmp_path, tmp_path)
    assert plain.spec(DLIB_RESNET_V1.id) == DLIB_RESNET_V1
    assert plain.threshold_source(DLIB_RESNET_V1.id).record is None
    flipped = _registry(tmp_path, tmp_path, flip=True)
    spec = flipped.spec(DLIB_RESNET_V1.id)
    assert spec.threshold == 0.95 and "mirror-averaged" in spec.calibrated_on
    assert flipped.threshold_source(DLIB_RESNET_V1.id).kind == "calibration"
    # A record for the dlib-bin id says nothing about the ONNX id.
    assert flipped.spec(ONNX).threshold == DLIB_RESNET_V1_FLIP.threshold


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"model_id": "dlib-resnet-v1"}),
        "bad-threshold",
        "other-weights",
    ],
)
def test_a_bad_or_stale_record_leaves_the_shipped_threshold(tmp_path: Path, content: str) -> None:
    path = write_record(tmp_path / "calibration", _dlib_record(0.95, flip=False))
    if content == "bad-threshold":
        raw = json.loads(path.read_text())
        path.write_text(json.dumps(raw | {"threshold": 7.0}))
    elif content == "other-weights":
        write_record(tmp_path / "calibration", _dlib_record(0.95, flip=False, sha256="0" * 64))
    else:
        path.write_text(content)
    registry = _registry(tmp_path, tmp_path)
    assert registry.spec(DLIB_RESNET_V1.id) == DLIB_RESNET_V1
    source = registry.threshold_source(DLIB_RESNET_V1.id)
    assert source.kind == "shipped" and source.record == path and source.ignored
    assert str(tmp_path) not in source.ignored  # the API shows it: no server paths


def test_a_record_made_with_another_detector_is_not_used(tmp_path: Path) -> None:
    """The detector's boxes and landmarks decide the aligned crop, so the scores and the
    threshold they give: a record holds only for the detector it was made with."""
    path = write_record(tmp_path / "calibration", _dlib_record(0.95, flip=False))
    same = _registry(tmp_path, tmp_path, detector="blazeface")
    assert same.spec(DLIB_RESNET_V1.id).threshold == 0.95
    other = _registry(tmp_path, tmp_path, detector="dlib-hog")
    assert other.spec(DLIB_RESNET_V1.id) == DLIB_RESNET_V1
    source = other.threshold_source(DLIB_RESNET_V1.id)
    assert source.kind == "shipped" and source.record == path
    assert source.ignored and "'blazeface'" in source.ignored and "'dlib-hog'" in source.ignored


def test_operating_point_counts_only_pairs_that_were_compared() -> None:
    rng = np.random.default_rng(0)
    impostor = rng.uniform(-0.2, 0.6, 2_000).astype(np.float32)
    genuine = rng.uniform(0.5, 1.0, 50).astype(np.float32)
    compared = np.ones(2_000, dtype=bool)
    point = operating_point(PairScores(genuine, impostor, compared), 1e-3)
    assert point.threshold == threshold_at_fmr(impostor, 1e-3)
    assert (impostor >= point.threshold).sum() == 2 and point.fmr == 1e-3
    assert point.fnmr == pytest.approx(float((genuine < point.threshold).mean()))
    # Pairs with a photo where no face was found (score -1) do not make up the numbers.
    compared[999:] = False
    impostor[~compared] = -1.0
    with pytest.raises(TooFewPairs, match="999 impostor pairs .* needs at least 1,000"):
        operating_point(PairScores(genuine, impostor, compared), 1e-3)
    with pytest.raises(TooFewPairs, match="no genuine"):
        operating_point(PairScores(genuine[:0], impostor, compared), 1e-2)


def test_pair_counts_match_the_pairs_scored() -> None:
    genuine, impostor = pair_counts(load_pairs(IDENTITIES))
    assert (genuine, impostor) == (29, 124) and genuine + impostor == 18 * 17 // 2


def test_api_and_verify_use_the_calibrated_threshold(
    faceprint: Invoke,
    settings,  # noqa: ANN001
    db_url: str,
) -> None:
    """Calibrate the default model, start the service on that data dir: GET /v1/models
    says where each threshold comes from, and verify decides with the calibrated one."""
    from fastapi.testclient import TestClient

    from service.domain.components import pipeline_config
    from service.http.app import create_app

    data_dir = settings.data_dir
    result = faceprint(
        "models", "calibrate", "--model", ONNX, "--pairs", str(IDENTITIES), "--fmr", "1e-2"
    )
    assert result.exit_code == 0, result.output
    threshold = json.loads((data_dir / "calibration" / f"{ONNX}.json").read_text())["threshold"]
    assert threshold != DLIB_RESNET_V1_ONNX.threshold

    service_pipeline = build_pipeline(pipeline_config(settings))
    with TestClient(create_app(settings, database_url=db_url, pipeline=service_pipeline)) as api:
        headers = {"X-API-Key": make_key(api, "admin")}
        listed = api.get("/v1/models", headers=headers)
        assert listed.status_code == 200, listed.text
        models = {m["id"]: m for m in listed.json()["items"]}
        assert models[ONNX]["threshold"] == threshold and models[ONNX]["default"]
        assert models[ONNX]["threshold_source"] == "calibration"
        assert models[ONNX]["target_fmr"] == 0.01
        assert models[ARC]["threshold"] == ARCFACE_ONNX.threshold
        assert models[ARC]["threshold_source"] == "shipped"
        assert models[ARC]["calibrated_on"] == ARCFACE_ONNX.calibrated_on
        one = api.get(f"/v1/models/{ONNX}", headers=headers)
        assert one.status_code == 200 and one.json() == models[ONNX]
        assert api.get("/v1/models/no-such-model", headers=headers).status_code == 404
        assert api.get("/v1/models").status_code == 401

        obama = IDENTITIES / "obama"
        verified = api.post(
            "/v1/verify",
            files={
                "image": ("a.jpg", (obama / "obama1.jpg").read_bytes()),
                "reference_image": ("b.jpg", (obama / "obama2.jpg").read_bytes()),
            },
            headers=headers,
        )
        assert verified.status_code == 200, verified.text
        body = verified.json()
        assert body["threshold"] == threshold and body["model_id"] == ONNX
        assert body["match"] == (body["similarity"] >= threshold)
