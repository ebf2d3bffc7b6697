"""The embedding models this service knows, with the verification threshold it uses for
each and where that threshold comes from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from indexing.errors import ModelUnavailable
from indexing.registry import ModelRegistry
from service.core.problems import NotFound
from service.domain.components import Components


class ModelPublic(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    id: str
    dim: int
    metric: str
    version: str
    threshold: float = Field(description="Cosine similarity at or above which verify matches.")
    target_fmr: float = Field(description="The false-match rate the threshold keeps to.")
    calibrated_on: str = Field(description="The labelled pairs the threshold was measured on.")
    threshold_source: Literal["shipped", "calibration"] = Field(
        description='"shipped": the value released with the service; "calibration": measured'
        " by `faceprint models calibrate` on this installation's model file."
    )
    calibration_ignored: str | None = Field(
        description="Why a calibration record exists but is not used (e.g. the model file"
        " changed since it was measured); null otherwise."
    )
    default: bool = Field(description="The model of new galleries.")


class ModelPage(BaseModel):
    items: list[ModelPublic]
    next_cursor: str | None = None


def _public(registry: ModelRegistry, model_id: str, default_model: str) -> ModelPublic:
    spec, source = registry.spec(model_id), registry.threshold_source(model_id)
    return ModelPublic(
        id=spec.id,
        dim=spec.dim,
        metric=spec.metric,
        version=spec.version,
        threshold=spec.threshold,
        target_fmr=spec.target_fmr,
        calibrated_on=spec.calibrated_on,
        threshold_source=source.kind,
        calibration_ignored=source.ignored,
        default=model_id == default_model,
    )


def list_models(components: Components) -> ModelPage:
    registry = components.pipeline.models
    return ModelPage(items=[_public(registry, m, components.default_model) for m in registry.ids()])


def get_model(components: Components, model_id: str) -> ModelPublic:
    registry = components.pipeline.models
    try:
        registry.entry(model_id)
    except ModelUnavailable as exc:
        raise NotFound(exc.detail) from exc
    return _public(registry, model_id, components.default_model)
