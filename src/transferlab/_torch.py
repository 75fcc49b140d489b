"""Import torch, torchvision and timm safely on a CPU-only machine.

torchvision 0.28.0 on PyPI is a CUDA build; next to the CPU build of torch its import fails with
``operator torchvision::nms does not exist``. Defining the two op schemas it registers fake kernels for makes the
pure-Python parts (models, transforms, and all of timm) importable. Its C++ ops stay unavailable, so images are
decoded with Pillow everywhere in transferlab.
"""

from __future__ import annotations

import sys
from types import ModuleType

_fixed = False


def import_torchvision() -> ModuleType:
    global _fixed
    import torch

    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms does not exist" not in str(exc) or _fixed:
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        # keep the library object alive for the life of the process
        globals()["_torchvision_fragment"] = lib
        _fixed = True
        import torchvision
    return torchvision


def import_timm() -> ModuleType:
    import_torchvision()
    import timm

    return timm


def torch_thread_count() -> int:
    """Threads for intra-op work: ``TRANSFERLAB_THREADS``, else ``OMP_NUM_THREADS``, else every core. Setting one
    of them keeps several jobs on a shared machine from oversubscribing its cores."""
    import os

    for var in ("TRANSFERLAB_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def set_torch_threads() -> None:
    """Use every core for intra-op work (the machines here have two), or what the environment asks for."""
    import torch

    n = torch_thread_count()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
