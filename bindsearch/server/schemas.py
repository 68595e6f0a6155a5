"""Request and response bodies of the HTTP API (pydantic models; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: Values of the index's ``modality`` column (the result modalities a search may filter on).
RowModality = Literal["image", "video", "audio", "text", "depth", "thermal", "imu"]
#: What an uploaded file holds (the input kinds).
UploadKind = Literal["image", "video", "audio", "text", "depth", "thermal", "imu"]


def _encodable(value: str) -> str:
    """Refuse lone surrogates (legal in JSON escapes, not in UTF-8): they cannot reach LanceDB."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string is not valid Unicode (lone surrogate)") from None
    return value


CleanStr = Annotated[str, AfterValidator(_encodable)]
ItemId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{32}$", description="An item's id (32 hex characters).")
]
Weight = Annotated[
    float,
    Field(
        ge=-100, le=100, allow_inf_nan=False, description="Weight of this part; negative subtracts."
    ),
]
_STRICT = ConfigDict(extra="forbid")


class TextPart(BaseModel):
    """A text query part."""

    model_config = _STRICT
    text: Annotated[CleanStr, Field(max_length=10_000)]
    weight: Weight = 1.0


class ItemPart(BaseModel):
    """An ingested item, by id: query by example without re-encoding."""

    model_config = _STRICT
    id: ItemId
    weight: Weight = 1.0


class VectorPart(BaseModel):
    """A raw vector in the index's space (normalised before use)."""

    model_config = _STRICT
    vector: Annotated[
        list[Annotated[float, Field(allow_inf_nan=False, ge=-1e30, le=1e30)]],
        Field(min_length=1, max_length=8192),
    ]
    weight: Weight = 1.0


class UploadPart(BaseModel):
    """A file uploaded in the same multipart request, named by its form field."""

    model_config = _STRICT
    upload: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Form field name.")]
    kind: Annotated[
        UploadKind | None, Field(description="The file's modality if its name does not tell.")
    ] = None
    weight: Weight = 1.0


Part = TextPart | ItemPart | VectorPart | UploadPart


class SearchRequest(BaseModel):
    """A (possibly composed) query and its filters.

    The query vector is the weighted sum of the parts' unit vectors, renormalised. In a
    multipart request, uploaded files not named by an ``upload`` part are added with weight 1.
    """

    model_config = _STRICT
    parts: list[Part] = Field(default_factory=list, max_length=32)
    modalities: list[RowModality] = Field(default_factory=list, description="Result modalities.")
    path: Annotated[CleanStr, Field(max_length=4096)] | None = Field(
        None, description="Only results under this absolute folder, or matching this glob."
    )
    where: Annotated[CleanStr, Field(max_length=4096)] | None = Field(
        None, description="A LanceDB SQL predicate on the items columns, e.g. duration_s > 60."
    )
    segments: bool = Field(False, description="Also return moments (segment rows) of long media.")
    top_k: int = Field(10, ge=1, le=1000)


class ClassifyRequest(BaseModel):
    """Zero-shot classification of one item against text labels (80 CLIP templates each).

    In a multipart request with exactly one file, ``part`` may be left out.
    """

    model_config = _STRICT
    part: Part | None = None
    labels: list[Annotated[CleanStr, Field(min_length=1, max_length=200)]] = Field(
        min_length=2, max_length=64
    )


class IngestRequest(BaseModel):
    """Files or folders on the server to ingest: absolute paths, or paths relative to the first
    ``--ingest-root``; either must lie inside an ingest root, also after resolving symlinks."""

    model_config = _STRICT
    paths: list[Annotated[CleanStr, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=64
    )
    segment_s: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False)
    prune: bool = False


class ItemOut(BaseModel):
    """An item's metadata and a signed link to its media."""

    id: str
    path: str
    modality: str
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    text: str | None = None
    media_url: str


class HitOut(ItemOut):
    """One search result; ``score`` is the cosine similarity to the query."""

    rank: int
    score: float


class SearchResponse(BaseModel):
    """Hits, best first."""

    hits: list[HitOut]
    query: list[str] = Field(description="The parts as understood, e.g. '+1 x text:rain'.")
    took_ms: float


class LabelScoreOut(BaseModel):
    """A label's probability and the cosine similarity behind it."""

    label: str
    probability: float
    cosine: float


class ClassifyResponse(BaseModel):
    """Labels, most probable first."""

    scores: list[LabelScoreOut]


class JobProgress(BaseModel):
    """Counts so far (final once the job is done)."""

    files_found: int = 0
    files_handled: int = 0
    files_ingested: int = 0
    files_failed: int = 0
    rows_written: int = 0


class JobOut(BaseModel):
    """A background ingest job."""

    id: str
    state: Literal["queued", "running", "done", "failed"]
    paths: list[str]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    progress: JobProgress
    report: dict[str, Any] | None = Field(None, description="The ingest report, when done.")
    error: str | None = None


class HealthOut(BaseModel):
    """Liveness (no API key needed)."""

    status: Literal["ok"] = "ok"
    service: Literal["bindsearch"] = "bindsearch"
    version: str
    auth_required: bool


class StatsOut(BaseModel):
    """What is served."""

    index_dir: str
    model: str
    weights_id: str
    dim: int | None
    rows_total: int
    rows_by_modality: dict[str, int]
    vector_index: dict[str, Any] | None = Field(None, description="The FAISS sidecar's manifest.")
    batching: dict[str, Any]
    version: str


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer: what went wrong and how to fix it."""

    detail: str | list[Any]
