"""Parsing the non-image fields of image requests into their use case's input model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from service.core.problems import validation_problem

M = TypeVar("M", bound=BaseModel)


def parse_fields(model: type[M], fields: dict[str, object]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise validation_problem(exc.errors(), "the request fields are malformed") from exc
