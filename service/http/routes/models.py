"""GET /v1/models: the embedding models this service knows and their thresholds."""

from __future__ import annotations

from fastapi import APIRouter

from service.domain import model_catalog
from service.domain.model_catalog import ModelPage, ModelPublic
from service.http.deps import ComponentsDep, CurrentPrincipal

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelPage)
def list_models(_: CurrentPrincipal, components: ComponentsDep) -> ModelPage:
    """Every known model (whether or not its files are installed here); one page."""
    return model_catalog.list_models(components)


@router.get("/{model_id}", response_model=ModelPublic)
def get_model(model_id: str, _: CurrentPrincipal, components: ComponentsDep) -> ModelPublic:
    return model_catalog.get_model(components, model_id)
