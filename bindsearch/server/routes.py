"""The API's routes: parse and check a request, call :class:`SearchService`, answer JSON.

``api`` holds the routes behind the API key (the app adds the key check when it includes it);
``media_router`` checks the key or a signed link itself; ``public`` serves ``/health`` and the page.
"""

from __future__ import annotations

import asyncio
import mimetypes
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ValidationError

import bindsearch
from bindsearch.server import schemas as s
from bindsearch.server.config import ServerConfig
from bindsearch.server.security import (
    bearer_scheme,
    key_header_scheme,
    keys_match,
    presented_key,
    unauthorized,
)
from bindsearch.server.service import SearchService
from bindsearch.server.uploads import media_type, query_document, save_uploads

STATIC_DIR = Path(__file__).with_name("static")
_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)
_MEDIA_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
                  "Cache-Control": "private, max-age=600"}  # fmt: skip
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorOut} for code in (400, 401, 404, 413, 415, 422)
}
Model = TypeVar("Model", bound=BaseModel)
ItemIdParam = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="An item's id.")]


def _service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def _config(request: Request) -> ServerConfig:
    config: ServerConfig = request.app.state.config
    return config


Service = Annotated[SearchService, Depends(_service)]
Config = Annotated[ServerConfig, Depends(_config)]
api = APIRouter(responses=_ERRORS)
media_router = APIRouter()
public = APIRouter()


def _body_spec(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body that is ``model`` as JSON, or multipart with ``query`` + files."""
    multipart = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": f"A {model.__name__} as JSON text."},
            "file": {"type": "string", "format": "binary",
                     "description": "A media file. Any number of file fields; a part "
                     "{\"upload\": FIELD} gives one a weight or kind."},
        },
    }  # fmt: skip
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    content = {"application/json": {"schema": ref}, "multipart/form-data": {"schema": multipart}}
    return {"requestBody": {"required": True, "content": content}}


async def _parse(
    request: Request, model: type[Model], directory: Path, service: SearchService
) -> tuple[Model, dict]:
    """The request's ``model`` and its uploads (copied into ``directory``)."""
    kind = media_type(request.headers.get("content-type"))
    try:
        if kind == "application/json":
            return model.model_validate_json(await request.body()), {}
        if kind == "multipart/form-data":
            limits = service.config.uploads
            async with request.form(max_files=limits.max_files, max_fields=64) as form:
                text = query_document(form)
                parsed = model.model_validate_json(text) if text else model.model_validate({})
                return parsed, await save_uploads(form, directory)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError(errors) from None
    raise HTTPException(415, "send the request as application/json or multipart/form-data")


def _item_out(service: SearchService, row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "media_url": service.media_url(row["id"])}


@api.post("/search", response_model=s.SearchResponse, openapi_extra=_body_spec(s.SearchRequest))
async def search(request: Request, service: Service) -> dict[str, Any]:
    """Search with text, item ids, vectors and uploaded media (any modality), with weights."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bindsearch-upload-") as tmp:
        query, uploads = await _parse(request, s.SearchRequest, Path(tmp), service)
        hits, described = await service.search(query, uploads)
    return {"hits": [_item_out(service, h.to_dict()) for h in hits], "query": described,
            "took_ms": round((time.perf_counter() - started) * 1000, 3)}  # fmt: skip


@api.post(
    "/classify", response_model=s.ClassifyResponse, openapi_extra=_body_spec(s.ClassifyRequest)
)
async def classify(request: Request, service: Service) -> dict[str, Any]:
    """Zero-shot label probabilities for an item, a text, or one uploaded file."""
    with tempfile.TemporaryDirectory(prefix="bindsearch-upload-") as tmp:
        query, uploads = await _parse(request, s.ClassifyRequest, Path(tmp), service)
        scores = await service.classify(query, uploads)
    return {"scores": [vars(x) for x in scores]}


@api.get("/items/{item_id}", response_model=s.ItemOut)
async def item(item_id: ItemIdParam, service: Service) -> dict[str, Any]:
    """An item's metadata."""
    row = await asyncio.to_thread(service.item, item_id)
    if row is None:
        raise HTTPException(404, f"no item with id {item_id}")
    return _item_out(service, row)


@api.post("/ingest", response_model=s.JobOut, status_code=202)
async def ingest(body: s.IngestRequest, service: Service) -> dict[str, Any]:
    """Start ingesting files or folders inside the server's ingest roots; poll /jobs/{id}."""
    return service.submit_ingest(body).to_dict()


@api.get("/jobs/{job_id}", response_model=s.JobOut)
async def job(
    job_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")], service: Service
) -> dict[str, Any]:
    """A background job's state and progress."""
    found = service.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, f"no job with id {job_id}")
    return found.to_dict()


@api.get("/stats", response_model=s.StatsOut)
async def stats(service: Service) -> dict[str, Any]:
    """Rows per modality, the vector index, the model and batching counters."""
    return await asyncio.to_thread(service.stats)


@api.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    return request.app.openapi()


_RANGE_ANSWERS: dict[int | str, dict[str, Any]] = {206: {"description": "A byte range."},
                  416: {"description": "The range is outside the file."}}  # fmt: skip


@media_router.get("/items/{item_id}/media", responses={**_ERRORS, **_RANGE_ANSWERS})
async def item_media(
    item_id: ItemIdParam,
    service: Service,
    config: Config,
    token: Annotated[
        str | None, Query(max_length=64, description="From a hit's media_url.")
    ] = None,
    header: Annotated[str | None, Security(key_header_scheme)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
) -> FileResponse:
    """The item's original file, with HTTP range requests (206) for audio and video.

    Needs the API key, or the ``token`` of a ``media_url`` from a hit. Only files that
    are rows of the index are ever served.
    """
    if config.api_key is not None and not keys_match(presented_key(header, bearer), config.api_key):
        if not (token and service.signer.verify(item_id, token)):
            raise unauthorized()
    row = await asyncio.to_thread(service.item, item_id)
    if row is None:
        raise HTTPException(404, f"no item with id {item_id}")
    path = Path(row["path"])
    if not await asyncio.to_thread(path.is_file):
        raise HTTPException(404, f"the file of item {item_id} is no longer on the server")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=kind, filename=path.name, headers=_MEDIA_HEADERS,
                        content_disposition_type="inline")  # fmt: skip


@public.get("/health", response_model=s.HealthOut)
async def health(config: Config) -> dict[str, Any]:
    """Liveness; the only API route that needs no key."""
    return {"status": "ok", "service": "bindsearch", "version": bindsearch.__version__,
            "auth_required": config.api_key is not None}  # fmt: skip


@public.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", headers={"Content-Security-Policy": _PAGE_POLICY}
    )
