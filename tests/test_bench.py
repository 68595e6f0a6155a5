"""``bindsearch bench``: loaders on fixtures in the distributed formats, metrics against
hand-computed matrices (ties included), and every command end to end with the tiny model,
its figures checked against a recomputation from the encoder's own vectors."""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from bench_fixtures import (
    AUDIOCAPS_CLIPS,
    ESC50_CLASSES,
    build_audiocaps,
    build_clotho,
    build_esc50,
    build_msrvtt,
)
from typer.testing import CliRunner

import bindsearch
from bindsearch.bench import metrics as m
from bindsearch.bench.datasets import (
    load_audiocaps,
    load_audioset,
    load_class_folders,
    load_clotho,
    load_esc50,
    load_msrvtt,
    load_vggsound,
)
from bindsearch.bench.retrieval import Scope, fused_ranks, search_rank
from bindsearch.cli import app
from bindsearch.errors import ConfigError, DatasetError
from bindsearch.ingest.pipeline import IngestOptions
from bindsearch.ingest.prepare import audio_clip_count

cli = CliRunner()

# --------------------------------------------------------------------------- metrics


def test_single_relevant_ranks_recall_and_map_by_hand():
    # 4 queries x 3 gallery items; query 1 ties its target with item 0, query 3 with item 2.
    sim = np.array(
        [[0.9, 0.1, 0.2], [0.5, 0.5, 0.1], [0.3, 0.2, 0.8], [0.1, 0.7, 0.7]], dtype=np.float32
    )
    gt = [0, 1, 1, 2]
    optimistic = m.best_ranks(m.ranks_from_matrix(sim, gt, "optimistic"))
    pessimistic = m.best_ranks(m.ranks_from_matrix(sim, gt, "pessimistic"))
    assert optimistic.tolist() == [0, 0, 2, 0]
    assert pessimistic.tolist() == [0, 1, 2, 1]
    assert m.recall_at_k(optimistic, (1, 2)) == {1: 75.0, 2: 75.0}
    assert m.recall_at_k(pessimistic, (1, 2, 3)) == {1: 25.0, 2: 75.0, 3: 100.0}
    # mAP@10 with one relevant item = mean reciprocal rank.
    assert m.mean_average_precision_at_k(m.single_ranks(list(pessimistic)), [1] * 4) == (
        pytest.approx(100 * (1 + 0.5 + 1 / 3 + 0.5) / 4)
    )
    # rank_among: the others' scores only.
    assert m.rank_among(np.array([0.5, 0.1]), 0.5, "optimistic") == 0
    assert m.rank_among(np.array([0.5, 0.1]), 0.5, "pessimistic") == 1


def test_recall_beyond_cutoff_and_map_at_10_cut():
    ranks = np.array([0, 9, 10, math.inf])
    assert m.recall_at_k(ranks, (1, 10)) == {1: 25.0, 10: 50.0}
    assert m.mean_average_precision_at_k(m.single_ranks(list(ranks)), [1] * 4, k=10) == (
        pytest.approx(100 * (1 + 0.1) / 4)
    )


def test_multi_relevant_positions_and_laion_map():
    # Gallery of 5; relevant {1, 3}; item 3 ties with non-relevant item 4.
    scores = np.array([0.9, 0.8, 0.1, 0.5, 0.5])
    assert m.relevant_positions(scores, {1, 3}, "optimistic").tolist() == [1, 2]
    assert m.relevant_positions(scores, {1, 3}, "pessimistic").tolist() == [1, 3]
    # AP@10 = (1/2 + 2/3) / 2 and (1/2 + 2/4) / 2.
    assert m.average_precision_at_k(np.array([1, 2]), 2) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m.average_precision_at_k(np.array([1, 3]), 2) == pytest.approx(0.5)
    # Two relevant items tied at the top take positions 0 and 1: AP is 1, never more.
    tied = m.relevant_positions(np.array([0.7, 0.7, 0.2]), {0, 1}, "optimistic")
    assert tied.tolist() == [0, 1] and m.average_precision_at_k(tied, 2) == 1.0
    # A relevant item beyond k counts as 0; n_relevant still divides.
    assert m.average_precision_at_k(np.array([0, 12]), 2) == pytest.approx(0.5)


