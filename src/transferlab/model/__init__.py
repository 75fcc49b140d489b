"""The saved model: a directory of JSON and safetensors that loads without pickles and without training code.

Layout::

    config.json        format version, task, backbone and preprocessing, strategy name and params, versions
    labels.json        class names, in output order
    head.json / head.safetensors      the classifier (or model.safetensors for a whole fine-tuned network;
                       member0/, member1/, ... with one head each for an ensemble)
    metrics.json       evaluation-split metrics (accuracy, macro_f1, train_seconds, ...)
    data_report.json   what was read and what was skipped, with reasons
    history.json       per-epoch training history, for strategies that train a network
    confusion_matrix.png, mistakes.json, mistakes.png

A directory is written under a temporary name and renamed into place, so it is never left half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab._version import __version__
from transferlab.errors import UserError
from transferlab.model.loaders import LOADERS, load_predictor
from transferlab.tasks import Task

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"transferlab": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "torch", "timm", "onnxruntime", "scikit-learn", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``target`` to write into; when the block ends without error it replaces
    ``target`` by renames only (an existing ``target`` is moved aside, then removed), so ``target`` is never
    half-written. On any error, Ctrl-C included, the temporary folder is removed and ``target`` is untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_save_target(target: Path) -> None:
    """Refuse a model folder to save into that holds something else: a file, or a folder of other files (saving
    replaces the whole folder). :meth:`Model.save` checks; ``train`` checks first too, before any work."""
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: a file is in the way (a model is a folder); choose another --out")
    if target.exists() and not (target / "config.json").exists() and any(target.iterdir()):
        raise UserError(f"{target}: folder exists and is not a transferlab model; choose another --out")


Inputs = Sequence[object] | object
"""What prediction takes: a list of inputs (or one input). For an image model each is a file path (str or Path), the
bytes of an image file, a PIL image or a uint8 H x W x 3 array, mixed freely (a 4-D uint8 array is a batch of
images); for a text model each is a string or a dict-like row with the text (and side columns)."""


def as_input_list(inputs: Inputs) -> list[object]:
    """``inputs`` as a list of single inputs: one path, text, bytes, image or row becomes a list of one (a string
    must never be taken for a sequence of characters)."""
    if isinstance(inputs, list | tuple):
        return list(inputs)
    if isinstance(inputs, str | bytes | bytearray | memoryview | os.PathLike | Mapping):
        return [inputs]
    if isinstance(inputs, np.ndarray):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    from transferlab.data.images import is_in_memory

    return [inputs] if is_in_memory(inputs) else list(inputs)  # type: ignore[call-overload]


class Model:
    """A trained classifier: predict from images (paths, bytes, PIL images, arrays) or texts; save and load as a
    directory."""

    def __init__(self, config: dict[str, Any], classes: list[str], predictor: Any,
                 metrics: dict[str, Any] | None = None) -> None:
        self.config = config
        self.classes = list(classes)
        self.predictor = predictor
        self.metrics = metrics or {}
        self.directory: Path | None = None  # the folder it was loaded from, for messages

    @property
    def task(self) -> str:
        """The modality of the inputs: ``image`` or ``text``."""
        return self.config.get("task", "image")

    @property
    def target(self) -> Task:
        """What the model predicts (:class:`~transferlab.tasks.Task`): its kind, the target it was trained on and
        the classes; models saved before targets were recorded are single-label classifiers."""
        return Task.from_dict(self.config.get("target"), self.classes)

    # --- prediction --------------------------------------------------------------------------------------------
    def predict_proba(self, inputs: Inputs, write_cache: bool = False) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Probabilities for the usable inputs, their indices, and reasons for the unusable ones.

        The feature cache is read (vectors of images and texts seen before are not recomputed) but not written: a
        model serving requests must not grow the cache with every new input. ``write_cache=True`` stores the new
        vectors as training does, for a labelled set that will be evaluated again. Probabilities that do not match
        the class names one for one (an edited or mixed-up labels.json) are an error, not mislabelled answers."""
        with runtime.read_only_cache(not write_cache):
            proba, ok, failures = self.predictor.predict_proba(as_input_list(inputs))
        if ok and np.ndim(proba) == 2 and np.shape(proba)[1] != len(self.classes):
            raise UserError(f"{self.directory or 'model'}: damaged model folder: it gives {np.shape(proba)[1]} "
                            f"class probabilities but labels.json lists {len(self.classes)} classes")
        return proba, ok, failures

    def predict(self, inputs: Inputs, top_k: int = 1, write_cache: bool = False) -> list[dict[str, Any]]:
        """One JSON-serialisable entry per input, in order: the input (a path or text as given, a short description
        of bytes, images and arrays), label and top-k probabilities, or the error that stopped that input."""
        from transferlab.data.images import describe_input

        items = as_input_list(inputs)
        proba, ok, failures = self.predict_proba(items, write_cache)
        k = max(1, min(top_k, len(self.classes)))
        out: list[dict[str, Any]] = []
        row_of = {i: r for r, i in enumerate(ok)}
        for i, item in enumerate(items):
            shown = describe_input(item)
            if i in failures:
                out.append({"input": shown, "error": failures[i]})
                continue
            p = proba[row_of[i]]
            top = np.argsort(-p)[:k]
            out.append({"input": shown, "label": self.classes[int(top[0])],
                        "probabilities": {self.classes[int(j)]: float(p[j]) for j in top}})
        return out

    # --- saving and loading --------------------------------------------------------------------------------------
    @classmethod
    def from_strategy(cls, strategy: Any, task: str, preprocessing: dict[str, Any] | None = None,
                      extra: dict[str, Any] | None = None) -> tuple[Model, Callable[[Path], None]]:
        """A config for a fitted strategy, and a writer that puts its weights into a directory."""
        config = {
            "format_version": FORMAT_VERSION,
            "task": task,
            "strategy": {"name": strategy.name, "params": strategy.get_params()},
            "preprocessing": preprocessing or {},
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **(extra or {}),
        }

        def write(directory: Path) -> None:
            config["weights"] = strategy.save_weights(directory)

        return cls(config, strategy.classes_, None), write

    def save(self, directory: str | os.PathLike[str], write_weights: Callable[[Path], None] | None = None,
             extra_files: Callable[[Path], None] | None = None) -> Path:
        """Write the directory atomically (temporary sibling, then rename over any earlier model there)."""
        target = Path(directory)
        check_save_target(target)
        with atomic_dir(target) as tmp:
            if write_weights is not None:
                write_weights(tmp)
            elif "weights" not in self.config:
                raise ValueError("nothing to save: no weights")
            (tmp / "config.json").write_text(json.dumps(self.config, indent=2, default=str))
            (tmp / "labels.json").write_text(json.dumps(self.classes, indent=2))
            if self.metrics:
                (tmp / "metrics.json").write_text(json.dumps(self.metrics, indent=2))
            if extra_files is not None:
                extra_files(tmp)
        self.predictor = self.predictor or load_predictor(target, self.config)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Model:
        d = Path(directory)
        cfg_path = d / "config.json"
        if not cfg_path.exists():
            raise UserError(f"{d}: not a transferlab model folder (no config.json)")
        try:
            config = json.loads(cfg_path.read_text())
            classes = json.loads((d / "labels.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{d}: damaged model folder ({exc})") from None
        if not isinstance(config, dict) or not isinstance(config.get("weights", {}), dict):
            raise UserError(f"{d}: damaged model folder (config.json does not hold a model's settings)")
        if not isinstance(classes, list) or not all(isinstance(c, str | int | float) for c in classes):
            raise UserError(f"{d}: damaged model folder (labels.json is not a list of class names)")
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise UserError(f"{d}: saved by a newer transferlab (format {config['format_version']}); upgrade")
        kind = config.get("weights", {}).get("kind")
        if kind not in LOADERS:
            raise UserError(f"{d}: unknown weights kind {kind!r}; saved by a newer transferlab, or damaged")
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        model = cls(config, classes, load_predictor(d, config), metrics)
        model.directory = d
        return model


def load_model(directory: str | os.PathLike[str]) -> Model:
    """The model saved in ``directory`` (by ``transferlab train --out`` or :func:`transferlab.train`)."""
    return Model.load(directory)


@lru_cache(maxsize=4)
def _loaded(directory: str, stamp: int) -> Model:  # the stamp (config.json mtime) only keys the cache
    return Model.load(directory)


def predict(model: Model | str | os.PathLike[str], inputs: Inputs, top_k: int = 1) -> list[dict[str, Any]]:
    """:meth:`Model.predict` of a model or of the model saved in a folder. A folder's model is loaded once and kept
    (a few of them) while its ``config.json`` is unchanged, so a server may call this per request."""
    if not isinstance(model, Model):
        d = Path(model).resolve()
        try:
            stamp = (d / "config.json").stat().st_mtime_ns
        except OSError:
            stamp = -1  # Model.load says what is wrong
        model = Model.load(d) if stamp < 0 else _loaded(str(d), stamp)
    return model.predict(inputs, top_k=top_k)
