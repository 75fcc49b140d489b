"""Images in every mode are read correctly; bad files are skipped and reported; bad datasets give one clear line."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab.cli import main
from transferlab.data import load_image, resolve_image_data, stratified_split
from transferlab.errors import DataError, ImageDecodeError


def _photo(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.zeros((size[1], size[0], 3), np.uint8)
    base[..., seed % 3] = 200
    return Image.fromarray(np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8))


def _png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """A valid PNG header claiming 10^10 pixels, with a tiny payload."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_modes_are_converted_to_rgb(tmp_path: Path) -> None:
    rgb = _photo(1)
    cases = {
        "gray.png": rgb.convert("L"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P"),
        "one_bit.png": rgb.convert("1"),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
        out = load_image(tmp_path / name)
        assert out.mode == "RGB" and out.size == rgb.size, name
    # 16-bit grayscale keeps its contrast (Pillow's own conversion would clip it to white)
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    deep = np.asarray(load_image(tmp_path / "deep.png"))
    assert deep[0, 0, 0] < 5 and deep[-1, -1, 0] > 250 and 100 < deep[32, 0, 0] < 155
    # transparent pixels become white, not black
    transparent = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    transparent.save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png")).min() == 255


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (60, 30), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rotated.jpg").size == (30, 60)


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "bomb"])
def test_bad_files_raise_clear_reasons(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"bad_{kind}"
    if kind == "empty":
        path.write_bytes(b"")
        expected = "empty"
    elif kind == "truncated":
        buf = io.BytesIO()
        _photo(2, (300, 300)).save(buf, "JPEG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        expected = "truncated"
    elif kind == "text":
        path.write_text("not an image at all")
        expected = "not an image"
    else:
        _png_bomb(path)
        expected = "too large"
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    assert expected in info.value.reason


def _make_bad_folder(root: Path) -> dict[str, str]:
    """Good images of two classes plus each kind of bad file; returns bad file -> expected reason word."""
    for cls, seed in (("red", 0), ("green", 1)):
        (root / cls).mkdir(parents=True)
        for i in range(8):
            _photo(seed + 3 * i).save(root / cls / f"img{i}.jpg")
    bad = {}
    (root / "red" / "zero.jpg").write_bytes(b"")
    bad["zero.jpg"] = "empty"
    buf = io.BytesIO()
    _photo(5, (300, 300)).save(buf, "JPEG")
    (root / "red" / "cut.jpg").write_bytes(buf.getvalue()[:2000])
    bad["cut.jpg"] = "truncated"
    (root / "green" / "notes.txt").write_text("a text file in a class folder")
    bad["notes.txt"] = "not an image"
    _png_bomb(root / "green" / "bomb.png")
    bad["bomb.png"] = "too large"
    return bad


def test_training_skips_and_reports_every_bad_file(tmp_path: Path, cache_dir: Path, capsys) -> None:
    data = tmp_path / "data"
    bad = _make_bad_folder(data)
    out = tmp_path / "model"
    code = main(["train", str(data), "--out", str(out), "--val-fraction", "0.25"])
    assert code == 0
    report = json.loads((out / "data_report.json").read_text())
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == set(bad)
    for name, word in bad.items():
        assert word in reasons[name], (name, reasons[name])
    used = sum(report["splits"]["train"].values()) + sum(report["splits"]["eval"].values())
    assert used == 16  # every good image, none of the bad ones
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.75  # two colour classes: easy once the bad files are out of the way


def test_single_class_folder_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "data" / "only").mkdir(parents=True)
    for i in range(3):
        _photo(i).save(tmp_path / "data" / "only" / f"{i}.png")
    code = main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "at least two classes" in err[0] and "Traceback" not in err[0]


def test_empty_class_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _photo(0).save(tmp_path / "a" / "x.png")
    _photo(1).save(tmp_path / "a" / "y.png")
    with pytest.raises(DataError, match="no usable images: b"):
        resolve_image_data(tmp_path)


def test_folder_layouts_and_csv(tmp_path: Path) -> None:
    for split in ("train", "valid"):
        for cls in ("x", "y"):
            (tmp_path / "tv" / split / cls).mkdir(parents=True)
            for i in range(3):
                _photo(i).save(tmp_path / "tv" / split / cls / f"{i}.png")
    train, ev, _ = resolve_image_data(tmp_path / "tv")
    assert len(train) == 6 and len(ev) == 6 and ev.classes == ["x", "y"]
    rows = ["path,label"] + [f"tv/train/{c}/{i}.png,{c}" for c in ("x", "y") for i in range(3)]
    (tmp_path / "data.csv").write_text("\n".join(rows))
    train, ev, _ = resolve_image_data(tmp_path / "data.csv", val_fraction=0.34, seed=1)
    assert len(train) == 4 and len(ev) == 2 and sorted(ev.labels) == ["x", "y"]


def test_stratified_split_is_seeded_and_stratified() -> None:
    labels = ["a"] * 10 + ["b"] * 5
    tr1, ev1 = stratified_split(labels, 0.2, seed=3)
    tr2, ev2 = stratified_split(labels, 0.2, seed=3)
    assert (tr1, ev1) == (tr2, ev2)
    assert sorted(labels[i] for i in ev1) == ["a", "a", "b"]
    assert stratified_split(labels, 0.2, seed=4)[1] != ev1


def test_evaluation_split_is_checked_without_running_the_network(tmp_path: Path) -> None:
    """Bad files in train/ and val/ are both left out and reported, each under its split; the good val/ images are
    only decoded (their features come later, from the backbones the chosen strategy uses), the train/ ones are
    cached; a second run finds the val/ failures in the cache."""
    from transferlab import runtime
    from transferlab.backbones import DEFAULT_BACKBONE, get_backbone
    from transferlab.cache import FeatureCache, file_digest
    from transferlab.features.images import feature_key
    from transferlab.workflows.common import prepare

    for split, seeds in (("train", range(0, 8)), ("val", range(8, 12))):
        for cls, offset in (("red", 0), ("green", 1)):
            (tmp_path / split / cls).mkdir(parents=True)
            for s in seeds:
                _photo(3 * s + offset).save(tmp_path / split / cls / f"{s}.png")
    (tmp_path / "train" / "red" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "val" / "green" / "empty.png").write_bytes(b"")
    cache_dir = tmp_path / "cache"
    for attempt in range(2):
        with runtime.settings(cache_directory=cache_dir, progress=False):
            data = prepare(tmp_path)
        skipped = {(Path(s["path"]).name, s["split"]): s["reason"] for s in data.report.to_dict()["skipped"]}
        assert set(skipped) == {("broken.jpg", "train"), ("empty.png", "eval")}, attempt
        assert "empty" in skipped[("empty.png", "eval")]
        assert len(data.train) == 16 and len(data.eval) == 8
    spec = get_backbone(DEFAULT_BACKBONE)
    key = feature_key(spec, spec.preprocessing, "features")
    with FeatureCache(cache_dir) as cache:
        assert len(cache.get_many(key, [file_digest(p) for p in data.train.paths])) == 16
        assert cache.get_many(key, [file_digest(p) for p in data.eval.paths]) == {}
        assert cache.get_failures([file_digest(tmp_path / "val" / "green" / "empty.png")])


def test_decoding_in_threads_leaves_other_threads_warning_filters_alone() -> None:
    """Images are decoded in worker threads while the main thread may be silencing warnings (the ONNX export, whose
    tracer warnings reached the terminal): a warnings.catch_warnings() per image saved and restored the process-wide
    filters, so a decode that began before the main thread's filter and ended after it removed that filter."""
    import threading
    import time
    import warnings

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG")
    data, stop = buf.getvalue(), threading.Event()

    def decode() -> None:
        while not stop.is_set():
            load_image(data)

    workers = [threading.Thread(target=decode) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        with warnings.catch_warnings():
            for _ in range(50):  # the workers are mid-decode whenever the filter goes in
                warnings.filterwarnings("ignore", message="main thread's own filter")
                time.sleep(0.01)
                assert any(f[1] is not None and f[1].pattern == "main thread's own filter" for f in warnings.filters)
                warnings.filters[:] = [f for f in warnings.filters if not (f[1] is not None and
                                                                          f[1].pattern == "main thread's own filter")]
    finally:
        stop.set()
        for w in workers:
            w.join()
