"""zeroshot: classify images (or texts) into classes that have no training examples.

Three ways, one verb:

- **from class names, images** (ConSE): the backbone's own ImageNet head says which of its 1000 classes the image
  looks like; the vectors of those ImageNet names, weighted by the head's top-10 probabilities, give the image a
  point in the space of names; it goes to the nearest of the new class names (cosine). No CLIP is needed, and no
  labelled image either. The names (ImageNet's and the user's) are MiniLM sentence embeddings by default
  (:data:`DEFAULT_WORDS`); ``words="glove"`` uses GloVe 6B 50-d word vectors, ConSE's original kind of space.
- **from class names, text**: the existing ``text_zeroshot`` strategy (each text against "This text is about
  {label}." by MiniLM embedding), so ``transferlab zeroshot reviews.csv`` and ``compare`` agree.
- **from attributes, images**: a CSV describes every class by binary attributes; one logistic regression per
  attribute learns them from the frozen features of the classes that do have labelled images (the seen classes),
  and images of the other classes (unseen) go to the class whose attributes explain the predicted ones best (DAP).

The arithmetic is in :mod:`transferlab.analysis.zeroshot`; this module reads the data, extracts features through
the cache, and says how good the result is against chance, so a user sees when a few labels and ``train`` are needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.analysis.zeroshot import (
    ATTRIBUTE_METHODS,
    CONSE_TEMPERATURE,
    CONSE_TOP_K,
    attribute_class_probabilities,
    conse_probabilities,
    fit_attribute_predictors,
    name_words,
    near_chance,
    phrase_vector,
    softmax,
)
from transferlab.backbones import DEFAULT_BACKBONE
from transferlab.data.images import ImageDataset
from transferlab.errors import DataError, UserError

IMAGENET_CLASSES_FILE = Path(__file__).resolve().parents[1] / "resources" / "imagenet_classes.json"


@dataclass(frozen=True)
class ClassName:
    """A class to predict: ``label`` is what predictions say, ``words`` what is looked up (GloVe for images, the
    description for text); they differ when given as ``label=words`` (``--classes ants=ant,bees=bee``)."""

    label: str
    words: str


def parse_classes(spec: str | Sequence[str]) -> list[ClassName]:
    """``"cat,dog"`` or ``["cat", "dog"]``, each entry optionally ``label=words``; at least two, no repeats."""
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    out: list[ClassName] = []
    for item in items:
        label, _, words = item.partition("=")
        label, words = label.strip(), (words.strip() or label.strip())
        if not label:
            raise UserError(f"--classes: empty class name in {','.join(items)!r}")
        if any(c.label == label for c in out):
            raise UserError(f"--classes: {label!r} is given twice")
        out.append(ClassName(label, words))
    if len(out) < 2:
        raise UserError("--classes: zero-shot classification needs at least two class names (a,b,...)")
    return out


def _singular_forms(name: str) -> set[str]:
    folded = " ".join(name_words(name))
    forms = {folded}
    for suffix in ("es", "s"):
        if folded.endswith(suffix) and len(folded) > len(suffix) + 1:
            forms.add(folded[: -len(suffix)])
    return forms


def match_folders(folders: Sequence[str], classes: Sequence[ClassName]) -> tuple[dict[str, str], list[str]]:
    """Which class each labelled folder is: the same name ignoring case and separators, or one the plural of the
    other (``cats`` is ``cat``). Returns (folder -> class label, folders that match no class or several)."""
    mapping: dict[str, str] = {}
    unmatched: list[str] = []
    for folder in folders:
        exact = [c.label for c in classes if folder in (c.label, c.words)]
        if exact:
            mapping[folder] = exact[0]
            continue
        forms = _singular_forms(folder)
        hits = {c.label for c in classes if forms & (_singular_forms(c.label) | _singular_forms(c.words))}
        if len(hits) == 1:
            mapping[folder] = hits.pop()
        else:
            unmatched.append(folder)
    return mapping, unmatched


# --- reading images -------------------------------------------------------------------------------------------


@dataclass
class ImageSplits:
    """``train``: the images to learn from (attributes); ``eval``: the images to classify. A folder with train/
    and val/ gives its val/ to classify; otherwise both are every image (nothing is trained on a class that is
    classified, so nothing needs holding out)."""

    train: ImageDataset
    eval: ImageDataset
    fixed: bool

    @property
    def labelled(self) -> bool:
        return self.eval.labels is not None


def read_image_splits(data: str | os.PathLike[str], eval_split: str | None = None) -> ImageSplits:
    """DATA as images: a folder with train/ and val/ (or valid/, test/) of class folders; a folder of class
    folders; a CSV of path,label; or unlabelled images (one file, or a folder of files with no class folders)."""
    from transferlab.data.images import _find_eval_dir, has_fixed_split
    from transferlab.workflows.predict import expand_folders

    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() in (".csv", ".tsv"):
            ds = ImageDataset.from_csv(root)
            return ImageSplits(ds, ds, False)
        ds = ImageDataset.from_paths([root])
        return ImageSplits(ds, ds, False)
    if has_fixed_split(root, eval_split):
        eval_dir = _find_eval_dir(root, eval_split)
        assert eval_dir is not None
        return ImageSplits(ImageDataset.from_folder(root / "train"), ImageDataset.from_folder(eval_dir), True)
    if any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
        ds = ImageDataset.from_folder(root)
    else:
        ds = ImageDataset.from_paths(expand_folders([root]))
    if len(ds) == 0:
        raise DataError(f"{root}: no images")
    return ImageSplits(ds, ds, False)


def _extract(backbone: str, ds: ImageDataset, output: str, desc: str) -> tuple[np.ndarray, ImageDataset,
                                                                                   list[dict[str, str]]]:
    """(the output for the usable images, those images, the left-out ones with their reason)."""
    from transferlab.features import extract_features

    result = extract_features(backbone, ds.paths, outputs=(output,), desc=desc)
    skipped = [{"path": ds.paths[i], "reason": reason} for i, reason in result.failures.items()]
    if not result.ok:
        first = f" ({skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
        raise DataError(f"no usable image among the {len(ds)} {desc}{first}")
    return result.arrays[output], ds.subset(result.ok), skipped


# --- class names -> word vectors ------------------------------------------------------------------------------


WORD_SPACES = ("glove", "minilm")
# MiniLM sentence embeddings of the names, not GloVe 50-d. It was adopted by a rule fixed before the check
# (benchmarks/zeroshot.py, "word_space_check"): on classes not used to choose it, the better space on both
# (1) 134 ImageNet names of fish, birds, amphibians, turtles, lizards, snakes and insects, each put to the nearest
# of those 7 group names: MiniLM 0.657, GloVe 0.291; (2) ConSE on the 300 dtd_subset images, 10 texture names:
# 0.243 vs 0.167 (chance 0.10). GloVe 50-d puts most dog breeds nearer "cat" than "dog" (cats_vs_dogs 0.795).
DEFAULT_WORDS = "minilm"


def _sentence_vectors(texts: Sequence[str]) -> np.ndarray:
    """MiniLM sentence embeddings of short names, through the feature cache."""
    from transferlab.features import extract_features

    return extract_features("minilm", list(texts), desc="class names", max_length=32).arrays["features"]


def class_name_vectors(classes: Sequence[ClassName], words: str = DEFAULT_WORDS) -> np.ndarray:
    """(C, dim) vectors of the class names. ``glove``: GloVe 6B 50-d, multi-word names averaged. ``minilm``: the
    MiniLM sentence embedding of the name. In both, every word of a name must be one GloVe's 400,000-word vocabulary
    knows: a name with an unknown word (a typo, a code) is an error naming it, rather than a class silently described
    by half its name or by a sentence embedding of noise."""
    from transferlab.backbones.glove import load_glove

    if words not in WORD_SPACES:
        raise UserError(f"--words {words}: choose one of {', '.join(WORD_SPACES)}")
    vectors, index = load_glove()
    rows, problems = [], []
    for c in classes:
        v, missing = phrase_vector(c.words, vectors, index)
        if v is None or missing:
            problems.append(f"{c.words!r}" + (f" ({', '.join(repr(m) for m in missing)})"
                                              if missing and missing != [c.words.lower()] else ""))
        rows.append(v)
    if problems:
        raise UserError(f"no word vector for class name(s) {', '.join(problems)}: class names must be English words "
                        "(GloVe 6B's vocabulary); use another word, or keep the label and give words to look up with "
                        "--classes LABEL=words")
    if words == "minilm":
        return _sentence_vectors([c.words for c in classes])
    return np.stack(rows)  # type: ignore[arg-type]


@lru_cache(maxsize=2)
def imagenet_label_vectors(words: str = DEFAULT_WORDS) -> np.ndarray:
    """(1000, dim) vectors of the ImageNet class names, in the order of the backbones' logits. GloVe: a name none
    of whose words has a vector is a zero row (ConSE then never uses that class; 23 of the 1000, rare dog breeds
    and compounds such as ``gasmask``). MiniLM: the sentence embedding of each name."""
    from transferlab.backbones.glove import load_glove

    names = json.loads(IMAGENET_CLASSES_FILE.read_text())
    if words == "minilm":
        return _sentence_vectors(names)
    vectors, index = load_glove()
    out = np.zeros((len(names), vectors.shape[1]), np.float32)
    for i, name in enumerate(names):
        v, _ = phrase_vector(name, vectors, index)
        if v is not None:
            out[i] = v
    return out


# --- the three methods -----------------------------------------------------------------------------------------


def _score(result: dict[str, Any], true: list[str | None], predicted: list[str], n_classes: int) -> None:
    """Accuracy over the items whose true class is known, with chance beside it and a plain warning near it."""
    known = [(t, p) for t, p in zip(true, predicted, strict=True) if t is not None]
    result["chance"] = 1.0 / n_classes
    if not known:
        return
    accuracy = float(np.mean([t == p for t, p in known]))
    result["accuracy"] = accuracy
    result["count"] = len(known)
    if near_chance(accuracy, n_classes):
        where = "below" if accuracy < result["chance"] else "near"
        result["advice"] = (f"accuracy {accuracy:.3f} is {where} chance ({result['chance']:.3f}): zero-shot is not "
                            "good enough here; label a few examples per class and train a model (transferlab train)")


def _predictions(key: str, items: Sequence[str], labels: Sequence[str], proba: np.ndarray,
                 true: Sequence[str | None]) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(items):
        probs = {c: round(float(proba[i, j]), 6) for j, c in enumerate(labels)}
        row: dict[str, Any] = {key: item, "label": labels[int(np.argmax(proba[i]))], "probabilities": probs}
        if true[i] is not None:
            row["true_label"] = true[i]
        out.append(row)
    return out


def conse(data: str | os.PathLike[str], classes: str | Sequence[str] | None = None, backbone: str | None = None,
          top_k: int = CONSE_TOP_K, temperature: float = CONSE_TEMPERATURE,
          eval_split: str | None = None, words: str = DEFAULT_WORDS) -> dict[str, Any]:
    """Zero-shot image classification from class names alone (ConSE); ``classes`` default to DATA's class
    folders. Classifies DATA's val/ images when it has train/ and val/, else every image."""
    from transferlab.backbones import get_backbone

    backbone = backbone or DEFAULT_BACKBONE
    if get_backbone(backbone).modality != "image":
        raise UserError(f"--backbone {backbone}: zero-shot from class names needs an image backbone with an "
                        "ImageNet head")
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if temperature <= 0:
        raise UserError(f"--temperature must be > 0, got {temperature}")
    splits = read_image_splits(data, eval_split)
    folders = list(splits.eval.classes) if splits.labelled else []
    if classes is None:
        if not folders:
            raise UserError(f"{data}: no class folders to take class names from; give them with --classes a,b,c")
        classes = folders
    names = parse_classes(classes)
    class_vectors = class_name_vectors(names, words)  # before the images: a bad name fails in a second
    logits, images, skipped = _extract(backbone, splits.eval, "logits", "images to classify")
    proba = conse_probabilities(softmax(logits), imagenet_label_vectors(words), class_vectors, top_k, temperature)
    labels = [c.label for c in names]
    result: dict[str, Any] = {"task": "image", "method": "conse", "classes": labels,
                              "settings": {"backbone": backbone, "words": words, "top_k": top_k,
                                           "temperature": temperature},
                              "notes": [], "skipped": skipped}
    true: list[str | None] = [None] * len(images)
    if images.labels is not None:
        mapping, unmatched = match_folders(sorted(set(images.labels)), names)
        if unmatched:
            result["notes"].append(f"accuracy not computed: folder(s) {', '.join(unmatched)} match no class name "
                                   "(name them with --classes FOLDER=words)")
        else:
            true = [mapping[label] for label in images.labels]
    result["predictions"] = _predictions("path", images.paths, labels, proba, true)
    predicted = [p["label"] for p in result["predictions"]]
    _score(result, true, predicted, len(labels))
    return result


