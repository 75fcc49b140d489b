"""Backbone folders written by ``transferlab pretrain-text``: a folder with a manifest is a backbone like a
registered name, so ``get_backbone(folder)`` answers for it and strategies take it as ``--backbone DIR``.

The manifest ``transferlab_backbone.json`` says what the folder holds (``kind``): ``word_vectors`` (for the word
networks, or mean-pooled like GloVe) or ``transformer`` (an MLM-adapted MiniLM body, for text_finetune,
text_headless, text_fewshot). These helpers live here, below the strategies and the workflows, so that the
strategies that read such folders never import the workflow that writes them.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.backbones.base import TextEncoderSpec
from transferlab.errors import UserError

MANIFEST = "transferlab_backbone.json"
KINDS = ("word_vectors", "transformer")


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a folder written by ``pretrain-text``; a clear error for anything else."""
    d = Path(folder)
    if not d.is_dir():
        raise UserError(f"{d}: no such backbone folder")
    path = d / MANIFEST
    if not path.is_file():
        raise UserError(f"{d}: not a backbone folder written by `transferlab pretrain-text` (no {MANIFEST})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: damaged backbone manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
        raise UserError(f"{path}: unknown backbone kind {doc.get('kind') if isinstance(doc, dict) else None!r}")
    return doc


def is_backbone_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / MANIFEST).is_file()


def _folder_of_kind(folder: str | os.PathLike[str], kind: str, what: str, use: str) -> str:
    """``folder`` as a string, after checking that its manifest says it holds ``kind``."""
    held = read_manifest(folder)["kind"]
    if held != kind:
        raise UserError(f"{folder}: holds {held.replace('_', ' ')}, not {what}; {use}")
    return str(folder)


def word_vectors_backbone(folder: str | os.PathLike[str]) -> str:
    """``folder`` as a string, after checking that it holds word vectors."""
    return _folder_of_kind(folder, "word_vectors", "word vectors", "word networks (text_embedding_cnn/rnn) need "
                           "`pretrain-text --method skipgram` or `cbow`")


def transformer_backbone(folder: str | os.PathLike[str]) -> str:
    """``folder`` as a string, after checking that it holds a transformer body (a packaged one by name:
    :func:`transferlab.backbones.transformer_folder`)."""
    return _folder_of_kind(folder, "transformer", "a transformer", "text_finetune/text_headless/text_fewshot need "
                           "`pretrain-text --method mlm`")


def load_word_vectors(folder: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, int]]:
    """(vocabulary x dim float32 matrix, word -> row) of a word-vector folder."""
    from safetensors.numpy import load_file

    d = Path(word_vectors_backbone(folder))
    doc = read_manifest(d)
    vectors = load_file(str(d / doc["files"]["vectors"]))["vectors"]
    words = json.loads((d / doc["files"]["vocabulary"]).read_text(encoding="utf-8"))["tokens"]
    if len(words) != vectors.shape[0]:
        raise UserError(f"{d}: {len(words)} words but {vectors.shape[0]} vectors; the folder is damaged")
    return np.asarray(vectors, np.float32), {w: i for i, w in enumerate(words)}


def copy_transformer_backbone(source: str | os.PathLike[str] | None, target: Path) -> str:
    """Copy a transformer body folder (weights, config, tokenizer) into ``target``; returns ``target.name``."""
    from transferlab.backbones.minilm import TOKENIZER_FILES

    if source is None:
        raise ValueError("no transformer folder to copy")
    target.mkdir(parents=True, exist_ok=True)
    for name in (*TOKENIZER_FILES, "model.safetensors", MANIFEST):
        if (Path(source) / name).exists():
            shutil.copyfile(Path(source) / name, target / name)
    return target.name


def safetensors_num_params(path: str | os.PathLike[str]) -> int:
    """Number of values in a safetensors file, from its JSON header alone (no tensor is read, no torch)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def folder_spec(folder: str | os.PathLike[str]) -> TextEncoderSpec:
    """The backbone a ``pretrain-text`` folder holds, as a registry spec (checked against its manifest)."""
    from transferlab.backbones.glove import GloveEncoder
    from transferlab.backbones.minilm import SentenceEncoder

    d = Path(folder)
    doc = read_manifest(d)
    files = doc.get("files", {})
    made = f"{doc.get('method', '?')} on {doc.get('corpus', '?')} ({doc.get('documents', '?')} documents)"
    if doc["kind"] == "word_vectors":
        dim = int(doc.get("dim", 0))
        vectors = functools.cache(functools.partial(load_word_vectors, str(d)))

        def word_encoder(max_length: int = 256, model_path: str | os.PathLike[str] | None = None) -> GloveEncoder:
            if model_path:
                raise UserError(f"{d}: word vectors take no transformer folder")
            return GloveEncoder(vectors=vectors)

        return TextEncoderSpec(
            name=str(folder), family="pretrain-text", feature_dim=dim, num_params=int(doc.get("vocab_size", 0)) * dim,
            weights_package="", factory=word_encoder, kind="word_vectors", path=str(d),
            description=f"word vectors ({made}): the embedding matrix of text_embedding_cnn/rnn",
            weight_files=lambda: [d / files.get("vectors", "vectors.safetensors"),
                                  d / files.get("vocabulary", "vocabulary.json")])

    weights = d / files.get("weights", "model.safetensors")

    def body_encoder(max_length: int = 256, model_path: str | os.PathLike[str] | None = None) -> SentenceEncoder:
        return SentenceEncoder(max_length, model_path=str(model_path or d))

    return TextEncoderSpec(
        name=str(folder), family="pretrain-text", feature_dim=int(doc.get("hidden_size", 0)),
        num_params=safetensors_num_params(weights) if weights.is_file() else 0, weights_package="",
        factory=body_encoder, kind="transformer", path=str(d),
        description=f"{doc.get('base', 'MiniLM')} adapted by {made}: text_finetune, text_headless, text_fewshot",
        weight_files=lambda: [weights])
