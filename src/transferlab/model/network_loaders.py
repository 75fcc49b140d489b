"""Predictors for saved models whose weights are a whole network (``weights.kind == "network"``).

The network is rebuilt from the backbone registry with random weights (``pretrained=False``: no weight package
is read), then ``model.safetensors`` is loaded into it; inputs get the evaluation transform stored in the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.model import register_predictor
from transferlab.preprocessing import Preprocessing


class NetworkPredictor:
    def __init__(self, net: Any, preprocessing: Preprocessing, batch_size: int = 32) -> None:
        self.net = net
        self.preprocessing = preprocessing
        self.batch_size = batch_size

    def predict_proba(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        from transferlab.strategies._network import predict_paths

        return predict_paths(self.net, self.preprocessing, list(paths), self.batch_size)


@register_predictor("network")
def load_network(directory: Path, config: dict[str, Any]) -> NetworkPredictor:
    from safetensors.torch import load_file

    from transferlab.strategies._network import build_net

    w = config["weights"]
    net = build_net(w["backbone"], int(w["n_classes"]), float(w["dropout"]), pretrained=False)
    net.freeze_bn = bool(w.get("freeze_bn", True))
    net.load_state_dict(load_file(str(Path(directory) / w["file"])))
    net.eval()
    return NetworkPredictor(net, Preprocessing.from_dict(w["preprocessing"]))
