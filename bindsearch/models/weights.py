"""The table of released checkpoints: where each lives, how big it is, how to verify it, its licence.

This module is data. Downloading, verifying and caching live in :mod:`bindsearch.models.download`;
splitting a checkpoint into per-modality files lives in :mod:`bindsearch.models.checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bindsearch.errors import ConfigError, UnknownModelError

CC_BY_NC_SA_4 = "CC BY-NC-SA 4.0"
CC_BY_NC_SA_4_URL = "https://creativecommons.org/licenses/by-nc-sa/4.0/"


@dataclass(frozen=True)
class WeightsSpec:
    """One downloadable checkpoint.

    Attributes:
        name: registry name, e.g. ``"imagebind-huge"``.
        url: the only place the file is published.
        filename: name of the file in the local weights cache.
        size_bytes: exact size when the publisher states it, else ``None``.
        sha256: hex digest when the publisher states it, else ``None`` (the digest is then pinned
            locally after the first complete download).
        license: SPDX-like licence name of the weights.
        license_url: where the licence text lives.
        notice: shown once per weights directory the first time the weights are used.
        min_size_bytes: a file smaller than this cannot be the checkpoint (e.g. a truncated
            download or an HTML error page), even when the exact size is unknown.
    """

    name: str
    url: str
    filename: str
    size_bytes: int | None
    sha256: str | None
    license: str
    license_url: str
    notice: str
    min_size_bytes: int | None = None


_IMAGEBIND_NOTICE = (
    "The ImageBind weights (imagebind_huge.pth, by Meta AI) are licensed under "
    f"{CC_BY_NC_SA_4} ({CC_BY_NC_SA_4_URL}): non-commercial use only, with attribution, and "
    "derivatives shared under the same licence. The model card limits them to research use and "
    "says they are not intended for real-world applications. bindsearch's own code is Apache-2.0; "
    "the weights' terms apply to any embeddings and indexes you build with them."
)

WEIGHTS: dict[str, WeightsSpec] = {
    "imagebind-huge": WeightsSpec(
        name="imagebind-huge",
        url="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
        filename="imagebind_huge.pth",
        # Upstream does not state the size. The 1311 fp32 tensors hold 4,803,147,960 bytes, and
        # the torch.save zip archive adds pickle and per-record overhead on top, so the exact
        # size is unknown but a file below the payload size is certainly truncated.
        size_bytes=None,
        min_size_bytes=4_803_147_960,
        # Upstream publishes no digest; it is pinned in a sidecar on the first complete download.
        sha256=None,
        license=CC_BY_NC_SA_4,
        license_url=CC_BY_NC_SA_4_URL,
        notice=_IMAGEBIND_NOTICE,
    ),
}


def list_weights() -> list[str]:
    """Names of all known checkpoints, sorted."""
    return sorted(WEIGHTS)


def get_weights_spec(name: str) -> WeightsSpec:
    """Return the checkpoint registered as ``name``, or raise ``UnknownModelError``."""
    try:
        return WEIGHTS[name]
    except KeyError:
        known = ", ".join(list_weights()) or "(none)"
        raise UnknownModelError(f"unknown weights {name!r}; known weights: {known}") from None


def register_weights(spec: WeightsSpec, *, overwrite: bool = False) -> WeightsSpec:
    """Add ``spec`` to the table (e.g. a fine-tuned checkpoint served from your own host).

    Raises ``ConfigError`` if a different spec is already registered under the same name and
    ``overwrite`` is false. Returns ``spec`` so the call can be used as an expression.
    """
    existing = WEIGHTS.get(spec.name)
    if existing is not None and existing != spec and not overwrite:
        raise ConfigError(
            f"weights {spec.name!r} are already registered with a different spec; "
            "pass overwrite=True to replace them"
        )
    WEIGHTS[spec.name] = spec
    return spec
