"""Predict with a saved model from inputs as a person names them: files, folders of images, texts, or a file of them.

This is where ``transferlab predict`` turns its arguments into model inputs, so that a script gets exactly what the
command line gets: folders expand to the files in them (sorted, hidden files left out) for image models; for text
models the arguments are the texts themselves, and ``file`` is read as one text per line or, for a .csv/.tsv/.jsonl
file, by the model's own text column together with the side feature columns it was trained with.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from transferlab.errors import UserError


def expand_folders(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Each folder replaced by the files below it, in a stable order (sorted, walking subfolders; hidden files
    left out); anything else kept as given, so that a missing file is reported by the model as that input's error."""
    out: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
        else:
            out.append(item)
    return out


def read_inputs_file(path: str | os.PathLike[str], task: str, preprocessing: dict[str, Any]) -> list[Any]:
    """Inputs listed in a file. A text model reads a table by the columns it was trained on (rows become dicts
    when it uses side features); anything else is one input per non-empty line."""
    from transferlab.data.texts import TEXT_SUFFIXES, read_lines, read_text_file

    tables = tuple(s for s in TEXT_SUFFIXES if s != ".txt")
    if task == "text" and os.fspath(path).lower().endswith(tables):
        text_column = preprocessing.get("text_column", "text")
        ds = read_text_file(path, text_column, None, feature_columns=preprocessing.get("feature_columns", []))
        return list(ds.rows(text_column))
    return list(read_lines(path))


def predict(model_dir: str | os.PathLike[str], inputs: Sequence[Any], file: str | os.PathLike[str] | None = None,
            top_k: int = 1) -> list[dict[str, Any]]:
    """One entry per input, in order: ``{"input", "label", "probabilities"}`` with the ``top_k`` most likely labels,
    or ``{"input", "error"}`` for an input that could not be used (the others are still predicted).

    ``inputs`` are image files or folders of images for an image model, texts for a text model; ``file`` adds the
    inputs it lists after them. Raises :class:`UserError` when there is nothing to predict or ``top_k`` < 1.
    """
    from transferlab.model import Model

    if top_k < 1:
        raise UserError(f"top_k must be >= 1, got {top_k}")
    model = Model.load(model_dir)
    items: list[Any] = list(inputs)
    if file is not None:
        items += read_inputs_file(file, model.task, model.config.get("preprocessing", {}))
    if model.task != "text":
        items = expand_folders(items)
    if not items:
        raise UserError("no texts to predict" if model.task == "text" else "no input files found")
    return model.predict(items, top_k=top_k)