def test_top1_ties_and_class_map_by_hand():
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.3], [0.4, 0.1, 0.3]])
    assert m.top1_correct(scores, [1, 1, 2], "optimistic").tolist() == [True, True, False]
    assert m.top1_correct(scores, [1, 1, 2], "pessimistic").tolist() == [False, True, False]
    assert m.top1_accuracy(scores, [0, 1, 0]) == pytest.approx(100.0)
    # Class AP: scores 0.9 0.8 0.8 0.1 with positives 1 0 1 0 -> thresholds 0.9 (P 1, R .5)
    # and 0.8 (P 2/3, R 1): AP = .5 * 1 + .5 * 2/3.
    ap = m.average_precision(np.array([0.9, 0.8, 0.8, 0.1]), np.array([1, 0, 1, 0]))
    assert ap == pytest.approx(0.5 + 1 / 3)
    # Macro mAP skips a class without positives; class 1's positive is third (AP 1/3).
    s = np.array([[0.9, 0.3, 0.2], [0.8, 0.2, 0.1], [0.8, 0.9, 0.0], [0.1, 0.1, 0.3]])
    t = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)
    assert m.mean_average_precision(s, t) == pytest.approx(100 * ((0.5 + 1 / 3) + 1 / 3) / 2)
    with pytest.raises(ConfigError):
        m.check_ties("random")


class _Hit:
    def __init__(self, path: str, score: float) -> None:
        self.path, self.score = path, score


class _FakeIndex:
    """The search layer's contract: top-k hits by score; counts its calls."""

    directory = Path("/fake")

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.calls: list[int] = []

    def search(self, *parts, modalities, path, where, k):
        self.calls.append(k)
        ranked = sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [_Hit(p, s) for p, s in ranked]


def test_search_rank_follows_ties_across_the_cut():
    # 12 items tied at the top; the target is the last of them by name: cut out at k = 3.
    scores = {f"/d/{i:02d}": 0.5 for i in range(12)} | {"/d/zz": 0.5, "/d/low": 0.1}
    scope = Scope("audio", Path("/d"))
    index = _FakeIndex(scores)
    assert search_rank(index, np.ones(2), "/d/zz", scope, 2, "optimistic") == 0
    assert index.calls == [3, 6, 12, 24]  # asked again until the tie group ended
    index = _FakeIndex(scores)
    assert search_rank(index, np.ones(2), "/d/zz", scope, 2, "pessimistic") == math.inf
    assert index.calls == [3]
    # A gallery item without a row gets its fixed score (a silent video's zero audio).
    index = _FakeIndex({"/d/a": 0.3, "/d/b": -0.2})
    silent = Scope("audio", Path("/d"), fixed={"/d/s": 0.0})
    assert search_rank(index, np.ones(2), "/d/b", silent, 10, "optimistic") == 2
    assert search_rank(index, np.ones(2), "/d/s", silent, 10, "optimistic") == 1


def test_fusion_uses_the_raw_audio_scale_and_zero_audio():
    text = np.array([[1.0, 0.0], [0.0, 1.0]])
    video = np.array([[0.8, 0.6], [0.6, 0.8]])
    audio = np.array([[0.0, 1.0], [0.0, 0.0]])  # item 1 has no sound
    # Raw scale: 0.95 v + 0.05 * 20 a. Item 0 -> (0.76, 1.57), cos with text 1 = 0.9 > 0.8.
    ranks = fused_ranks(text, video, audio, [0, 1], (0.95, 0.05), "optimistic")
    assert ranks.tolist() == [1, 1]
    # Weights (a, b / 20) are unit-vector weights (a, b): tiny audio weight -> video order.
    ranks = fused_ranks(text, video, audio, [0, 1], (1.0, 0.0001), "optimistic")
    assert ranks.tolist() == [0, 0]


def test_audio_clip_counts():
    assert audio_clip_count(30.0, None) == 3
    assert audio_clip_count(30.0, 5) == 5
    assert [audio_clip_count(t, 0) for t in (1.5, 5.0, 10.0, 10.0000001, 15.0, 30.0)] == [
        3, 3, 5, 5, 8, 15,
    ]  # fmt: skip
    with pytest.raises(ConfigError):
        IngestOptions(audio_clips=-1)


# --------------------------------------------------------------------------- loaders


def test_clotho_loader_exact_format(tmp_path):
    fx = build_clotho(tmp_path / "clotho")
    ds = load_clotho(fx.root)
    assert [(q.key, q.text) for q in ds.queries] == fx.captions  # 5 per file, in order
    assert ds.queries[1].text == 'A "heavy" downpour'
    assert ds.queries[0].text == "Rain falls on a tin roof, steadily."
    assert ds.files == fx.present and ds.missing == fx.missing
    assert ds.media_root == fx.root / "evaluation"
    assert ds.details["metadata_encoding"] == "latin-1" and ds.details["metadata_rows"] == 5
    assert ds.details["captions_encoding"] == "utf-8-sig"


