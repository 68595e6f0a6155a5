"""Text -> text-tower input ``int64 [N, 77]``; text files; splitting long text into chunks.

Sequence layout (the reference's current behaviour, upstream PR #142): start-of-text (49406),
the BPE ids, truncated so that start + ids is at most 76 long, then end-of-text (49407), then
zeros up to 77. The end-of-text id therefore always survives truncation, which matters because
the text tower pools at that position. See :mod:`bindsearch.preprocess.bpe` for the tokenizer.

Long text: the model sees at most 75 BPE tokens per sequence, and :func:`tokenize` silently
keeps only the first 75. To embed a whole document, split it with :func:`chunk_text` into
overlapping word-boundary chunks that each fit, and store one vector per chunk (segment).
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import regex
import torch

from bindsearch.errors import ConfigError, DecodeError, EmptyInputError, InputError
from bindsearch.preprocess.bpe import EOT_ID, SOT_ID, get_tokenizer

logger = logging.getLogger(__name__)

#: Length of every token sequence the text tower takes.
CONTEXT_LENGTH = 77
#: Most BPE tokens that fit in one sequence beside the start and end tokens.
MAX_TEXT_TOKENS = CONTEXT_LENGTH - 2
PAD_ID = 0

#: Default refusal threshold of :func:`load_text_file` (1 MiB, ~170k English words).
DEFAULT_MAX_TEXT_BYTES = 1 << 20
#: A decoded file with more than this share of control characters is treated as binary.
MAX_CONTROL_CHAR_FRACTION = 0.05
DEFAULT_OVERLAP_WORDS = 8

# C0 controls other than tab/newline/CR/FF/VT, DEL, and C1 controls.
_CONTROL_CHARS = regex.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_WORD = regex.compile(r"\S+")
# Longest prefix (in characters per allowed token) tried when splitting an over-long word.
_CHARS_PER_TOKEN_BOUND = 8
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class TextChunk:
    """A piece of a longer text: ``text == source[start_char:end_char]``."""

    text: str
    start_char: int
    end_char: int


def tokenize(texts: str | Sequence[str]) -> torch.Tensor:
    """Tokenise one string or a sequence of strings to ``int64 [N, 77]`` (N = 1 for a str).

    Each row is ``[49406, *bpe_ids[:75], 49407, 0, ...]``; text beyond 75 BPE tokens is
    dropped (use :func:`chunk_text` to keep it).
    """
    if isinstance(texts, str):
        texts = [texts]
    if not all(isinstance(t, str) for t in texts):
        raise ConfigError("tokenize() expects a str or a sequence of str")
    tokenizer = get_tokenizer()
    tokens = torch.full((len(texts), CONTEXT_LENGTH), PAD_ID, dtype=torch.long)  # [N, 77]
    for row, text in enumerate(texts):
        ids = [SOT_ID, *tokenizer.encode(text)][: CONTEXT_LENGTH - 1] + [EOT_ID]
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return tokens


def count_tokens(text: str) -> int:
    """Number of BPE tokens of ``text`` after cleaning (start/end tokens not counted)."""
    return len(get_tokenizer().encode(text))


def _decode_bytes(data: bytes, path: Path) -> str:
    """Decode file bytes: BOM-marked UTF-8/16/32, else UTF-8, else cp1252, else Latin-1."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DecodeError(path, f"invalid {encoding} text after its BOM: {exc}") from exc
    if b"\x00" in data:
        raise DecodeError(path, "binary data (NUL bytes), not a text file")
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # total: every byte sequence decodes