def text_zeroshot(data: str | os.PathLike[str], classes: str | Sequence[str] | None = None,
                  eval_split: str | None = None, text_column: str = "text", label_column: str = "label",
                  template: str = "This text is about {label}.") -> dict[str, Any]:
    """Zero-shot text classification with the ``text_zeroshot`` strategy (label descriptions by MiniLM). DATA is
    one file (every row is classified, in order; the label column is optional, then ``classes`` are needed) or a
    folder with train and evaluation files (the evaluation file is classified). The classes default to the labels."""
    from transferlab.data.labelled import Columns, load_labelled
    from transferlab.data.report import DataReport
    from transferlab.data.texts import looks_like_text_data, read_text_file
    from transferlab.strategies import make_strategy

    root = Path(data)
    if root.is_file():
        has_labels = looks_like_text_data(root, label_column)
        target = read_text_file(root, text_column, label_column if has_labels else None, DataReport(str(root)),
                                "eval")
    else:
        prepared = load_labelled(data, "text", eval_split=eval_split, columns=Columns(text_column, label_column))
        target = prepared.eval if prepared.fixed else prepared.everything()
    if classes is None:
        if not target.labels:
            raise UserError(f"{data}: no {label_column!r} column to take class names from; give them with "
                            "--classes a,b,c")
        classes = list(target.classes)
    names = parse_classes(classes)
    descriptions = {c.label: template.replace("{label}", c.words) for c in names if c.words != c.label}
    strategy = make_strategy("text_zeroshot", "text", template=template, classes=[c.label for c in names],
                             descriptions=descriptions or None)
    strategy.fit()
    proba = strategy.predict_proba(target)
    labels = list(strategy.classes_)
    result: dict[str, Any] = {"task": "text", "method": "text_zeroshot", "classes": labels,
                              "settings": {"encoder": "minilm", "template": template,
                                           "descriptions": list(strategy.descriptions_)},
                              "notes": [], "skipped": []}
    true: list[str | None] = [None] * len(target.texts)
    if target.labels is not None:
        mapping, unmatched = match_folders(sorted(set(target.labels)), names)
        if unmatched:
            result["notes"].append(f"accuracy not computed: label(s) {', '.join(unmatched)} match no class name")
        else:
            true = [mapping[label] for label in target.labels]
    result["predictions"] = _predictions("text", target.texts, labels, proba, true)
    _score(result, true, [p["label"] for p in result["predictions"]], len(labels))
    return result


