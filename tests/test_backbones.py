"""The pretrained weights are real, the ONNX features equal PyTorch's, and our EfficientNet-Lite equals timm's."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.backbones import get_backbone, list_backbones
from transferlab.features.images import FeatureExtractor

skimage_data = pytest.importorskip("skimage.data")
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
NAMES = [s.name for s in list_backbones("image")]


def _imagenet_top5(name: str, image: np.ndarray) -> list[int]:
    spec = get_backbone(name)
    net = spec.build(pretrained=True)
    x = torch.from_numpy(spec.preprocessing(Image.fromarray(image))[None])
    with torch.inference_mode():
        _, logits, _ = net.forward_all(x)
    return logits[0].topk(5).indices.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_real_imagenet_weights(name: str) -> None:
    cat_top5 = _imagenet_top5(name, skimage_data.chelsea())
    coffee_top5 = _imagenet_top5(name, skimage_data.coffee())
    classes = json.loads(resources.files("transferlab").joinpath("resources/imagenet_classes.json").read_text())
    assert cat_top5[0] in CATS, f"{name}: top-1 on the cat is {classes[cat_top5[0]]}"
    assert ESPRESSO in coffee_top5, f"{name}: espresso not in top-5 {[classes[i] for i in coffee_top5]}"


def test_random_init_is_not_pretrained() -> None:
    spec = get_backbone("efficientnet_lite0")
    a, b = spec.build(pretrained=True), spec.build(pretrained=False)
    assert not torch.equal(a.stages[3][0].conv_pw.weight, b.stages[3][0].conv_pw.weight)


@pytest.mark.parametrize("name", NAMES)
def test_onnx_features_equal_pytorch(name: str, cache_dir) -> None:
    from transferlab.cache import FeatureCache

    spec = get_backbone(name)
    rng = np.random.default_rng(0)
    images = [skimage_data.chelsea(), skimage_data.coffee(), skimage_data.astronaut()]
    batch = np.stack([spec.preprocessing(Image.fromarray(im)) for im in images])
    batch = np.concatenate([batch, rng.normal(size=batch.shape).astype(np.float32)])
    cache = FeatureCache(cache_dir)
    onnx_out = FeatureExtractor(name, cache=cache, engine="onnx", progress=False).run_arrays(batch)
    torch_out = FeatureExtractor(name, cache=cache, engine="torch", progress=False).run_arrays(batch)
    for key in ("features", "logits", "mid"):
        assert onnx_out[key].shape == torch_out[key].shape
        assert np.abs(onnx_out[key] - torch_out[key]).max() < 1e-4, key
    assert onnx_out["features"].shape[1] == spec.feature_dim
    assert onnx_out["mid"].shape[1] == spec.mid_feature_dim
    # "same" padding is folded into the convolutions: no Pad node is left to break ONNX Runtime's NCHWc layout
    import onnx

    from transferlab.features.images import onnx_model_path

    graph = onnx.load(str(onnx_model_path(spec, spec.preprocessing, cache.directory))).graph
    assert [n.op_type for n in graph.node].count("Pad") == 0


def test_layer_groups_cover_every_parameter() -> None:
    for name in NAMES:
        net = get_backbone(name).build(pretrained=False)
        grouped = {id(p) for group in net.layer_groups() for m in group for p in m.parameters()}
        imagenet_head = {id(p) for p in net.parameters()} - grouped
        n_head = sum(p.numel() for p in net.parameters() if id(p) in imagenet_head)
        # everything but the 1000-way ImageNet classifier belongs to a layer group
        assert n_head == 1000 * (net.feature_dim + 1), name
        assert len(net.layer_groups()) >= 4


def test_efficientnet_lite_equals_timm() -> None:
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm not installed (a dev dependency)")
    from transferlab._torch import import_timm
    from transferlab.backbones import efficientnet_lite

    timm = import_timm()
    for name in ("efficientnet_lite0", "efficientnet_lite2"):
        ours = get_backbone(name).build()
        ref = timm.create_model("tf_" + name, pretrained=False)
        efficientnet_lite._load_weights(ref, efficientnet_lite.weights_path(name))
        ref.eval()
        size = get_backbone(name).preprocessing.size
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            assert torch.allclose(ours.forward_all(x)[1], ref(x), atol=1e-5)


def test_thread_count_follows_the_environment(monkeypatch):
    """A job started with TRANSFERLAB_THREADS or OMP_NUM_THREADS uses that many threads (torch and ONNX Runtime),
    so two jobs on a shared machine do not oversubscribe its cores."""
    import os

    from transferlab._torch import torch_thread_count

    monkeypatch.delenv("TRANSFERLAB_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert torch_thread_count() == (os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert torch_thread_count() == 1
    monkeypatch.setenv("TRANSFERLAB_THREADS", "3")
    assert torch_thread_count() == 3
    monkeypatch.setenv("TRANSFERLAB_THREADS", "zero")
    assert torch_thread_count() == 1


def test_a_command_under_transferlab_threads_caps_the_blas_pools_too():
    """TRANSFERLAB_THREADS also caps numpy's and scipy's BLAS (the scikit-learn fits), not only torch: on a shared
    machine two BLAS threads per job thrash (a small logistic regression 28x slower with the other core busy)."""
    import json
    import os
    import subprocess
    import sys

    script = ("import json; from transferlab.cli import main; main(['strategies']); "
              "from threadpoolctl import threadpool_info; "
              "print(json.dumps([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    capped = subprocess.run([sys.executable, "-c", script], env={**env, "TRANSFERLAB_THREADS": "1"},
                            capture_output=True, text=True, timeout=120)
    pools = json.loads(capped.stdout.strip().splitlines()[-1])
    assert len(pools) >= 2 and set(pools) == {1}, capped.stderr  # numpy's and scipy's OpenBLAS, both capped
    if (os.cpu_count() or 1) > 1:  # without the variable the pools keep every core
        free = subprocess.run([sys.executable, "-c", script], env={k: v for k, v in env.items()
                                                                    if k != "TRANSFERLAB_THREADS"},
                              capture_output=True, text=True, timeout=120)
        assert max(json.loads(free.stdout.strip().splitlines()[-1])) > 1, free.stderr


def test_device_follows_the_environment_and_moves_nested_tensors(monkeypatch):
    import torch

    from transferlab._torch import to_device, torch_device

    monkeypatch.setenv("TRANSFERLAB_DEVICE", "meta")
    assert torch_device() == "meta"
    monkeypatch.setenv("TRANSFERLAB_DEVICE", "auto")
    assert torch_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    batch = ((torch.zeros(2, 3), torch.ones(2, dtype=torch.long), None), {"y": torch.zeros(2)}, [torch.zeros(1)], 5)
    moved = to_device(batch, "meta")
    assert moved[0][0].device.type == moved[0][1].device.type == moved[1]["y"].device.type == "meta"
    assert moved[0][2] is None and moved[3] == 5 and isinstance(moved[2], list) and moved[2][0].device.type == "meta"
    assert moved[0][1].dtype == torch.long and batch[0][0].device.type == "cpu"  # the input is not changed


@pytest.mark.parametrize("name", ["efficientnet_lite0", "squeezenet1_1"])
def test_normalize_batch_is_the_per_pixel_formula_in_nchw(name: str) -> None:
    """The layout trick (transpose the uint8 pixels, then per-plane constants) changes no value: each element is
    x * (1 / (255 std)) - mean / std in float32 (Lite's style), or the BGR pixel minus the mean (SqueezeNet's Caffe)."""
    prep = get_backbone(name).preprocessing
    pixels = np.random.default_rng(0).integers(0, 256, (3, prep.size, prep.size, 3), dtype=np.uint8)
    got = prep.normalize_batch(pixels)
    assert got.shape == (3, 3, prep.size, prep.size) and got.dtype == np.float32 and got.flags.c_contiguous
    x = pixels.astype(np.float32)
    mean = np.asarray(prep.mean, np.float32)
    if prep.style == "caffe":
        expected = x[..., ::-1] - mean
    else:
        std = np.asarray(prep.std, np.float32)
        expected = x * (np.float32(1.0) / (np.float32(255.0) * std)) - mean / std
    np.testing.assert_array_equal(got, expected.transpose(0, 3, 1, 2))
