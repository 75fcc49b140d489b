"""Loaders for saved image models, one per ``weights.kind`` (the table is :data:`transferlab.model.loaders.LOADERS`).

Every predictor takes image inputs of any kind the data layer decodes (paths, file bytes, PIL images, uint8 arrays,
mixed) and returns ``(probabilities of the usable inputs, their indices, {index: reason})``: one bad input is a
failure of its own, never an exception for the batch.

* ``features+head``: frozen backbone features through the feature cache (read-only while predicting), then a head.
* ``ensemble``: several of those, probabilities averaged.
* ``network``: a whole fine-tuned network, rebuilt from the backbone registry with random weights
  (``pretrained=False``: no weight package is read), then ``model.safetensors`` loaded into it; inputs get the
  evaluation transform stored in the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.heads import Head
from transferlab.preprocessing import Preprocessing

Prediction = tuple[np.ndarray, list[int], dict[int, str]]


class FeaturesHeadPredictor:
    """Frozen backbone features (through the feature cache) followed by a saved head."""

    def __init__(self, backbone: str, feature_outputs: list[str], head: Any, input_size: int | None = None) -> None:
        self.backbone = backbone
        self.feature_outputs = feature_outputs
        self.head = head
        self.input_size = input_size

    def predict_proba(self, inputs: Sequence[object]) -> Prediction:
        from transferlab.features.images import FeatureExtractor

        extractor = FeatureExtractor(self.backbone, cache=runtime.get_cache(), input_size=self.input_size,
                                     progress=runtime.show_progress())
        result = extractor.extract(list(inputs), outputs=self.feature_outputs, desc="predicting")
        if not result.ok:
            return np.zeros((0, 0)), [], result.failures
        x = np.concatenate([result.arrays[o] for o in self.feature_outputs], axis=1)
        return self.head.predict_proba(x), result.ok, result.failures


class EnsemblePredictor:
    """Several predictors on the same inputs, their probabilities averaged over the inputs all of them could use."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def predict_proba(self, inputs: Sequence[object]) -> Prediction:
        results = [m.predict_proba(inputs) for m in self.members]
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


class NetworkPredictor:
    """A whole classifier network and its evaluation transform."""

    def __init__(self, net: Any, preprocessing: Preprocessing, batch_size: int = 32) -> None:
        self.net = net
        self.preprocessing = preprocessing
        self.batch_size = batch_size

    def predict_proba(self, inputs: Sequence[object]) -> Prediction:
        from transferlab.nn.image import predict_images

        return predict_images(self.net, self.preprocessing, list(inputs), self.batch_size)


def load_features_head(directory: Path, config: dict[str, Any]) -> FeaturesHeadPredictor:
    w = config["weights"]
    return FeaturesHeadPredictor(w["backbone"], w["feature_outputs"], Head.load(directory),
                                 config.get("preprocessing", {}).get("size"))


def load_ensemble(directory: Path, config: dict[str, Any]) -> EnsemblePredictor:
    return EnsemblePredictor([FeaturesHeadPredictor(m["backbone"], m["feature_outputs"],
                                                    Head.load(directory / m["folder"]))
                              for m in config["weights"]["members"]])


def load_network(directory: Path, config: dict[str, Any]) -> NetworkPredictor:
    from safetensors.torch import load_file

    from transferlab.nn.image import build_net

    w = config["weights"]
    net = build_net(w["backbone"], int(w["n_classes"]), float(w["dropout"]), pretrained=False)
    net.freeze_bn = bool(w.get("freeze_bn", True))
    net.load_state_dict(load_file(str(Path(directory) / w["file"])))
    net.eval()
    return NetworkPredictor(net, Preprocessing.from_dict(w["preprocessing"]))
