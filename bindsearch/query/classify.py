"""Emergent zero-shot classification: an item against text labels with CLIP prompt templates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bindsearch.encode import Encoder
from bindsearch.errors import ConfigError


@dataclass(frozen=True)
class LabelScore:
    """A label's probability and the cosine similarity behind it."""

    label: str
    probability: float
    cosine: float


def prompt_templates() -> list[Callable[[str], str]]:
    """The 80 OpenAI CLIP ImageNet templates, as ImageBind used them for every modality."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return list(OPENAI_IMAGENET_TEMPLATES)


def label_vectors(encoder: Encoder, labels: Sequence[str]) -> np.ndarray:
    """Per label: mean of its L2-normalised template embeddings, renormalised -> ``[L, D]``."""
    templates = prompt_templates()
    texts = [t(label) for label in labels for t in templates]
    vectors = encoder.encode("text", texts).reshape(len(labels), len(templates), -1)
    means = vectors.mean(axis=1)
    return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def classify_vector(
    encoder: Encoder, vector: np.ndarray, labels: Sequence[str]
) -> list[LabelScore]:
    """Probabilities of ``labels`` for an item vector, best first.

    Logits are ``cosine x s`` with ``s`` the text tower's learned logit scale (about 100 for
    imagebind-huge), the CLIP convention, for every modality.
    """
    clean = [label.strip() for label in labels if label.strip()]
    if len(clean) < 2:
        raise ConfigError("classification needs at least two labels")
    if len(set(clean)) != len(clean):
        raise ConfigError("labels must be distinct")
    cosines = label_vectors(encoder, clean) @ vector
    logits = cosines * encoder.logit_scale("text")
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    return [LabelScore(clean[i], float(probs[i]), float(cosines[i])) for i in order]