def load_text_file(path: str | Path, max_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> str:
    """Read a plain-text or Markdown file and return its text unchanged (Markdown is not stripped).

    Decoding: a BOM selects UTF-8/16/32; otherwise UTF-8, falling back to Windows-1252 and
    then Latin-1 (the tokenizer's ftfy pass repairs most mojibake). Raises ``DecodeError``
    for missing/unreadable files and binary content (NUL bytes, or more than 5% control
    characters), ``EmptyInputError`` for empty or whitespace-only files, and ``InputError``
    for files larger than ``max_bytes`` (raise the limit, or split the file).
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise DecodeError(p, "file not found") from exc
    except OSError as exc:
        raise DecodeError(p, f"cannot read file: {exc}") from exc
    if len(data) > max_bytes:
        raise InputError(p, f"text file is larger than max_bytes={max_bytes:,}; split it")
    text = _decode_bytes(data, p)
    if not text.strip():
        raise EmptyInputError(p, "text file is empty or only whitespace")
    n_control = len(_CONTROL_CHARS.findall(text))
    if n_control > MAX_CONTROL_CHAR_FRACTION * len(text):
        raise DecodeError(p, f"{n_control} of {len(text)} characters are control characters")
    return text


def _estimate_tokens(word: str) -> int:
    """Cheap token count of one whitespace-free word (skips ftfy; chunks are re-checked)."""
    tokenizer = get_tokenizer()
    return len(tokenizer.encode_clean(word.lower()))


def _split_word(start: int, word: str, max_tokens: int) -> list[tuple[int, int, int]]:
    """Split an over-long word into pieces of at most ``max_tokens``: ``(start, end, tokens)``."""
    pieces: list[tuple[int, int, int]] = []
    offset = 0
    while offset < len(word):
        rest = word[offset:]
        hi = min(len(rest), max_tokens * _CHARS_PER_TOKEN_BOUND)
        lo = 1
        if count_tokens(rest[:hi]) <= max_tokens:
            lo = hi
        while lo < hi:  # invariant: rest[:lo] fits (or lo == 1), rest[:hi + 1] does not
            mid = (lo + hi + 1) // 2
            if count_tokens(rest[:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        pieces.append((start + offset, start + offset + lo, count_tokens(rest[:lo])))
        offset += lo
    return pieces


def _word_spans(text: str, max_tokens: int) -> list[tuple[int, int, int]]:
    """Whitespace-delimited words of ``text`` as ``(start, end, estimated_tokens)``."""
    spans: list[tuple[int, int, int]] = []
    for match in _WORD.finditer(text):
        n_tokens = _estimate_tokens(match.group())
        if n_tokens > max_tokens // 2:
            # Cleaning shrinks text in practice (entities, mojibake, ligatures), so a word
            # estimated at half the budget cannot exceed it; longer ones get the exact count.
            n_tokens = count_tokens(match.group())
        if n_tokens <= max_tokens:
            spans.append((match.start(), match.end(), n_tokens))
        else:
            spans.extend(_split_word(match.start(), match.group(), max_tokens))
    return spans


def _next_first(
    spans: list[tuple[int, int, int]], first: int, stop: int, overlap_words: int, max_tokens: int
) -> int:
    """Index of the next chunk's first word: up to ``overlap_words`` back from ``stop``, but
    never so far back that the next chunk could not also take the word at ``stop``."""
    nxt = max(stop - overlap_words, first + 1)
    while nxt < stop and sum(s[2] for s in spans[nxt : stop + 1]) > max_tokens:
        nxt += 1
    return nxt


def chunk_text(
    text: str,
    max_tokens: int = MAX_TEXT_TOKENS,
    overlap_words: int = DEFAULT_OVERLAP_WORDS,
) -> list[TextChunk]:
    """Split ``text`` into word-boundary chunks of at most ``max_tokens`` BPE tokens each.

    Chunks are greedy runs of whitespace-delimited words; consecutive chunks share up to
    ``overlap_words`` words so that a phrase cut at a boundary appears whole in one of them.
    A single word longer than ``max_tokens`` (a URL, a hash) is cut inside the word. Every
    chunk's text is verified with the real tokenizer, so ``tokenize(chunk.text)`` never
    truncates. Whitespace-only text gives ``[]``. ``max_tokens`` must be in ``[1, 75]``.
    """
    if not 1 <= max_tokens <= MAX_TEXT_TOKENS:
        raise ConfigError(f"max_tokens must be between 1 and {MAX_TEXT_TOKENS}, got {max_tokens}")
    if overlap_words < 0:
        raise ConfigError(f"overlap_words must be >= 0, got {overlap_words}")
    spans = _word_spans(text, max_tokens)
    chunks: list[TextChunk] = []
    first = 0
    while first < len(spans):
        stop, total = first, 0
        while stop < len(spans) and total + spans[stop][2] <= max_tokens:
            total += spans[stop][2]
            stop += 1
        stop = max(stop, first + 1)
        start_char = spans[first][0]
        while stop > first + 1 and count_tokens(text[start_char : spans[stop - 1][1]]) > max_tokens:
            stop -= 1  # the estimate was low (ftfy/HTML cleaning acts on the whole string)
        end_char = spans[stop - 1][1]
        chunks.append(TextChunk(text[start_char:end_char], start_char, end_char))
        if stop >= len(spans):
            break
        first = _next_first(spans, first, stop, overlap_words, max_tokens)
    return chunks


def tokenize_text_file(path: str | Path) -> torch.Tensor:
    """A text file as ``[S, 77]`` token ids, one row per chunk (see :func:`chunk_text`).

    bindsearch embeds a text file as the mean of its chunks' unit vectors, renormalised, so a
    file longer than one 77-token window is represented as a whole.
    """
    text = load_text_file(path)
    chunks = [c.text for c in chunk_text(text)] or [text]
    return tokenize(chunks)
