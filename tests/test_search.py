"""Similarity search: the pure functions against brute force, the vector store (exact and HNSW), and index/search
end to end on real images with a real backbone, through the Python API and the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from transferlab.analysis import similarity
from transferlab.analysis.similarity import normalise, precision_at_k, recall_at_k, top_k_cosine
from transferlab.cli import main
from transferlab.features.vector_index import VectorIndex


def brute_force(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = q.astype(np.float64) @ v.T.astype(np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


# --- pure functions ----------------------------------------------------------------------------------------------
def test_exact_top_k_equals_brute_force_across_chunks(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 24)).astype(np.float32)
    queries = rng.standard_normal((30, 24)).astype(np.float32)
    monkeypatch.setattr(similarity, "CHUNK_ROWS", 97)  # many chunks, so the merge across chunks is exercised
    idx, scores = top_k_cosine(queries, vectors, 7)
    want_idx, want_scores = brute_force(queries, vectors, 7)
    assert idx.shape == (30, 7)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-7)  # best first


def test_exact_top_k_leave_one_out_and_small_indexes() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    idx, _ = top_k_cosine(vectors, vectors, 1)
    np.testing.assert_array_equal(idx[:, 0], np.arange(50))  # each vector is its own nearest
    idx, _ = top_k_cosine(vectors, vectors, 3, exclude_self=True)
    assert not np.any(idx == np.arange(50)[:, None])
    np.testing.assert_array_equal(idx, brute_force(vectors, vectors, 4)[0][:, 1:])
    idx, _ = top_k_cosine(vectors[:2], vectors[:3], 10)  # k beyond the index: every item once
    assert idx.shape == (2, 3)


def test_normalise_keeps_zero_rows_finite() -> None:
    x = normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]])


def test_recall_and_precision_at_k() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(truth, truth) == 1.0
    assert recall_at_k(np.array([[3, 2, 9], [7, 8, 9]]), truth) == pytest.approx((2 / 3 + 0) / 2)
    assert recall_at_k(np.array([[3, 2, 1], [6, 5, 4]]), truth) == 1.0  # order within the top k does not matter
    labels = np.array(["a", "a", "b", "b", "a", "b", "b"])
    neighbours = np.array([[0, 1, 2], [2, 3, 4]])
    assert precision_at_k(neighbours, np.array(["a", "b"]), labels) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert precision_at_k(neighbours, np.array(["a", "b"]), labels, k=2) == pytest.approx((1 + 1) / 2)


def test_collections_of_images_and_texts(tmp_path: Path) -> None:
    from PIL import Image

    from transferlab.data.collection import collection_task, read_collection
    from transferlab.errors import DataError

    photos = tmp_path / "photos"
    for rel in ("train/ants/a.jpg", "val/bees/b.png", "loose.png"):
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(photos / rel)
    (photos / "README.md").write_text("about these photos")
    found = read_collection(photos)
    assert found.task == "image" and [Path(p).name for p in found.ids] == ["loose.png", "a.jpg", "b.png"]
    assert found.labels == [None, "ants", "bees"]  # class folders under train/ and val/; none for a loose file
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "README.md").write_text("notes")
    (texts / "train.csv").write_text("text,label\nhello there,a\n,b\nbye now,b\n")
    (texts / "more.jsonl").write_text('{"text": "no label here"}\n')
    assert collection_task(texts) == "text"
    found = read_collection(texts)
    assert found.items == ["no label here", "hello there", "bye now"] and found.labels == [None, "a", "b"]
    assert found.ids[1].endswith("train.csv:2") and found.report.skipped[0]["reason"] == "empty text"
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no image files"):
        read_collection(tmp_path / "nothing")


# --- the vector store --------------------------------------------------------------------------------------------
def test_vector_index_exact_over_several_adds_equals_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    parts = [rng.standard_normal((n, 16)).astype(np.float32) for n in (40, 1, 300)]
    store = VectorIndex(16, ann="never")
    for p in parts:
        store.add(p)
    everything = np.concatenate(parts)
    queries = rng.standard_normal((12, 16)).astype(np.float32)
    idx, scores = store.search(queries, 5)
    np.testing.assert_array_equal(idx, brute_force(queries, everything, 5)[0])
    state = store.save(tmp_path)
    again = VectorIndex.load(tmp_path, json.loads(json.dumps(state)))
    np.testing.assert_array_equal(again.search(queries, 5)[0], idx)
    assert not again.uses_ann and state["ann"] is None


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Vectors around a few hundred centres: the shape of real feature sets (classes, near-duplicates)."""
    return (centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)


