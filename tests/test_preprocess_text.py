"""Text preprocessing: CLIP BPE ids, sequence layout, parity, files and chunking."""

from __future__ import annotations

import codecs
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from reference import import_reference

from bindsearch.errors import ConfigError, DecodeError, EmptyInputError, InputError
from bindsearch.preprocess.bpe import BPE_VOCAB_SHA256, bpe_vocab_path, get_tokenizer
from bindsearch.preprocess.text import (
    CONTEXT_LENGTH,
    MAX_TEXT_TOKENS,
    chunk_text,
    count_tokens,
    load_text_file,
    tokenize,
)

SOT, EOT = 49406, 49407

PARITY_TEXTS = [
    "A dog.",
    "A car",
    "A bird",
    "",
    "   leading and trailing   ",
    "MiXeD CaSe   WHITESPACE\n\ttabs\r\nand newlines",
    "Ünïcödé café naïve façade Straße ÅNGSTRÖM",
    "html &amp;amp; entities &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#x263A; &nbsp;x",
    "emoji 🐶🐱👍🏽 flags 🇫🇷 and CJK 中文 日本語 한국어",
    "mojibake: cafÃ© and â€œsmart quotesâ€\x9d",
    "contractions: it's they're we've I'm you'll he'd DON'T",
    "numbers 1234567890 3.14159 -42 1e-6 ①②③ ٣",
    "combining e\u0301 and fullwidth ＡＢＣ ligature ﬁ",
    "punctuation!!! ??? ... --- ___ *** @#$%^&()[]{}",
    "a photo of " + "a very long sentence that keeps going " * 20,
    "x" * 500,
]


def test_bpe_vocabulary_file_is_the_pinned_one() -> None:
    path = bpe_vocab_path()
    assert path.name == "bpe_simple_vocab_16e6.txt.gz"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == BPE_VOCAB_SHA256
    assert digest == "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


@pytest.mark.parametrize(
    ("text", "ids"),
    [("A dog.", [320, 1929, 269]), ("A car", [320, 1615]), ("A bird", [320, 3329])],
)
def test_spec_verified_examples(text: str, ids: list[int]) -> None:
    row = tokenize(text)
    assert row.shape == (1, CONTEXT_LENGTH) and row.dtype == torch.int64
    expected = [SOT, *ids, EOT] + [0] * (CONTEXT_LENGTH - len(ids) - 2)
    assert row[0].tolist() == expected


def test_batch_shape_and_empty_string() -> None:
    tokens = tokenize(["", "a b c"])
    assert tokens.shape == (2, CONTEXT_LENGTH)
    assert tokens[0, :3].tolist() == [SOT, EOT, 0]
    assert tokenize([]).shape == (0, CONTEXT_LENGTH)


def test_long_text_keeps_end_of_text_at_the_last_position() -> None:
    row = tokenize("lorem ipsum dolor sit amet " * 40)[0]
    assert row[0] == SOT and row[76] == EOT
    assert (row[1:76] != 0).all() and (row[1:76] != EOT).all()


def test_exactly_75_tokens_fit_without_truncation() -> None:
    text = " ".join(["dog"] * MAX_TEXT_TOKENS)
    assert count_tokens(text) == MAX_TEXT_TOKENS
    row = tokenize(text)[0]
    assert row[-1] == EOT and row[1:76].tolist() == [1929] * 75  # "dog</w>" = 1929


def test_parity_with_reference_tokenizer() -> None:
    data = import_reference()
    expected = data.load_and_transform_text(PARITY_TEXTS, "cpu")
    assert torch.equal(tokenize(PARITY_TEXTS), expected)


def test_literal_special_token_strings_are_plain_text() -> None:
    # Deliberate difference from the reference: these do not become control ids mid-sequence.
    row = tokenize("before <|endoftext|> after <|startoftext|>")[0].tolist()
    assert row.count(EOT) == 1 and row.count(SOT) == 1
    assert row.index(EOT) > 8


def test_non_string_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        tokenize(["ok", 3])  # type: ignore[list-item]


