"""Uploaded query files: checked, copied into the request's temporary folder, deleted after.

Nothing a client sends is used as a path: an upload is stored as ``<n>.<ext>`` inside a
``tempfile.TemporaryDirectory`` made for the request, ``ext`` being the client's extension only
when it is short and alphanumeric. The client's file name is kept for messages and for telling
the modality (``classify_path`` is pure string rules on the base name: ``x.wav`` is audio,
``x.depth.png`` depth), unless the request names the kind.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from fastapi import HTTPException
from starlette.datastructures import FormData, UploadFile

from bindsearch.ingest.discover import classify_path
from bindsearch.preprocess import InputKind
from bindsearch.server.config import UploadLimits

#: The multipart field that carries the request's JSON document.
QUERY_FIELD = "query"

#: Content types any kind may be sent as (browsers send these for unknown extensions).
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_NUMPY_TYPES = ("application/x-npy", "application/npy")
#: Content-type prefixes accepted per kind, besides the generic ones.
_TYPES: dict[InputKind, tuple[str, ...]] = {
    InputKind.IMAGE: ("image/",),
    InputKind.VIDEO: ("video/", "application/mp4"),
    InputKind.AUDIO: ("audio/", "video/", "application/ogg"),
    InputKind.TEXT: ("text/",),
    InputKind.DEPTH: ("image/", *_NUMPY_TYPES),
    InputKind.THERMAL: ("image/", *_NUMPY_TYPES),
    InputKind.IMU: ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel",
                    *_NUMPY_TYPES),
}  # fmt: skip
#: A kind to assume from the content type when the file name does not tell.
_KIND_BY_TYPE = {"image/": InputKind.IMAGE, "video/": InputKind.VIDEO,
                 "audio/": InputKind.AUDIO, "text/plain": InputKind.TEXT}  # fmt: skip


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its form field, the client's name (display only), and the copy."""

    field: str
    filename: str
    content_type: str
    path: Path
    size_bytes: int


def base_name(filename: str | None) -> str:
    """The last component of a client's file name: ``C:\\x\\a.wav``, ``../a.wav`` -> ``a.wav``."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    return name if name not in ("", ".", "..") else "upload"


def safe_extension(filename: str) -> str:
    """The lower-cased extension when it is 1-8 ASCII letters or digits, else ``""``."""
    _, dot, ext = filename.rpartition(".")
    ext = ext.lower()
    return ext if dot and 0 < len(ext) <= 8 and ext.isascii() and ext.isalnum() else ""


def media_type(content_type: str | None) -> str:
    """``"audio/wav; x=y"`` -> ``"audio/wav"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def kind_of_upload(upload: Upload, explicit: str | None) -> InputKind:
    """The upload's kind: as named by the request, else from its name, else its content type.

    Raises 415 when it cannot be told or when the declared content type contradicts it.
    """
    kind = InputKind.parse(explicit) if explicit else classify_path(upload.filename)
    if kind is None:
        kind = next(
            (k for p, k in _KIND_BY_TYPE.items() if upload.content_type.startswith(p)), None
        )
    if kind is None:
        raise HTTPException(
            415,
            f"cannot tell the modality of upload {upload.filename!r} "
            f"({upload.content_type or 'no type'}): give it a known extension (.jpg, .wav, "
            ".mp4, .txt, x.depth.png, x.imu.csv, ...) or name its kind in the part "
            '({"upload": FIELD, "kind": "audio"})',
        )
    allowed = _TYPES[kind]
    if upload.content_type not in _GENERIC_TYPES and not upload.content_type.startswith(allowed):
        raise HTTPException(
            415,
            f"upload {upload.filename!r} is sent as {upload.content_type}, which is not a "
            f"{kind.value} type; {kind.value} uploads must be {', '.join(allowed)}* "
            "or application/octet-stream",
        )
    return kind


def check_size(upload: Upload, kind: InputKind, limits: UploadLimits) -> None:
    """Refuse empty uploads (422) and text files over ``max_text_bytes`` (413)."""
    if upload.size_bytes == 0:
        raise HTTPException(422, f"upload {upload.filename!r} is empty")
    if kind is InputKind.TEXT and upload.size_bytes > limits.max_text_bytes:
        raise HTTPException(
            413,
            f"text upload {upload.filename!r} has {upload.size_bytes:,} bytes; the limit for "
            f"text files is {limits.max_text_bytes:,} bytes",
        )


def _copy(source: BinaryIO, target: Path) -> int:
    source.seek(0)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        return out.tell()


async def save_uploads(form: FormData, directory: Path) -> dict[str, Upload]:
    """Copy every file of ``form`` into ``directory``; field name -> :class:`Upload`.

    Raises 400 for a form field that is neither a file nor ``query``, or a repeated file field.
    """
    uploads: dict[str, Upload] = {}
    for field_name, value in form.multi_items():
        if not isinstance(value, UploadFile):
            if field_name != QUERY_FIELD:
                raise HTTPException(
                    400,
                    f"unexpected form field {field_name!r}: send files as file parts and "
                    f"everything else in the {QUERY_FIELD!r} field as JSON",
                )
            continue
        if field_name in uploads:
            raise HTTPException(400, f"two files in form field {field_name!r}; one file per field")
        name = base_name(value.filename)
        ext = safe_extension(name)
        target = directory / (f"{len(uploads)}.{ext}" if ext else str(len(uploads)))
        size = await asyncio.to_thread(_copy, value.file, target)
        uploads[field_name] = Upload(field_name, name, media_type(value.content_type), target, size)
    return uploads


def query_document(form: FormData) -> Any:
    """The ``query`` field's text (``None`` when absent); 400 when it is a file or repeated."""
    values = form.getlist(QUERY_FIELD)
    if len(values) > 1 or any(not isinstance(v, str) for v in values):
        raise HTTPException(400, f"the {QUERY_FIELD!r} field must be one JSON text field")
    return values[0] if values else None