def attribute_zeroshot(data: str | os.PathLike[str], attributes: str | os.PathLike[str],
                       unseen: str | Sequence[str] | None = None, images: Sequence[str] | None = None,
                       backbone: str | None = None, method: str = "dap", eval_split: str | None = None,
                       C: float = 1.0, seed: int = 0) -> dict[str, Any]:  # noqa: N803
    """Zero-shot image classification by attributes (see the module docstring).

    Seen classes: DATA's class folders with training images (train/, or every folder), less ``unseen``; unseen:
    the table's classes with no training images, plus ``unseen``. Classified: DATA's val/ images of unseen classes
    (every image of them without a train/val split), plus ``images`` (files or folders, unlabelled)."""
    from transferlab.data.attributes import read_attribute_table
    from transferlab.workflows.predict import expand_folders

    backbone = backbone or DEFAULT_BACKBONE
    if method not in ATTRIBUTE_METHODS:
        raise UserError(f"--method {method}: choose one of {', '.join(ATTRIBUTE_METHODS)}")
    table = read_attribute_table(attributes)
    splits = read_image_splits(data, eval_split)
    if not splits.labelled:
        raise DataError(f"{data}: attribute zero-shot learns the attributes from labelled images of the seen "
                        "classes; DATA needs one folder per class")
    folders = sorted(set(splits.train.classes) | set(splits.eval.classes))
    to_table = {f: table.find(f) for f in folders}
    unknown = [f for f, t in to_table.items() if t is None]
    if unknown:
        raise DataError(f"{attributes}: no row for class(es) {', '.join(unknown)} of {data}; every class folder "
                        f"needs its attributes (classes in the file: {', '.join(table.classes)})")
    held: list[str] = []
    for name in ([u.strip() for u in unseen.split(",")] if isinstance(unseen, str) else list(unseen or [])):
        if not name:
            continue
        found = table.find(name)
        if found is None:
            raise UserError(f"--unseen {name}: not a class of {attributes} (classes: {', '.join(table.classes)})")
        held.append(found)
    with_images = {to_table[c] for c in set(splits.train.labels or [])}
    seen = [c for c in table.classes if c in with_images and c not in held]
    unseen_classes = [c for c in table.classes if c not in seen]
    if len(seen) < 2:
        raise UserError(f"attribute zero-shot needs training images of at least two seen classes; found "
                        f"{len(seen)} ({', '.join(seen) or 'none'})")
    if len(unseen_classes) < 2:
        raise UserError(f"need at least two unseen classes to choose between, found {len(unseen_classes)} "
                        f"({', '.join(unseen_classes) or 'none'}): every class of {attributes} has training images; "
                        "hold some out with --unseen a,b")
    signatures = table.rows(unseen_classes)
    for i in range(len(unseen_classes)):
        for j in range(i + 1, len(unseen_classes)):
            if np.array_equal(signatures[i], signatures[j]):
                raise DataError(f"{attributes}: unseen classes {unseen_classes[i]!r} and {unseen_classes[j]!r} have "
                                "the same attributes and cannot be told apart; add an attribute that differs")

    train_idx = [i for i, label in enumerate(splits.train.labels or []) if to_table[label] in seen]
    features, train_ds, skipped = _extract(backbone, splits.train.subset(train_idx), "features",
                                           "images of the seen classes")
    train_classes = [to_table[label] for label in train_ds.labels or []]
    missing = sorted(set(seen) - set(train_classes))
    if missing:
        raise DataError(f"{data}: no usable training image left for seen class(es) {', '.join(missing)}")
    predictors = fit_attribute_predictors(features, table.rows(train_classes), C=C, seed=seed)
    learned = predictors.learnable
    if not learned.any():
        raise DataError(f"{attributes}: no attribute varies across the seen classes ({', '.join(seen)}), so none "
                        "can be learned from their images")

    eval_idx = [i for i, label in enumerate(splits.eval.labels or []) if to_table[label] in unseen_classes]
    paths = [splits.eval.paths[i] for i in eval_idx]
    true: list[str | None] = [to_table[(splits.eval.labels or [])[i]] for i in eval_idx]
    if images:
        extra = expand_folders(list(images))
        paths += extra
        true += [None] * len(extra)
    if not paths:
        raise UserError(f"no images of the unseen classes ({', '.join(unseen_classes)}) to classify: put them in "
                        f"{'val/' if splits.fixed else ''}<class>/ folders of {data}, or pass --images")
    target_features, targets, more_skipped = _extract(backbone, ImageDataset.from_paths(paths), "features",
                                                      "images to classify")
    kept = set(targets.paths)
    true = [t for p, t in zip(paths, true, strict=True) if p in kept]
    attribute_proba = predictors.predict_proba(target_features)
    proba = attribute_class_probabilities(attribute_proba, signatures, method=method, use=learned)
    notes = []
    dropped = [a for a, ok in zip(table.attributes, learned, strict=True) if not ok]
    if dropped:
        notes.append(f"attribute(s) {', '.join(dropped)} do not vary across the seen classes: not learned, not used")
    if len({tuple(row) for row in signatures[:, learned]}) < len(unseen_classes):
        notes.append("some unseen classes differ only in attributes that could not be learned")
    result: dict[str, Any] = {
        "task": "image", "method": f"attributes/{method}", "classes": unseen_classes,
        "settings": {"backbone": backbone, "method": method, "C": C, "attributes_file": str(attributes)},
        "seen_classes": seen, "unseen_classes": unseen_classes,
        "train_images": len(train_ds), "notes": notes, "skipped": skipped + more_skipped,
    }
    result["predictions"] = _predictions("path", targets.paths, unseen_classes, proba, true)
    known = np.asarray([t is not None for t in true])
    rows = []
    for j, name in enumerate(table.attributes):
        row: dict[str, Any] = {"attribute": name, "learned": bool(learned[j])}
        if known.any() and learned[j]:
            want = table.rows([t for t in true if t is not None])[:, j] > 0.5
            row["accuracy_on_unseen"] = float(np.mean((attribute_proba[known, j] > 0.5) == want))
        rows.append(row)
    result["attributes"] = rows
    _score(result, true, [p["label"] for p in result["predictions"]], len(unseen_classes))
    return result


