"""The OpenAI-CLIP byte-level BPE tokenizer that ImageBind's text tower was trained with.

The merge table is the MIT-licensed ``bpe_simple_vocab_16e6.txt.gz`` shipped inside the
``open_clip_torch`` wheel (byte-identical to the reference's copy; its sha256 is checked when
the tokenizer is built). Vocabulary layout (49,408 ids): the 256 byte symbols, the same 256
with the end-of-word marker ``</w>``, one id per merge (48,894 merges), then start-of-text
(49406) and end-of-text (49407).

Text cleaning equals the reference: ``ftfy.fix_text``, ``html.unescape`` twice, strip,
collapse whitespace runs to one space, lowercase. One deliberate difference: the literal
strings ``<|startoftext|>`` / ``<|endoftext|>`` inside user text are tokenised as ordinary
text, not as control tokens. (The reference turns them into id 49406/49407, and because the
text tower pools at the first 49407, a document quoting ``<|endoftext|>`` would be embedded
from its prefix only.)

``get_tokenizer()`` builds the tokenizer once per process (lazily, thread-safe).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import importlib.util
import logging
import threading
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import regex

from bindsearch.errors import ChecksumError, WeightsError

logger = logging.getLogger(__name__)

#: sha256 of ``bpe_simple_vocab_16e6.txt.gz`` (the reference's and open_clip's copy).
BPE_VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
BPE_VOCAB_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
#: Number of merges used: lines 1..48894 of the decompressed file (line 0 is a header).
NUM_MERGES = 49152 - 256 - 2

SOT_ID = 49406
EOT_ID = 49407
VOCAB_SIZE = 49408

_END_OF_WORD = "</w>"
_BPE_CACHE_SIZE = 1 << 16

# The CLIP pre-tokenisation pattern minus its two special-token alternatives (see docstring).
_WORD_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
)
_WHITESPACE = regex.compile(r"\s+")


def _byte_to_symbol() -> dict[int, str]:
    """Map each byte value to a printable stand-in; the dict's order is the vocabulary order.

    Printable Latin-1 bytes stand for themselves and come first; the remaining 68 bytes
    (controls, space, NBSP, soft hyphen) map to U+0100 onwards in increasing byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    mapping = {b: chr(b) for b in printable}
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + len(mapping) - len(printable))
    return mapping


class ClipTokenizer:
    """Cleans text and maps it to CLIP BPE ids (no start/end tokens, no padding).

    Build it with :func:`get_tokenizer`; instances are immutable apart from an internal
    bounded BPE cache and are safe to share across threads.
    """

    def __init__(self, merges: list[tuple[str, str]], fix_text: Callable[[str], str]) -> None:
        self._byte_to_symbol = _byte_to_symbol()
        symbols = list(self._byte_to_symbol.values())
        vocab = symbols + [s + _END_OF_WORD for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        if len(vocab) != VOCAB_SIZE:
            raise WeightsError(f"BPE vocabulary has {len(vocab)} entries, expected {VOCAB_SIZE}")
        self._ids = {token: i for i, token in enumerate(vocab)}
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._fix_text = fix_text
        self._bpe_cached = functools.lru_cache(maxsize=_BPE_CACHE_SIZE)(self._bpe)

    def clean(self, text: str) -> str:
        """The reference's cleaning: ftfy, double HTML unescape, whitespace collapse, lowercase."""
        text = html.unescape(html.unescape(self._fix_text(text))).strip()
        return _WHITESPACE.sub(" ", text).strip().lower()

    def _bpe(self, word: str) -> tuple[str, ...]:
        """Apply merges to one pre-token (already in byte symbols), lowest rank first."""
        parts = [*word[:-1], word[-1] + _END_OF_WORD]
        while len(parts) > 1:
            candidates = [(self._ranks[p], p) for p in pairwise(parts) if p in self._ranks]
            if not candidates:
                break
            first, second = min(candidates)[1]
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def encode_clean(self, cleaned: str) -> list[int]:
        """BPE ids of text that is already cleaned (see :meth:`clean`)."""
        ids: list[int] = []
        for match in _WORD_PATTERN.finditer(cleaned):
            word = "".join(self._byte_to_symbol[b] for b in match.group().encode("utf-8"))
            ids.extend(self._ids[part] for part in self._bpe_cached(word))
        return ids

    def encode(self, text: str) -> list[int]:
        """Clean ``text`` and return its BPE ids (without start/end-of-text tokens)."""
        return self.encode_clean(self.clean(text))


def bpe_vocab_path() -> Path:
    """Path of the BPE merge file inside the installed ``open_clip`` package (not imported)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the CLIP BPE vocabulary ships with open_clip_torch, which is not installed; "
            "install it with `pip install open_clip_torch`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / BPE_VOCAB_FILENAME


def load_merges(path: Path) -> list[tuple[str, str]]:
    """Read and verify the gzipped merge file; return the ``NUM_MERGES`` merge pairs in rank order."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read the CLIP BPE vocabulary {path}: {exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != BPE_VOCAB_SHA256:
        raise ChecksumError(
            f"{path} has sha256 {digest}, expected {BPE_VOCAB_SHA256}; "
            "reinstall open_clip_torch or report the changed vocabulary file"
        )
    lines = gzip.decompress(raw).decode("utf-8").split("\n")[1 : NUM_MERGES + 1]
    return [(a, b) for a, b in (line.split() for line in lines)]


_tokenizer: ClipTokenizer | None = None
_tokenizer_lock = threading.Lock()


def get_tokenizer() -> ClipTokenizer:
    """The process-wide :class:`ClipTokenizer`, built on first use (reads ~1.3 MB once)."""
    global _tokenizer
    tokenizer = _tokenizer
    if tokenizer is None:
        with _tokenizer_lock:
            if _tokenizer is None:
                import ftfy  # deferred: a few hundred ms of regex compilation

                path = bpe_vocab_path()
                _tokenizer = ClipTokenizer(load_merges(path), ftfy.fix_text)
                logger.debug("built the CLIP BPE tokenizer from %s", path)
            tokenizer = _tokenizer
    return tokenizer