def test_ann_recall_against_exact_search_and_add_without_rebuild(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    dim = 300  # above 256: the graph walks a PCA projection, and candidates are re-ranked on the full vectors
    centres = rng.standard_normal((300, dim))
    store = VectorIndex(dim, ann="always", ef_construction=64)  # a lighter build than the default 200, for speed
    store.add(clustered(2000, dim, rng, centres))
    assert store.uses_ann and store.ef_search in (16, 32, 64, 128, 256, 512, 1024)
    assert store.calibration is not None and store.calibration["queries"] > 0
    queries = clustered(200, dim, rng, centres)
    found, scores = store.search(queries, 10)
    truth, truth_scores = store.search(queries, 10, exact=True)
    assert recall_at_k(found, truth, 10) >= 0.9
    np.testing.assert_allclose(scores[:, 0], truth_scores[:, 0], atol=1e-5)  # re-ranked: exact cosines
    graph = store._graph
    store.add(clustered(300, dim, rng, centres))  # inserted into the same graph: no rebuild
    assert store._graph is graph and graph.ntotal == 2300 and len(store) == 2300
    found, _ = store.search(queries, 10)
    truth, _ = store.search(queries, 10, exact=True)
    assert recall_at_k(found, truth, 10) >= 0.9
    assert found.max() >= 2000 or truth.max() < 2000  # the new items are reachable
    state = store.save(tmp_path)
    again = VectorIndex.load(tmp_path, json.loads(json.dumps(state)))
    np.testing.assert_array_equal(again.search(queries, 10)[0], found)
    assert (tmp_path / "ann.faiss").is_file() and state["ann"]["m"] == 32 and state["ann"]["kind"].startswith("PCA")


def test_auto_mode_builds_the_graph_only_from_ann_from_items() -> None:
    rng = np.random.default_rng(4)
    store = VectorIndex(8, ann="auto", ann_from=600)
    store.add(rng.standard_normal((500, 8)))
    assert not store.uses_ann
    store.add(rng.standard_normal((200, 8)))
    assert store.uses_ann and store._graph.ntotal == 700


# --- index and search on real images with a real backbone ---------------------------------------------------------
def copy_classes(src: Path, dst: Path, classes: list[str]) -> Path:
    for c in classes:
        shutil.copytree(src / c, dst / c)
    return dst


@pytest.fixture(scope="module")
def digit_index(digits_dir: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferlab.workflows.search import build_index

    out = tmp_path_factory.mktemp("idx") / "digits.idx"
    build_index(digits_dir, out)
    return out


def test_index_round_trip_on_real_images(digit_index: Path, digits_dir: Path) -> None:
    from transferlab.workflows.search import embed, load_index

    index = load_index(digit_index)
    assert index.modality == "image" and index.backbone == "efficientnet_lite0" and len(index) == 120
    # the digits are in class folders: the default metric learned the 9 directions that separate the 10 classes
    assert index.metric == "labels" and index.feature_dim == 1280 and index.vectors.dim == 1289
    assert not index.vectors.uses_ann
    query = sorted((digits_dir / "7").iterdir())[0]
    hits = index.search(str(query), k=5)[0]
    assert hits[0]["path"] == str(query.resolve()) and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and hits[0]["label"] == "7"
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:], strict=False))
    # the same image as bytes, and as a vector embedded outside the index, give the same neighbours
    assert [h["path"] for h in index.search([query.read_bytes()], k=5)[0]] == [h["path"] for h in hits]
    vectors, _, _ = embed("efficientnet_lite0", "image", [str(query)])
    assert [h["path"] for h in index.search(vectors, k=5)[0]] == [h["path"] for h in hits]
    # pretrained features put like digits together (chance is 0.1)
    vectors = normalise(embed("efficientnet_lite0", "image", [h["path"] for h in index.entries])[0])
    neighbours, _ = top_k_cosine(vectors, vectors, 5, exclude_self=True)
    labels = np.array(index.labels())
    assert precision_at_k(neighbours, labels, labels) >= 0.4  # 0.50 measured with Lite0


