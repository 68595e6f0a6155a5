"""The FastAPI app: ``create_app(config)`` assembles routes, guards and error answers;
``serve(config)`` checks the bind address, loads the model once and runs uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

import bindsearch
from bindsearch.errors import BindsearchError, ConfigError, InputError, ModelMismatchError
from bindsearch.server import routes
from bindsearch.server import schemas as s
from bindsearch.server.config import ServerConfig
from bindsearch.server.security import BodyLimitMiddleware, check_bind, create_key_dependency
from bindsearch.server.service import SearchService, create_service

logger = logging.getLogger(__name__)


def _status_of(exc: BindsearchError) -> int:
    if isinstance(exc, InputError):
        return 422
    if isinstance(exc, ModelMismatchError):
        return 409
    if isinstance(exc, ConfigError):
        return 400
    return 500


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(BindsearchError)
    async def library_error(request: Request, exc: BindsearchError) -> JSONResponse:
        status = _status_of(exc)
        if status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=status)


def _install_openapi(app: FastAPI, extra: tuple[type[BaseModel], ...]) -> None:
    """Add the multipart-or-JSON bodies' models to the schema's components."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)  # fmt: skip
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in extra:
                found = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def create_app(config: ServerConfig, service: SearchService | None = None) -> FastAPI:
    """The app serving ``config.index_dir``. Without ``service``, one is created at start-up
    (loading the model); pass one to share a loaded model."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = service or await asyncio.to_thread(create_service, config)
        try:
            yield
        finally:
            await app.state.service.close()

    app = FastAPI(
        title="bindsearch",
        version=bindsearch.__version__,
        description="Cross-modal search over a bindsearch index (ImageBind).",
        lifespan=lifespan,
        openapi_url=None,  # served by an API-key-checked route instead
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    _install_errors(app)
    app.include_router(routes.public)
    app.include_router(routes.api, dependencies=[Depends(create_key_dependency(config.api_key))])
    app.include_router(routes.media_router)
    app.mount("/static", StaticFiles(directory=routes.STATIC_DIR), name="static")
    _install_openapi(app, (s.SearchRequest, s.ClassifyRequest))
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.uploads.max_request_bytes)
    return app


def serve(config: ServerConfig) -> None:
    """Check the bind address, load the index and model once, and serve until interrupted."""
    import uvicorn

    check_bind(config)
    service = create_service(config)
    app = create_app(config, service)
    logger.warning("serving %s on http://%s:%d", config.index_dir, config.host, config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", server_header=False)