def test_clotho_latin1_captions_and_decomposed_names(tmp_path):
    fx = build_clotho(tmp_path / "clotho")
    csv_path = fx.root / "clotho_captions_evaluation.csv"
    csv_path.write_bytes(csv_path.read_text(encoding="utf-8").encode("latin-1"))
    nfc = fx.present["Rain on roof é.wav"]
    nfc.rename(nfc.with_name(unicodedata.normalize("NFD", nfc.name)))  # as macOS extracts
    ds = load_clotho(fx.root)
    assert ds.details["captions_encoding"] == "latin-1"
    assert "Rain on roof é.wav" in ds.files and ds.files["Rain on roof é.wav"].is_file()
    with pytest.raises(DatasetError, match="Clotho captions CSV"):
        load_clotho(tmp_path)


def test_audiocaps_loader_versions_template_and_subset(tmp_path):
    fx = build_audiocaps(tmp_path / "ac")
    ds = load_audiocaps(fx.root)
    assert ds.details["captions_csv"].endswith("dataset/test.csv")
    assert ds.details["name_template"] == "Y{youtube_id}_{start:.3f}_{end:.3f}.wav"
    assert len(ds.queries) == 20 and ds.missing == fx.missing
    assert {k.split("@")[0]: p for k, p in ds.files.items()} == fx.present
    shared = [q.key for q in ds.queries if q.text == "A woman speaking"]
    assert len(shared) == 2 and shared[0] != shared[1]  # duplicates kept, own clips
    v2 = load_audiocaps(fx.root, captions=fx.root / "dataset2.0" / "test.csv")
    assert [q.text for q in v2.queries] == [q.text.lower() for q in ds.queries]
    sub = load_audiocaps(fx.root, subset=fx.extra["subset"])
    assert sorted(k.split("@")[0] for k in sub.files) == ["-abc123XYZ_", "ZZtop000001"]
    assert len(sub.queries) == 10 and sub.details["subset_unmatched"] == 1
    plain = load_audiocaps(fx.root, name_template="{youtube_id}.wav")
    assert not plain.files and len(plain.missing) == 4
    with pytest.raises(DatasetError, match="template"):
        load_audiocaps(fx.root, name_template="{video}.wav")


def test_msrvtt_and_esc50_loaders(tmp_path):
    fx = build_msrvtt(tmp_path / "msrvtt")
    ds = load_msrvtt(fx.root)
    assert [(q.key, q.text) for q in ds.queries] == fx.captions and ds.kind == "video"
    assert ds.files == fx.present and ds.missing == ["video7013.mp4"]
    esc = build_esc50(tmp_path / "esc")
    es = load_esc50(esc.root)
    assert es.class_names == [["dog"], ["sea waves"], ["hand saw"]]  # by target, no "_"
    assert len(es.files) == 10 and sorted(set(es.folds.values())) == [1, 2, 3, 4, 5]
    order = sorted(ESC50_CLASSES)
    for name, (fold, target) in esc.extra["labels"].items():
        assert es.labels[name] == (order.index(target),) and es.folds[name] == fold
    fold1 = load_esc50(esc.root.parent, folds=[1])  # finds ESC-50-master/meta/esc50.csv
    assert sorted(fold1.files) == sorted(n for n, (f, _) in esc.extra["labels"].items() if f == 1)
    with pytest.raises(DatasetError, match="folds 1-5"):
        load_esc50(esc.root, folds=[6])


def test_prompt_templates_are_the_80_clip_ones():
    from bindsearch.query.classify import prompt_templates

    templates = prompt_templates()
    assert len(templates) == 80 and all("sea waves" in t("sea waves") for t in templates)


