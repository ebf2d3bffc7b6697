"""The FastAPI application. Everything expensive is built once in ``lifespan``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from indexing.pipeline import FacePipeline
from service.api import (
    api_keys,
    auth,
    faces,
    galleries,
    health,
    jobs,
    matching,
    models,
    verifications,
)
from service.api import liveness as liveness_api
from service.auth.login import build_auth
from service.components import Components, build_components
from service.datadir import load_secrets
from service.db.session import make_engine, make_sessionmaker
from service.liveness_service import build_runtime as build_liveness_runtime
from service.middleware import RequestContextMiddleware
from service.problems import install_problem_handlers
from service.ratelimit import PrincipalRateLimit, build_rate_limiter
from service.settings import Settings

Component = Callable[[FastAPI, Settings], AsyncIterator[None]]


def _index_problem(components: Components) -> str | None:
    with components.engine.connect() as conn:
        health = components.index.health(conn)
    return None if health.ok else health.detail


def create_app(
    settings: Settings, *, database_url: str, pipeline: FacePipeline | None = None
) -> FastAPI:
    """An app bound to one database. ``faceprint serve`` resolves the URL (embedded or
    external) before building the app, so the app itself never starts servers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(database_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.secrets = load_secrets(settings)
        app.state.readiness_probes = {}
        app.state.auth = build_auth(settings, app.state.secrets)
        app.state.verify_access_token = app.state.auth.verify_access_token
        app.state.rate_limiter = build_rate_limiter(settings)
        app.state.liveness = build_liveness_runtime(settings)
        components = build_components(settings, engine, app.state.secrets, pipeline=pipeline)
        app.state.components = components
        app.state.readiness_probes["index"] = lambda: _index_problem(components)
        components.start_relay()
        components.start_warm_up()
        try:
            yield
        finally:
            components.close()
            app.state.rate_limiter.close()
            engine.dispose()

    app = FastAPI(
        title="Faceprint",
        version="0.1.0",
        description="Self-hosted face verification (1:1) and identification (1:N).",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(api_keys.router, dependencies=[PrincipalRateLimit])
    app.include_router(jobs.router, dependencies=[PrincipalRateLimit])
    app.include_router(models.router, dependencies=[PrincipalRateLimit])
    app.include_router(liveness_api.router, dependencies=[PrincipalRateLimit])
    for router in (galleries.router, faces.router, matching.router, verifications.router):
        app.include_router(router, dependencies=[PrincipalRateLimit])
    return app


def app_from_environment() -> FastAPI:
    """The app of one `faceprint serve --workers N` process: settings from the
    environment, where the parent put the database URL."""
    from service.logging_setup import configure_logging
    from service.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    if settings.database_url is None:
        raise RuntimeError("FACEPRINT_DATABASE_URL must be set for worker processes")
    return create_app(settings, database_url=settings.database_url.get_secret_value())
