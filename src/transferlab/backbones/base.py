"""The backbone contract: what every registered pretrained network answers, whatever its modality.

:class:`Backbone` is the common part (name, family, modality, feature width, size, weights package, what it is good
for) that the ``models`` listing, the rank and compare workflows and :func:`transferlab.features.extract_features`
rely on. :class:`BackboneSpec` adds what an image network needs (preprocessing, a factory of a
:class:`~.net.BackboneNet`); :class:`TextEncoderSpec` adds a factory of a frozen text encoder. Both are plain data
importable without torch, so a warm-cache run never pays for importing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.preprocessing import Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    from transferlab.backbones.net import BackboneNet

WeightFiles = Callable[[], Sequence[str | os.PathLike[str]]]


class Backbone:
    """The questions every registered backbone answers; subclasses are frozen dataclasses holding these fields.

    Kept a plain class (not a dataclass) so that :class:`BackboneSpec`'s fields, their order and its constructor
    stay what they were before text encoders joined the registry."""

    COMMON_FIELDS: ClassVar[tuple[str, ...]] = ("name", "family", "modality", "feature_dim", "num_params",
                                                "weights_package", "description")
    name: str
    family: str
    modality: str
    feature_dim: int
    num_params: int
    weights_package: str
    description: str
    weight_files: WeightFiles | None

    how_to_add = ""  # an optional backbone says here how to install it (``models`` prints it)

    def is_installed(self) -> bool:
        """Whether the weights are there (packaged backbones always are; mpnet is optional)."""
        return True

    def common_info(self) -> dict[str, Any]:
        """The fields every modality shares, with the parameter count in millions (as ``models`` prints it)."""
        return {"name": self.name, "family": self.family, "modality": self.modality,
                "params_millions": round(self.num_params / 1e6, 2), "feature_dim": self.feature_dim,
                "weights_package": self.weights_package, "description": self.description}

    def size_mb(self) -> float | None:
        """Megabytes of the weight files this backbone loads (None when unknown or not installed): what a
        deployment has to ship besides transferlab."""
        if self.weight_files is None:
            return None
        try:
            return round(sum(Path(p).stat().st_size for p in self.weight_files()) / 1e6, 1)
        except (OSError, ImportError):
            return None


@dataclass(frozen=True)
class BackboneSpec(Backbone):
    """A pretrained image network: preprocessing, feature widths, ImageNet accuracy and a factory."""

    name: str
    family: str
    modality: str
    preprocessing: Preprocessing
    feature_dim: int
    mid_feature_dim: int
    num_params: int
    imagenet_top1: float | None
    weights_package: str
    factory: Callable[[bool], Any] = field(repr=False, compare=False)
    description: str = ""
    weights_version: str = "1"
    weight_files: WeightFiles | None = field(default=None, repr=False, compare=False)

    def build(self, pretrained: bool = True) -> BackboneNet:
        """Create the network; ``pretrained=False`` gives the same architecture randomly initialised."""
        return self.factory(pretrained)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "modality": self.modality,
            "params_millions": round(self.num_params / 1e6, 2),
            "feature_dim": self.feature_dim,
            "mid_feature_dim": self.mid_feature_dim,
            "input_size": self.preprocessing.size,
            "imagenet_top1": self.imagenet_top1,
            "weights_package": self.weights_package,
            "description": self.description,
        }


@dataclass(frozen=True)
class TextEncoderSpec(Backbone):
    """A frozen text encoder: texts in, one fixed-width vector per text out.

    ``factory(max_length, model_path)`` returns an object with ``embed(texts) -> (n, feature_dim) float32``
    (:class:`~transferlab.backbones.minilm.SentenceEncoder`, :class:`~transferlab.backbones.glove.GloveEncoder`).
    ``kind`` says what a user can do with it beyond embedding: ``transformer`` bodies can be fine-tuned
    (text_finetune, text_fewshot), ``word_vectors`` feed the word networks (text_embedding_cnn/rnn).
    ``path`` is the folder of a backbone written by ``transferlab pretrain-text`` (None for packaged encoders)."""

    name: str
    family: str
    feature_dim: int
    num_params: int
    weights_package: str
    factory: Callable[..., Any] = field(repr=False, compare=False)
    description: str = ""
    kind: str = "transformer"
    modality: str = "text"
    path: str | None = None
    weight_files: WeightFiles | None = field(default=None, repr=False, compare=False)
    model_id: str = ""  # what saved models record as their ``encoder`` (never changes); "" = the name
    installed: Callable[[], bool] | None = field(default=None, repr=False, compare=False)  # None: always
    how_to_add: str = ""  # said by ``models`` and by errors when ``installed()`` is false
    body_folder: Callable[[], str] | None = field(default=None, repr=False, compare=False)  # a packaged transformer

    def is_installed(self) -> bool:
        return self.installed is None or bool(self.installed())

    def encoder(self, max_length: int = 256, model_path: str | os.PathLike[str] | None = None) -> Any:
        """The frozen encoder; ``model_path`` swaps in another body of the same kind (an adapted MiniLM)."""
        return self.factory(max_length=max_length, model_path=model_path)

    def info(self) -> dict[str, Any]:
        return {**self.common_info(), "kind": self.kind, "input_size": None, "imagenet_top1": None,
                "path": self.path}