def test_label_aware_metric_finds_more_of_the_query_class_than_the_features_alone(
        digits_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    from transferlab.workflows.search import build_index, load_index

    # index = the first two thirds of each digit's images, queries = the rest (never seen by the discriminant)
    queries, query_labels = [], []
    for folder in sorted(p for p in digits_dir.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        cut = 2 * len(files) // 3
        (tmp_path / "data" / folder.name).mkdir(parents=True)
        for f in files[:cut]:
            (tmp_path / "data" / folder.name / f.name).symlink_to(f)
        queries += [str(f) for f in files[cut:]]
        query_labels += [folder.name] * (len(files) - cut)
    precision = {}
    for metric in ("cosine", "labels"):
        build_index(tmp_path / "data", tmp_path / metric, metric=metric)
        index = load_index(tmp_path / metric)
        assert index.metric == metric
        hits = index.search(queries, k=5)
        found = np.array([[h["index"] for h in row] for row in hits])
        precision[metric] = precision_at_k(found, np.array(query_labels), np.array(index.labels()))
    # measured: 0.41 by the features' cosine, 0.715 label-aware (chance 0.10)
    assert precision["labels"] >= precision["cosine"] + 0.1, precision
    # the discriminant is saved as a plain array and used again after loading
    manifest = json.loads((tmp_path / "labels" / "index.json").read_text())
    assert manifest["metric"] == "cosine+labels" and manifest["discriminant"]["classes"] == [str(i) for i in range(10)]
    assert np.load(tmp_path / "labels" / "discriminant.npy", allow_pickle=False).shape == (1280, 9)


def test_metric_labels_needs_labels_and_auto_says_why_it_did_without(tmp_path: Path, cache_dir: Path,
                                                                     digits_dir: Path, capsys) -> None:
    from transferlab.workflows.search import build_index

    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((digits_dir / "3").iterdir())[:6]:
        (flat / f.name).symlink_to(f)
    assert main(["index", str(flat), "--out", str(tmp_path / "a.idx"), "--metric", "labels"]) == 2
    err = capsys.readouterr().err
    assert "--metric labels" in err and "no labels" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.idx" / "index.json").exists()
    index = build_index(flat, tmp_path / "b.idx")  # auto: the features alone, and the manifest says why
    assert index.metric == "cosine" and "no labels" in index.manifest["metric_reason"]
    assert main(["index", str(flat), "--out", str(tmp_path / "c.idx"), "--metric", "nearest"]) == 2


def test_saved_index_is_json_npy_and_reloads_without_pickles(digit_index: Path) -> None:
    suffixes = {p.suffix for p in digit_index.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".jsonl", ".npy", ".faiss"}, suffixes
    manifest = json.loads((digit_index / "index.json").read_text())
    assert manifest["backbone"] == "efficientnet_lite0" and manifest["modality"] == "image"
    assert manifest["count"] == 120 and manifest["vectors"]["metric"] == "cosine"
    for name in manifest["vectors"]["shards"]:
        assert np.load(digit_index / name, allow_pickle=False).dtype == np.float32


def test_add_without_rebuild(digits_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    from transferlab.workflows.search import add_to_index, build_index, load_index

    first = copy_classes(digits_dir, tmp_path / "first", ["0", "1", "2"])
    more = copy_classes(digits_dir, tmp_path / "more", ["3", "4"])
    index = build_index(first, tmp_path / "idx")
    shard = tmp_path / "idx" / "vectors" / "000000.npy"
    before = (shard.read_bytes(), shard.stat().st_mtime_ns)
    index, summary = add_to_index(tmp_path / "idx", more)
    assert summary["added"] == 24 and len(index) == 60
    assert (shard.read_bytes(), shard.stat().st_mtime_ns) == before  # the first vectors were not rewritten
    _, again = add_to_index(tmp_path / "idx", more)  # the same files again: nothing new
    assert again["added"] == 0 and again["already_indexed"] == 24
    reloaded = load_index(tmp_path / "idx")
    assert len(reloaded) == 60
    hit = reloaded.search(str(sorted((more / "4").iterdir())[0]), k=1)[0][0]
    assert hit["label"] == "4" and hit["score"] == pytest.approx(1.0, abs=1e-4)


def test_centred_index_keeps_its_centre(digits_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    from transferlab.workflows.search import build_index, embed, load_index

    data = copy_classes(digits_dir, tmp_path / "some", ["5", "6", "8"])
    build_index(data, tmp_path / "c.idx", centre=True)
    index = load_index(tmp_path / "c.idx")
    assert index.manifest["centre"] == "centre.npy" and index.centre is not None
    raw, _, _ = embed("efficientnet_lite0", "image", [p for p in sorted(map(str, data.rglob("*.png")))])
    np.testing.assert_allclose(index.centre, raw.mean(axis=0), atol=1e-5)  # the mean of the items indexed
    query = sorted((data / "6").iterdir())[3]
    hits = index.search(str(query), k=3)[0]
    assert hits[0]["path"] == str(query.resolve()) and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert hits[1]["score"] < 0.99  # centred cosines spread out below 1


# --- the command line --------------------------------------------------------------------------------------------
def test_cli_index_and_search_json_and_sheet(digits_dir: Path, cache_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.idx"
    assert main(["index", str(digits_dir), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["count"] == 120 and doc["backbone"] == "efficientnet_lite0"
    query = sorted((digits_dir / "3").iterdir())[1]
    sheet = tmp_path / "sheet.html"
    assert main(["search", str(out), str(query), "-k", "4", "--json", "--sheet", str(sheet)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["neighbours"]) == 4
    assert {"path", "score", "rank", "label"} <= set(doc["neighbours"][0])
    assert doc["neighbours"][0]["path"] == str(query.resolve())
    page = sheet.read_text()
    assert page.count("data:image/jpeg;base64,") == 5  # the query and four neighbours, embedded
    png = tmp_path / "sheet.png"
    assert main(["search", str(out), str(query), "-k", "3", "--sheet", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "rank" in capsys.readouterr().out
    # a second index at the same place is refused; --add of the same folder adds nothing
    assert main(["index", str(digits_dir), "--out", str(out)]) == 2
    assert main(["index", str(digits_dir), "--out", str(out), "--add", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 0


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("transferlab: error:"), err
    return err[0]


def test_cli_wrong_modality_empty_and_unknown_backbone_exit_2(digit_index: Path, digits_dir: Path, tmp_path: Path,
                                                               cache_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["search", str(digit_index), "--text", "a handwritten seven"]) == 2
    assert "index of images" in one_line_error(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["index", str(empty), "--out", str(tmp_path / "e.idx")]) == 2
    assert "no image files" in one_line_error(capsys)
    assert not (tmp_path / "e.idx" / "index.json").exists()
    # an index with no items (all of them removed by hand) answers no query
    hollow = tmp_path / "hollow.idx"
    shutil.copytree(digit_index, hollow)
    manifest = json.loads((hollow / "index.json").read_text())
    manifest.update(items=[], count=0)
    manifest["vectors"].update(shards=[], count=0)
    (hollow / "index.json").write_text(json.dumps(manifest))
    query = sorted((digits_dir / "1").iterdir())[0]
    assert main(["search", str(hollow), str(query)]) == 2
    assert "empty" in one_line_error(capsys)
    assert main(["index", str(digits_dir), "--out", str(tmp_path / "x.idx"), "--backbone", "resnet999"]) == 2
    assert "unknown backbone" in one_line_error(capsys)
    assert main(["index", str(digits_dir), "--out", str(tmp_path / "x.idx"), "--backbone", "glove"]) == 2
    assert "text backbone" in one_line_error(capsys)
    assert main(["search", str(tmp_path), str(query)]) == 2
    assert "not a similarity index" in one_line_error(capsys)


def test_cli_unreadable_query_and_damaged_index_exit_2(digit_index: Path, digits_dir: Path, tmp_path: Path,
                                                       cache_dir: Path, capsys) -> None:
    """A query image that cannot be read, and an index with a damaged or missing file, are bad input: one line
    naming the file, exit 2 (not a numpy error about shapes or a missing .npy from deep inside)."""
    capsys.readouterr()
    for name, content in (("empty.jpg", b""), ("notes.jpg", b"just some text")):
        query = tmp_path / name
        query.write_bytes(content)
        assert main(["search", str(digit_index), str(query)]) == 2
        assert str(query) in one_line_error(capsys)

    def broken_manifest(d: Path) -> None:
        (d / "index.json").write_text('{"kind": ')

    def not_an_object(d: Path) -> None:
        (d / "index.json").write_text("[1, 2]")

    def vectors_gone(d: Path) -> None:
        for f in (d / "vectors").iterdir():
            f.unlink()

    def vectors_truncated(d: Path) -> None:
        for f in (d / "vectors").iterdir():
            f.write_bytes(f.read_bytes()[:100])

    def items_cut(d: Path) -> None:
        for f in (d / "items").iterdir():
            f.write_text(f.read_text().splitlines()[0] + "\n")

    query = sorted((digits_dir / "1").iterdir())[0]
    for damage in (broken_manifest, not_an_object, vectors_gone, vectors_truncated, items_cut):
        damaged = tmp_path / damage.__name__
        shutil.copytree(digit_index, damaged)
        damage(damaged)
        assert main(["search", str(damaged), str(query)]) == 2, damage.__name__
        line = one_line_error(capsys)
        assert str(damaged) in line and ("damaged" in line or "not a transferlab similarity index" in line), line


def test_text_index_with_glove(tmp_path: Path, cache_dir: Path, capsys) -> None:
    data = tmp_path / "pets.csv"
    rows = ["text,label", "the cat sat on the mat,cats", "a kitten chased the cat,cats", "dogs bark at night,dogs",
            "the puppy and the dog played,dogs", "stock markets fell sharply,finance",
            "shares and bonds rallied,finance"]
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "pets.idx"
    assert main(["index", str(data), "--out", str(out), "--backbone", "glove", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["modality"] == "text" and doc["count"] == 6
    assert main(["search", str(out), "--text", "the stock market crashed", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["neighbours"]
    assert hits[0]["label"] == "finance" and hits[0]["path"].endswith("pets.csv:6") and "text" in hits[0]
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    assert main(["search", str(out), str(image)]) == 2
    assert "index of texts" in one_line_error(capsys)
    assert main(["search", str(out), "--text", "  "]) == 2  # an empty query matches nothing: said, not all-zero scores
    assert "query is empty" in one_line_error(capsys)
    manifest = json.loads((out / "index.json").read_text())
    assert manifest["encoder"]["name"] == "glove" and manifest["layer"] == "features"


def test_discriminant_is_fitted_on_a_bounded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16)) * 3
    labels = [str(i % 3) for i in range(300)] + ["rare"]  # one item of a class: no spread to learn from
    vectors = np.stack([centres[int(c)] if c != "rare" else np.zeros(16) for c in labels])
    vectors = vectors + rng.standard_normal(vectors.shape)
    full = similarity.fit_discriminant(vectors, labels)
    assert full.shape == (16, 2)  # the 3 classes with >= 2 items
    monkeypatch.setattr(similarity, "MAX_DISCRIMINANT_ITEMS", 60)
    sampled = similarity.fit_discriminant(vectors, labels)
    assert sampled.shape == (16, 2)
    # the sample finds the same separation: items of a class are nearer each other than to the others
    z = similarity.label_aware(normalise(vectors[:300]), sampled)
    neighbours, _ = top_k_cosine(z, z, 5, exclude_self=True)
    y = np.array(labels[:300])
    assert precision_at_k(neighbours, y, y) >= 0.95
    with pytest.raises(ValueError, match="two classes"):
        similarity.fit_discriminant(vectors[:4], ["a", "a", "b", "c"])