def test_audioset_vggsound_and_folder_loaders(tmp_path):
    (tmp_path / "eval_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:25 2017\n# num_ytids=2, num_segs=2\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05zppz"\n'
        '-0RWZT-miFs, 420.000, 430.000, "/m/03v3yw"\n'
    )
    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n'
        "2,/m/03v3yw,Keys jangling\n"
    )
    (tmp_path / "Y--PJHxphWEs_30.000_40.000.wav").write_bytes(b"")
    aset = load_audioset(tmp_path)
    assert aset.class_names[1] == ["Male speech, man speaking"] and aset.multi_label
    assert list(aset.labels.values()) == [(0, 1), (2,)] and len(aset.files) == 1
    (tmp_path / "vggsound.csv").write_text(
        "---g-f_I2yQ,1,people marching,test\n--0PQM4-hqg,30,waterfall burbling,train\n"
        "--U7joUcTCo,0,people belly laughing,test\n"
    )
    vgg = load_vggsound(tmp_path)
    assert vgg.class_names == [["people belly laughing"], ["people marching"]]
    assert (
        len(vgg.missing) == 2 and vgg.details["name_template"] == "{youtube_id}_{start:06.0f}.wav"
    )
    for cls in ("bedroom", "others", "living_room"):
        (tmp_path / "nyu" / cls).mkdir(parents=True)
        (tmp_path / "nyu" / cls / "0001.png").write_bytes(b"")
    nyu = load_class_folders("nyud", tmp_path / "nyu")
    assert nyu.kind == "depth" and nyu.class_names[0] == ["bedroom"]
    assert nyu.class_names[1] == ["living room"] and len(nyu.class_names[2]) == 18


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def encoder():
    return bindsearch.create_encoder("imagebind-tiny", device="cpu")