def test_tokenizer_is_built_once_and_thread_safe() -> None:
    texts = [f"thread {i} says hello to café number {i * 7}" for i in range(64)]
    serial = tokenize(texts)
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(lambda t: tokenize(t)[0], texts))
        tokenizers = set(pool.map(lambda _: id(get_tokenizer()), range(16)))
    assert torch.equal(torch.stack(rows), serial)
    assert len(tokenizers) == 1


LONG_TEXT = (
    (
        "ImageBind learns a joint embedding across six modalities. "
        "It uses image-paired data &amp; binds audio, text, depth, thermal and IMU to images.\n\n"
    )
    * 12
    + "See https://example.com/"
    + "verylongpathsegment" * 40
    + " for details. Ünïcödé 🐶 end."
)


def test_chunks_fit_cover_every_word_and_are_substrings() -> None:
    chunks = chunk_text(LONG_TEXT, overlap_words=5)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text == LONG_TEXT[chunk.start_char : chunk.end_char]
        assert 0 < count_tokens(chunk.text) <= MAX_TEXT_TOKENS
        row = tokenize(chunk.text)[0]
        assert row[count_tokens(chunk.text) + 1] == EOT  # nothing was cut
    covered = [False] * len(LONG_TEXT)
    for chunk in chunks:
        covered[chunk.start_char : chunk.end_char] = [True] * (chunk.end_char - chunk.start_char)
    assert all(covered[i] for i, ch in enumerate(LONG_TEXT) if not ch.isspace())
    assert chunks[0].start_char == 0 and chunks[-1].text.endswith("end.")
    starts = [c.start_char for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert any(b.start_char < a.end_char for a, b in zip(chunks, chunks[1:], strict=False))


def test_chunks_respect_a_smaller_budget_and_zero_overlap() -> None:
    chunks = chunk_text(LONG_TEXT, max_tokens=20, overlap_words=0)
    assert all(count_tokens(c.text) <= 20 for c in chunks)
    assert all(b.start_char >= a.end_char for a, b in zip(chunks, chunks[1:], strict=False))


def test_chunking_short_and_blank_text() -> None:
    [only] = chunk_text("  A short note.  ")
    assert only.text == "A short note." and (only.start_char, only.end_char) == (2, 15)
    assert chunk_text(" \n\t ") == []


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (76, 0), (10, -1)])
def test_chunking_rejects_bad_arguments(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        chunk_text("some words", max_tokens=max_tokens, overlap_words=overlap)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("naïve café ☕\n".encode(), "naïve café ☕\n"),
        (codecs.BOM_UTF8 + "bom café".encode(), "bom café"),
        ("utf-16 café".encode("utf-16"), "utf-16 café"),
        ("cp1252 \u201cquotes\u201d caf\u00e9".encode("cp1252"), "cp1252 \u201cquotes\u201d café"),
        (
            b"latin-1 fallback: byte 0x81 is not cp1252 \x81 caf\xe9",
            "latin-1 fallback: byte 0x81 is not cp1252 \x81 café",
        ),
        (b"# Markdown\n\n* kept *as is*\n", "# Markdown\n\n* kept *as is*\n"),
    ],
)
def test_load_text_file_decodings(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(content)
    assert load_text_file(path) == expected


@pytest.mark.parametrize("content", [b"", b" \n\t\r\n  "])
def test_load_text_file_rejects_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(EmptyInputError):
        load_text_file(path)


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 4, b"PK\x03\x04\x14\x00" + bytes(range(1, 32)) * 20],
    ids=["with-nul", "control-chars"],
)
def test_load_text_file_rejects_binary(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(content)
    with pytest.raises(DecodeError):
        load_text_file(path)


def test_load_text_file_size_limit_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 100, encoding="utf-8")
    assert load_text_file(path, max_bytes=500) == "word " * 100
    with pytest.raises(InputError):
        load_text_file(path, max_bytes=499)
    with pytest.raises(DecodeError):
        load_text_file(tmp_path / "absent.txt")
