"""Import torch, torchvision and timm safely on a CPU-only machine.

torchvision 0.28.0 on PyPI is a CUDA build; next to the CPU build of torch its import fails with
``operator torchvision::nms does not exist``. Defining the two op schemas it registers fake kernels for makes the
pure-Python parts (models, transforms, and all of timm) importable. Its C++ ops stay unavailable, so images are
decoded with Pillow everywhere in transferlab.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
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


def cap_blas_threads() -> int | None:
    """Cap numpy's, scipy's and scikit-learn's BLAS (and OpenMP) pools at ``TRANSFERLAB_THREADS`` when it is set
    (``OMP_NUM_THREADS`` is read by the BLAS libraries themselves); the number applied, or None. Without it a job
    asked to share the machine still ran every linear-model fit on all cores: measured with the other core busy, one
    96x1280 logistic regression took 0.81 s on 2 BLAS threads and 0.029 s on 1."""
    import os

    value = os.environ.get("TRANSFERLAB_THREADS", "").strip()
    if not (value.isdigit() and int(value) > 0):
        return None
    import numpy  # noqa: F401 - threadpoolctl caps the BLAS libraries already loaded: numpy's and scipy's copies
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(value))  # BLAS and OpenMP pools, process-wide, for the rest of the command
    return int(value)


def set_torch_threads() -> None:
    """Use every core for intra-op work (the machines here have two), or what the environment asks for."""
    import torch

    n = torch_thread_count()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Intra-op threads set to ``n`` inside the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def torch_device() -> str:
    """Where networks train and run: ``TRANSFERLAB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``...), else ``cuda`` when
    torch sees a GPU, else ``cpu``. The machines here have no GPU: everything is built for the CPU, and a lent GPU
    only makes the same loop faster."""
    import os

    import torch

    wanted = os.environ.get("TRANSFERLAB_DEVICE", "").strip().lower()
    if wanted and wanted != "auto":
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16() -> bool:
    """Whether readers answer, and by default train (``qa_reader``'s ``bf16=None``), in bfloat16:
    ``TRANSFERLAB_BF16`` (``1``/``0``), else whether the CPU computes bfloat16 products natively: Intel AMX tiles or
    AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake). With AMX the reader's matrix products run ~2x faster in bf16
    (the Xeon here: 73 vs 40 questions/s, 398 of 400 answers identical). On the 2-core AMD EPYC with AVX512-BF16 here:
    a 768x3072 linear layer forward 3.0x and forward+backward 2.2x faster, a training step of mpnet's whole body (32
    sst2 sentences) 2.64 vs 6.56 s, sentence embeddings 453 vs 325/s (MiniLM) and 70 vs 43/s (mpnet) against ONNX
    Runtime float32. Without either (AVX2 only) bf16 is emulated and ~10x *slower*, so the answer there is False."""
    return bf16_units() is not None


def bf16_units() -> str | None:
    """The CPU's native bfloat16 products: ``"amx"`` (Intel AMX tiles, also what ``TRANSFERLAB_BF16=1`` claims),
    ``"avx512_bf16"`` (AVX512-BF16 instructions: bf16 ~2.5x faster than float32 here, but ~2.5x slower than AMX), or
    None (``TRANSFERLAB_BF16=0``, or neither)."""
    import os

    wanted = os.environ.get("TRANSFERLAB_BF16", "").strip().lower()
    if wanted in ("0", "1", "true", "false", "yes", "no"):
        return "amx" if wanted in ("1", "true", "yes") else None
    info = _cpuinfo()
    if info is not None and not {"amx_tile", "amx_bf16", "avx512_bf16"} & set(info.split()):
        return None  # the kernel lists neither: no need to import torch to ask
    import torch

    if torch_device() != "cpu":
        return None
    try:
        if torch.cpu._is_amx_tile_supported():
            return "amx"
        return "avx512_bf16" if torch.cpu._is_avx512_bf16_supported() else None
    except (AttributeError, RuntimeError):  # an older torch: no way to ask, stay in float32
        return None


@lru_cache(maxsize=1)
def _cpuinfo() -> str | None:
    """The text of /proc/cpuinfo (read once), None where there is none (not Linux)."""
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.read_text(errors="replace") if cpuinfo.exists() else None


def cpu_description() -> str:
    """The CPU's model name, family and model numbers (a virtual machine may name it only "AMD EPYC", which covers
    CPUs 3x apart in speed: family 23 model 1 is Zen 1, family 25 model 17 Zen 4) and its bf16 instructions: what
    keeps speeds measured on different machines apart (``transferlab models --measure``, the benchmarks' rows)."""
    import platform
    import re

    info = _cpuinfo() or ""
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    family, number = re.search(r"^cpu family\s*:\s*(\d+)", info, re.M), re.search(r"^model\s*:\s*(\d+)", info, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    units = [u for u in ("amx_bf16", "avx512_bf16") if flags and u in flags.group(1).split()] or ["no bf16 units"]
    ids = [f"family {family.group(1)} model {number.group(1)}"] if family and number else []
    name = model.group(1).strip() if model else (platform.processor() or platform.machine() or "unknown CPU")
    return f"{name} ({', '.join(ids + units)})"


def bf16_linears(net: object) -> object:
    """Cast ``net``'s linear layers (its matrix products) to bfloat16 in place, for answering under
    ``torch.autocast("cpu", torch.bfloat16)``: the weights are then cast once, not at every call (the one-question
    latency of the reader: 27 vs 37 ms). Embeddings and layer norms stay float32."""
    import torch

    for module in net.modules():  # type: ignore[attr-defined]
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)
    return net


def to_device(value: object, device: str) -> object:
    """Tensors (also inside tuples, lists and dicts) moved to ``device``; anything else as it is."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, tuple | list):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value