def zeroshot(data: str | os.PathLike[str], classes: str | Sequence[str] | None = None,
             attributes: str | os.PathLike[str] | None = None, unseen: str | Sequence[str] | None = None,
             images: Sequence[str] | None = None, backbone: str | None = None, top_k: int = CONSE_TOP_K,
             temperature: float = CONSE_TEMPERATURE, method: str = "dap", task: str | None = None,
             eval_split: str | None = None, text_column: str = "text", label_column: str = "label",
             seed: int = 0, words: str = DEFAULT_WORDS) -> dict[str, Any]:
    """``transferlab zeroshot``: from class names (``classes``, default DATA's class folders or labels) or from
    an ``attributes`` CSV; images or text, as DATA is. Returns ``predictions`` and, when DATA is labelled,
    ``accuracy`` with ``chance`` beside it (and ``advice`` when it is near chance)."""
    from transferlab.data.labelled import detect_task

    if classes is not None and attributes is not None:
        raise UserError("give --classes or --attributes, not both")
    kind = detect_task(data, task, text_column)
    if kind == "text":
        if attributes is not None or unseen or images:
            raise UserError("--attributes, --unseen and --images are for images; text zero-shot reads class names")
        return text_zeroshot(data, classes, eval_split, text_column, label_column)
    if attributes is not None:
        return attribute_zeroshot(data, attributes, unseen, images, backbone, method, eval_split, seed=seed)
    if unseen or images:
        raise UserError("--unseen and --images go with --attributes")
    return conse(data, classes, backbone, top_k, temperature, eval_split, words)