def _bench(*args: str) -> dict:
    result = cli.invoke(
        app,
        [
            "bench",
            *args,
            "--model",
            "imagebind-tiny",
            "--device",
            "cpu",
            "--workers",
            "0",
            "--json",
        ],
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return json.loads(result.stdout)


def _figures(doc: dict) -> dict[tuple[str, str], float]:
    return {(row["task"], row["metric"]): row["value"] for row in doc["metrics"]}


def _recomputed(sim: np.ndarray, gt: list[int], task: str, with_map: bool = True) -> dict:
    """R@k and mAP@10 straight from a similarity matrix (ties optimistic: strictly greater)."""
    ranks = np.array([np.count_nonzero(row > row[g]) for row, g in zip(sim, gt, strict=True)])
    # The figures are only meaningful if no score is within float noise of the target's.
    gaps = [np.min(np.abs(np.delete(row, g) - row[g])) for row, g in zip(sim, gt, strict=True)]
    assert min(gaps) > 1e-5, "near-tie in the fixture: the comparison would be fragile"
    out = {(task, f"R@{k}"): 100.0 * np.mean(ranks < k) for k in (1, 5, 10)}
    if with_map:
        out[(task, "mAP@10")] = 100.0 * np.mean([1 / (r + 1) if r < 10 else 0.0 for r in ranks])
    return out


def _check_common(doc: dict, benchmark: str) -> None:
    assert doc["benchmark"] == benchmark and doc["model"] == "imagebind-tiny"
    assert doc["weights_id"] == "random-init" and doc["device"] == "cpu"
    assert {"bindsearch", "torch", "numpy", "lancedb", "python"} <= set(doc["versions"])
    assert doc["timing"]["total_s"] > 0 and doc["timing"]["ingest_s"] > 0


def test_clotho_end_to_end_and_rerun(tmp_path, encoder):
    fx = build_clotho(tmp_path / "clotho")
    out = tmp_path / "result.json"
    doc = _bench("clotho", "--data", str(fx.root), "--out", str(out))
    keys = list(fx.present)
    captions = [(k, t) for k, t in fx.captions if k in fx.present]
    sim = (
        encoder.encode("text", [t for _, t in captions])
        @ encoder.encode("audio", [fx.present[k] for k in keys]).T
    )
    expected = _recomputed(sim, [keys.index(k) for k, _ in captions], "text→audio")
    assert _figures(doc) == pytest.approx(expected, abs=1e-9)
    _check_common(doc, "clotho")
    data = doc["dataset"]
    assert data["gallery"] == {"audio": 4} and data["queries"] == 20
    assert data["queries_dropped"] == 5
    assert data["missing"] == {"count": 1, "first": ["missing file.wav"]}
    assert all(row["gallery"] == 4 and row["queries"] == 20 for row in doc["metrics"])
    assert doc["timing"]["search_s"] > 0 and doc["settings"]["clips"] == "3"
    paper = {(r["task"], r["metric"]): r["paper"] for r in doc["metrics"]}
    assert paper[("text→audio", "R@1")] == 6.0 and paper[("text→audio", "R@10")] == 28.4
    assert json.loads(out.read_text()) == doc
    # A rerun reuses the index; without --json it prints the table beside the paper's.
    table = cli.invoke(app, ["bench", "clotho", "--data", str(fx.root), "--model",
                             "imagebind-tiny", "--device", "cpu", "--workers", "0",
                             "--out", str(out)])  # fmt: skip
    assert table.exit_code == 0 and "28.4" in table.stdout and "missing file.wav" in table.output
    again = json.loads(out.read_text())
    assert again["ingest"]["files_unchanged"] == 4 and again["ingest"]["files_ingested"] == 0
    assert _figures(again) == _figures(doc) and again["index"] == doc["index"]


def test_clotho_auto_clips_cover_the_file(tmp_path, encoder):
    import soundfile

    from bindsearch.preprocess.audio import load_audio

    fx = build_clotho(tmp_path / "clotho")
    doc = _bench("clotho", "--data", str(fx.root), "--clips", "auto")
    keys = list(fx.present)
    counts = [audio_clip_count(soundfile.info(str(fx.present[k])).duration, 0) for k in keys]
    assert counts == [3, 3, 3, 5]
    audio = np.concatenate([
        encoder.encode("audio", [load_audio(fx.present[k], clips=n)])
        for k, n in zip(keys, counts, strict=True)
    ])  # fmt: skip
    captions = [(k, t) for k, t in fx.captions if k in fx.present]
    sim = encoder.encode("text", [t for _, t in captions]) @ audio.T
    expected = _recomputed(sim, [keys.index(k) for k, _ in captions], "text→audio")
    assert _figures(doc) == pytest.approx(expected, abs=1e-9)
    assert doc["settings"]["clips"] == "auto" and doc["index"].endswith(
        "clotho-imagebind-tiny-autoclips"
    )
    # Vectors of another clip setting must not mix: the auto index is refused for 3 clips.
    refused = cli.invoke(app, ["bench", "clotho", "--data", str(fx.root), "--model",
                               "imagebind-tiny", "--index", doc["index"]])  # fmt: skip
    assert isinstance(refused.exception, ConfigError) and "auto clips" in str(refused.exception)


def test_audiocaps_end_to_end_with_subset(tmp_path, encoder):
    fx = build_audiocaps(tmp_path / "audiocaps")
    doc = _bench("audiocaps", "--data", str(fx.root))
    keys = list(fx.present)  # youtube ids, stereo 48 kHz one included
    audio = encoder.encode("audio", [fx.present[k] for k in keys])

    def expected(kept: list[str]) -> dict:
        captions = [(k, t) for k, t in fx.captions if k in kept]
        sim = (
            encoder.encode("text", [t for _, t in captions])
            @ audio[[keys.index(k) for k in kept]].T
        )
        return _recomputed(sim, [kept.index(k) for k, _ in captions], "text→audio")

    assert _figures(doc) == pytest.approx(expected(keys), abs=1e-9)
    _check_common(doc, "audiocaps")
    assert doc["dataset"]["gallery"] == {"audio": 3} and doc["dataset"]["queries"] == 15
    assert doc["dataset"]["missing"] == {"count": 1, "first": fx.missing}
    assert doc["settings"]["name_template"] == "Y{youtube_id}_{start:.3f}_{end:.3f}.wav"
    # The subset reuses the same index, whose other clip must stay out of the gallery.
    sub = _bench("audiocaps", "--data", str(fx.root), "--subset", str(fx.extra["subset"]))
    assert sub["index"] == doc["index"] and sub["ingest"]["files_unchanged"] == 2
    assert sub["dataset"]["gallery"] == {"audio": 2} and sub["dataset"]["subset_unmatched"] == 1
    assert _figures(sub) == pytest.approx(expected(["-abc123XYZ_", "ZZtop000001"]), abs=1e-9)
    assert [c[1] for c in AUDIOCAPS_CLIPS[:3]] == keys


def test_msrvtt_end_to_end_video_audio_fusion(tmp_path, encoder):
    fx = build_msrvtt(tmp_path / "msrvtt")
    doc = _bench("msrvtt", "--data", str(fx.root))
    keys = list(fx.present)
    sounding = [k for k in keys if k != "video7011"]
    video = encoder.encode("video", [fx.present[k] for k in keys])
    audio = np.zeros_like(video)
    audio[[keys.index(k) for k in sounding]] = encoder.encode(
        "audio", [fx.present[k] for k in sounding]
    )
    captions = [(k, t) for k, t in fx.captions if k in fx.present]
    text = encoder.encode("text", [t for _, t in captions])
    gt = [keys.index(k) for k, _ in captions]
    fused = 0.95 * video + 0.05 * 20 * audio
    fused /= np.linalg.norm(fused, axis=1, keepdims=True)
    expected = {
        **_recomputed(text @ video.T, gt, "text→video (V)", with_map=False),
        **_recomputed(text @ audio.T, gt, "text→video (A)", with_map=False),
        **_recomputed(text @ fused.T, gt, "text→video (A+V)", with_map=False),
    }
    assert _figures(doc) == pytest.approx(expected, abs=1e-9)
    _check_common(doc, "msrvtt")
    data = doc["dataset"]
    assert data["gallery"] == {"video": 3, "audio": 2} and data["videos_without_audio"] == 1
    assert data["missing"]["first"] == ["video7013.mp4"] and data["queries"] == 3
    assert doc["settings"]["fusion"] == [0.95, 0.05]
    # restrict: A and A+V over the videos with sound only (and their captions).
    res = _bench("msrvtt", "--data", str(fx.root), "--missing-audio", "restrict",
                 "--fusion", "0.9,0.1")  # fmt: skip
    rows = [keys.index(k) for k in sounding]
    kept = [n for n, (k, _) in enumerate(captions) if k in sounding]
    sub_gt = [sounding.index(captions[n][0]) for n in kept]
    fused = 0.9 * video[rows] + 0.1 * 20 * audio[rows]
    fused /= np.linalg.norm(fused, axis=1, keepdims=True)
    expected = {
        **_recomputed(text @ video.T, gt, "text→video (V)", with_map=False),
        **_recomputed(text[kept] @ audio[rows].T, sub_gt, "text→video (A)", with_map=False),
        **_recomputed(text[kept] @ fused.T, sub_gt, "text→video (A+V)", with_map=False),
    }
    assert _figures(res) == pytest.approx(expected, abs=1e-9)
    gallery = {(r["task"], r["metric"]): r["gallery"] for r in res["metrics"]}
    assert gallery[("text→video (A)", "R@1")] == 2 and gallery[("text→video (V)", "R@1")] == 3


def test_esc50_end_to_end_and_fold_1(tmp_path, encoder):
    from bindsearch.query.classify import prompt_templates

    fx = build_esc50(tmp_path / "esc")
    doc = _bench("esc50", "--data", str(fx.root))
    names = list(fx.present)
    clips = encoder.encode("audio", [fx.present[n] for n in names])
    templates = prompt_templates()
    labels = []
    for label in ("dog", "sea waves", "hand saw"):
        mean = encoder.encode("text", [t(label) for t in templates]).mean(axis=0)
        labels.append(mean / np.linalg.norm(mean))
    scores = clips @ np.stack(labels).T
    order = sorted(ESC50_CLASSES)
    target = np.array([order.index(fx.extra["labels"][n][1]) for n in names])
    margin = np.sort(scores, axis=1)[:, -1] - np.sort(scores, axis=1)[:, -2]
    assert margin.min() > 1e-5, "near-tie in the fixture"
    correct = scores.argmax(axis=1) == target
    fold = np.array([fx.extra["labels"][n][0] for n in names])
    expected = {("zero-shot", "top-1"): 100.0 * correct.mean()}
    for f in range(1, 6):
        expected[("zero-shot", f"top-1 fold {f}")] = 100.0 * correct[fold == f].mean()
    assert _figures(doc) == pytest.approx(expected, abs=1e-9)
    _check_common(doc, "esc50")
    head = doc["metrics"][0]
    assert head["paper"] == 66.9 and head["reproduction"] == 66.4
    assert head["gallery"] == 3 and head["queries"] == 10  # 3 classes, 10 clips
    one = _bench("esc50", "--data", str(fx.root), "--folds", "1")
    assert one["metrics"][0]["paper"] is None and one["metrics"][0]["queries"] == 2
    assert one["metrics"][0]["value"] == pytest.approx(100.0 * correct[fold == 1].mean())


def test_missing_dataset_and_bad_options(tmp_path):
    empty = cli.invoke(app, ["bench", "esc50", "--data", str(tmp_path), "--model",
                             "imagebind-tiny"])  # fmt: skip
    assert isinstance(empty.exception, DatasetError) and "esc50.csv" in str(empty.exception)
    fx = build_msrvtt(tmp_path / "msrvtt")
    for args in (["--clips", "0"], ["--ties", "random"], ["--fusion", "1"]):
        bad = cli.invoke(app, ["bench", "msrvtt", "--data", str(fx.root), *args])
        assert isinstance(bad.exception, ConfigError), args
