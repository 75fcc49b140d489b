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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import __version__, runtime
from transferlab.errors import UserError

FORMAT_VERSION = 1
_PREDICTORS: dict[str, Callable[[Path, dict[str, Any]], Any]] = {}


def register_predictor(kind: str) -> Callable:
    """Register a loader for a ``weights.kind`` (a predictor maps inputs to probabilities)."""

    def wrap(fn: Callable[[Path, dict[str, Any]], Any]) -> Callable[[Path, dict[str, Any]], Any]:
        _PREDICTORS[kind] = fn
        return fn

    return wrap


class FeaturesHeadPredictor:
    """Frozen backbone features (through the feature cache) followed by a saved head."""

    def __init__(self, backbone: str, feature_outputs: list[str], head: Any, input_size: int | None = None) -> None:
        self.backbone = backbone
        self.feature_outputs = feature_outputs
        self.head = head
        self.input_size = input_size

    def predict_proba(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        from transferlab.features.images import FeatureExtractor

        extractor = FeatureExtractor(self.backbone, cache=runtime.get_cache(), input_size=self.input_size,
                                     progress=runtime.show_progress())
        result = extractor.extract(list(paths), outputs=self.feature_outputs, desc="predicting")
        if not result.ok:
            return np.zeros((0, 0)), [], result.failures
        x = np.concatenate([result.arrays[o] for o in self.feature_outputs], axis=1)
        return self.head.predict_proba(x), result.ok, result.failures


@register_predictor("features+head")
def _load_features_head(directory: Path, config: dict[str, Any]) -> FeaturesHeadPredictor:
    from transferlab.heads import Head

    w = config["weights"]
    return FeaturesHeadPredictor(w["backbone"], w["feature_outputs"], Head.load(directory),
                                 config.get("preprocessing", {}).get("size"))


class EnsemblePredictor:
    """Several predictors on the same inputs, their probabilities averaged over the inputs all of them could use."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def predict_proba(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        results = [m.predict_proba(paths) for m in self.members]
        failures: dict[int, str] = {}
        for _, _, fails in results:
            failures.update(fails)
        usable = [set(member_ok) for _, member_ok, _ in results]
        ok = [i for i in results[0][1] if i not in failures and all(i in u for u in usable)]
        if not ok:
            return np.zeros((0, 0)), [], failures
        rows = []
        for proba, member_ok, _ in results:
            where = {i: r for r, i in enumerate(member_ok)}
            rows.append(proba[[where[i] for i in ok]])
        return np.mean(rows, axis=0), ok, failures


@register_predictor("ensemble")
def _load_ensemble(directory: Path, config: dict[str, Any]) -> EnsemblePredictor:
    from transferlab.heads import Head

    return EnsemblePredictor([FeaturesHeadPredictor(m["backbone"], m["feature_outputs"],
                                                    Head.load(directory / m["folder"]))
                              for m in config["weights"]["members"]])


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


class Model:
    """A trained classifier: predict from file paths (images) or texts; save and load as a directory."""

    def __init__(self, config: dict[str, Any], classes: list[str], predictor: Any,
                 metrics: dict[str, Any] | None = None) -> None:
        self.config = config
        self.classes = list(classes)
        self.predictor = predictor
        self.metrics = metrics or {}

    @property
    def task(self) -> str:
        return self.config.get("task", "image")

    # --- prediction --------------------------------------------------------------------------------------------
    def predict_proba(self, inputs: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Probabilities for the usable inputs, their indices, and reasons for the unusable ones."""
        return self.predictor.predict_proba(list(inputs))

    def predict(self, inputs: Sequence[str], top_k: int = 1) -> list[dict[str, Any]]:
        """One entry per input, in order: label and top-k probabilities, or the error that stopped it."""
        proba, ok, failures = self.predict_proba(inputs)
        k = max(1, min(top_k, len(self.classes)))
        out: list[dict[str, Any]] = []
        row_of = {i: r for r, i in enumerate(ok)}
        for i, item in enumerate(inputs):
            if i in failures:
                out.append({"input": item, "error": failures[i]})
                continue
            p = proba[row_of[i]]
            top = np.argsort(-p)[:k]
            out.append({"input": item, "label": self.classes[int(top[0])],
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
        if target.exists() and not (target / "config.json").exists() and any(target.iterdir()):
            raise UserError(f"{target}: folder exists and is not a transferlab model; choose another --out")
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
        if self.config["weights"]["kind"] not in _PREDICTORS:
            _import_predictors()
        self.predictor = self.predictor or _PREDICTORS[self.config["weights"]["kind"]](target, self.config)
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
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise UserError(f"{d}: saved by a newer transferlab (format {config['format_version']}); upgrade")
        kind = config.get("weights", {}).get("kind")
        if kind not in _PREDICTORS:
            _import_predictors()
        if kind not in _PREDICTORS:
            raise UserError(f"{d}: unknown weights kind {kind!r}")
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        return cls(config, classes, _PREDICTORS[kind](d, config), metrics)


def _import_predictors() -> None:
    """Import modules that register further predictors (fine-tuned networks, text models)."""
    import importlib

    for module in ("transferlab.model.network_loaders", "transferlab.model.text_loaders"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            pass
