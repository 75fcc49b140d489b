"""``transferlab export``: a saved model as one ONNX graph that runs anywhere with onnxruntime alone.

The export directory holds::

    model.onnx            preprocessing and head inside: uint8 pixels (or token ids) in, class probabilities out
    export.json           labels, each graph input's preprocessing (resize, crop, tokenizer, n-grams), the model card
    labels.json           class names in output order
    tokenizer.json        for transformer text models (Hugging Face ``tokenizers`` format)
    ngrams.json           for bag-of-words models: the vocabulary the runtime counts n-grams against
    transferlab_runtime.py   the copyable runtime (onnxruntime, numpy, Pillow, tokenizers; no torch, no scikit-learn)

What the graph does, by saved-model kind (one builder per kind in :data:`EXPORTERS`):

* images: ``uint8 (N, H, W, 3)`` resized and centre-cropped pixels -> the same float32 normalisation as training ->
  the frozen backbone's graph (the one the feature cache already runs) or the whole fine-tuned network -> the head;
  an ensemble has one pixel input per member (members may differ in input size) and averages probabilities.
* texts: token ids -> the sentence encoder's graph (body, mean pooling, L2 norm) -> the head; a fine-tuned
  transformer is exported whole; bag-of-words takes the ids and counts of the n-grams the runtime found in the
  saved vocabulary, and applies sublinear TF, IDF, per-part L2 norm and the linear head inside the graph.

Heads run in float64 (the features are cast up), as the saved model's heads do in NumPy, so that an exported model
never flips a decision the saved one makes. What cannot be exported exactly (k-NN heads, side-feature columns,
GloVe and word-CNN models, the TF-IDF + embedding hybrid) is refused with the reason, before anything is written.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.errors import UserError

EXPORT_FORMAT = 1
QA_OUTPUT = "span_logits"
OPSET = 17
RUNTIME_SOURCE = Path(__file__).resolve().parents[2] / "transferlab_runtime" / "__init__.py"


@dataclass
class Graph:
    """An ONNX graph being assembled: nodes, initializers, inputs, and what each input needs from the runtime."""

    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    input_specs: list[dict[str, Any]] = field(default_factory=list)
    opset: int = OPSET
    files: dict[str, bytes] = field(default_factory=dict)  # extra files for the export directory

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def add_model(self, model: Any, prefix: str, outputs: list[str]) -> None:
        """Add the nodes of ``model`` that ``outputs`` need (names prefixed, so several models can share a graph)."""
        from onnx import compose

        model = compose.add_prefix(model, prefix)
        wanted = {prefix + o for o in outputs}
        keep = []
        for node in reversed(model.graph.node):
            if any(o in wanted for o in node.output):
                keep.append(node)
                wanted.update(i for i in node.input if i)
        self.nodes.extend(reversed(keep))
        self.initializers.extend(t for t in model.graph.initializer if t.name in wanted)
        self.opset = max(self.opset, *(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))

    def build(self, output: str, n_classes: int, name: str = "probabilities") -> Any:
        """The model whose one output, ``name``, is ``output``: class probabilities (float64, batch x classes), or
        for a question-answering reader ``span_logits`` (float32, batch x tokens x 2)."""
        import onnx
        from onnx import TensorProto, helper

        self.node("Identity", [output], name)
        value = (helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "tokens", 2]) if name == QA_OUTPUT
                 else helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["batch", n_classes]))
        graph = helper.make_graph(self.nodes, "transferlab", self.inputs, [value], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="transferlab")
        model.ir_version = min(model.ir_version, 9)  # what the pinned onnxruntime reads
        onnx.checker.check_model(model, full_check=False)
        return model


# --- heads in float64 ------------------------------------------------------------------------------------------------
def add_head(g: Graph, head: Any, features: str, prefix: str) -> str:
    """The head's probabilities (float64) from a float32 feature tensor."""
    from onnx import TensorProto

    from transferlab.heads import LinearHead, MLPHead

    x = g.node("Cast", [features], f"{prefix}features64", to=TensorProto.DOUBLE)
    if isinstance(head, LinearHead):
        z = g.node("MatMul", [x, g.const(f"{prefix}head.wT", head.weight.astype(np.float64).T)], f"{prefix}head.xw")
        z = g.node("Add", [z, g.const(f"{prefix}head.b", head.bias.astype(np.float64))], f"{prefix}logits")
    elif isinstance(head, MLPHead):
        z = g.node("Sub", [x, g.const(f"{prefix}head.mean", head.mean.astype(np.float64))], f"{prefix}head.centred")
        z = g.node("Div", [z, g.const(f"{prefix}head.scale", head.scale.astype(np.float64))], f"{prefix}head.h0")
        for i, (w, b) in enumerate(head.layers):
            z = g.node("MatMul", [z, g.const(f"{prefix}head.w{i}T", w.astype(np.float64).T)], f"{prefix}head.xw{i}")
            z = g.node("Add", [z, g.const(f"{prefix}head.b{i}", b.astype(np.float64))], f"{prefix}head.z{i}")
            if i < len(head.layers) - 1:
                z = g.node("Relu", [z], f"{prefix}head.r{i}")
    else:
        raise UserError(f"cannot export a {type(head).__name__} exactly (a k-NN head keeps the training set); "
                        "train with a linear or MLP head (headless, frozen_head) to export")
    return g.node("Softmax", [z], f"{prefix}proba", axis=-1)


# --- images ----------------------------------------------------------------------------------------------------------
def add_pixel_input(g: Graph, name: str, prep: Any) -> str:
    """A uint8 (N, H, W, 3) input and the float32 normalisation of :meth:`Preprocessing.normalize_batch`, done by
    the same operations in the same order; returns the (N, 3, H, W) float tensor."""
    from onnx import TensorProto, helper

    g.inputs.append(helper.make_tensor_value_info(name, TensorProto.UINT8, ["batch", prep.size, prep.size, 3]))
    g.input_specs.append({"name": name, "kind": "image", "preprocessing": prep.to_dict(), "resize": prep.resize,
                          "layout": "NHWC uint8 RGB"})
    # transposed first, as uint8 (a quarter of the bytes), so the per-channel constants broadcast over whole planes:
    # onnxruntime runs that several times faster than a (3,) constant broadcast over the last axis of NHWC, and every
    # element still gets the same float32 operations, so the numbers are unchanged
    x = g.node("Transpose", [name], f"{name}.nchw_u8", perm=[0, 3, 1, 2])
    x = g.node("Cast", [x], f"{name}.f", to=TensorProto.FLOAT)
    mean, std = np.asarray(prep.mean, np.float32), np.asarray(prep.std, np.float32)

    def per_channel(v: np.ndarray) -> np.ndarray:
        return v.astype(np.float32).reshape(1, 3, 1, 1)

    if prep.style == "caffe":
        x = g.node("Gather", [x, g.const(f"{name}.bgr", np.array([2, 1, 0], np.int64))], f"{name}.bgr_x", axis=1)
        return g.node("Sub", [x, g.const(f"{name}.mean", per_channel(mean))], f"{name}.norm")
    scale = np.float32(1.0) / (np.float32(255.0) * std)
    x = g.node("Mul", [x, g.const(f"{name}.scale", per_channel(scale))], f"{name}.scaled")
    return g.node("Sub", [x, g.const(f"{name}.shift", per_channel(mean / std))], f"{name}.norm")


def add_feature_member(g: Graph, backbone: str, outputs: list[str], head: Any, input_size: int | None,
                       index: int) -> str:
    """One frozen backbone (its cached ONNX graph) + head, on its own pixel input; returns its probabilities."""
    import onnx

    from transferlab.backbones import get_backbone
    from transferlab.features.images import onnx_model_path

    spec = get_backbone(backbone)
    prep = spec.preprocessing if input_size is None else spec.preprocessing.with_size(int(input_size))
    model = onnx.load(str(onnx_model_path(spec, prep, runtime.cache_dir())))
    prefix = f"m{index}/"
    pixels = add_pixel_input(g, f"image_{index}" if index else "image", prep)
    g.nodes.append(_identity(pixels, prefix + model.graph.input[0].name))
    g.add_model(model, prefix, outputs)
    feats = [prefix + o for o in outputs]
    x = feats[0] if len(feats) == 1 else g.node("Concat", feats, f"{prefix}concat", axis=1)
    return add_head(g, head, x, prefix)


def _identity(src: str, dst: str) -> Any:
    from onnx import helper

    return helper.make_node("Identity", [src], [dst], name=dst)


def export_features_head(directory: Path, config: dict[str, Any], g: Graph) -> str:
    from transferlab.heads import Head

    w = config["weights"]
    return add_feature_member(g, w["backbone"], list(w["feature_outputs"]), Head.load(directory),
                              config.get("preprocessing", {}).get("size"), 0)


def export_ensemble(directory: Path, config: dict[str, Any], g: Graph) -> str:
    from transferlab.heads import Head

    members = config["weights"]["members"]
    probs = [add_feature_member(g, m["backbone"], list(m["feature_outputs"]), Head.load(directory / m["folder"]),
                                None, i) for i, m in enumerate(members)]
    total = g.node("Sum", probs, "ensemble.sum")
    return g.node("Div", [total, g.const("ensemble.n", np.array(float(len(probs)), np.float64))], "ensemble.mean")


def _torch_graph(module: Any, args: tuple[Any, ...], input_names: list[str], dynamic: dict[str, dict[int, str]]
                 ) -> Any:
    """``module`` exported by torch (legacy exporter, as the feature cache's graphs) and loaded as an ONNX model."""
    import warnings

    import onnx
    import torch

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "graph.onnx"
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, input_names=input_names,
                          output_names=["out"], opset_version=OPSET,
                          dynamic_axes={**dynamic, "out": {0: "batch"}})
        return onnx.load(str(path))


def export_network(directory: Path, config: dict[str, Any], g: Graph) -> str:
    """A whole fine-tuned image network: pixels -> normalisation -> network -> softmax (float64)."""
    import torch
    from onnx import TensorProto

    from transferlab.model.image_loaders import load_network
    from transferlab.preprocessing import Preprocessing

    predictor = load_network(directory, config)
    prep = Preprocessing.from_dict(config["weights"]["preprocessing"])
    pixels = add_pixel_input(g, "image", prep)
    model = _torch_graph(predictor.net.to(memory_format=torch.contiguous_format),
                         (torch.zeros(1, 3, prep.size, prep.size),), ["x"], {"x": {0: "batch"}})
    g.nodes.append(_identity(pixels, "net/x"))
    g.add_model(model, "net/", ["out"])
    logits = g.node("Cast", ["net/out"], "net/logits64", to=TensorProto.DOUBLE)
    return g.node("Softmax", [logits], "net/proba", axis=-1)


# --- texts -----------------------------------------------------------------------------------------------------------
def add_token_inputs(g: Graph, tokenizer_file: Path, max_length: int, pad_id: int) -> tuple[str, str]:
    from onnx import TensorProto, helper

    for name in ("input_ids", "attention_mask"):
        g.inputs.append(helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]))
    g.input_specs.append({"name": "input_ids", "kind": "tokens", "tokenizer": "tokenizer.json",
                          "max_length": int(max_length), "pad_id": int(pad_id), "mask": "attention_mask"})
    g.files["tokenizer.json"] = tokenizer_file.read_bytes()
    return "input_ids", "attention_mask"


def _pad_id(folder: Path) -> int:
    try:
        cfg = json.loads((folder / "config.json").read_text())
        return int(cfg.get("pad_token_id") or 0)
    except (OSError, json.JSONDecodeError, TypeError, ValueError):
        return 0


def add_sentence_graph(g: Graph, graph_path: Path | None, folder: Path, max_length: int) -> str:
    """Token ids -> the sentence encoder's exported graph (body, mean pooling, L2 norm); returns the embedding."""
    import onnx

    if graph_path is None:
        raise UserError("the sentence encoder's ONNX graph could not be built (see the feature cache folder)")
    ids, mask = add_token_inputs(g, folder / "tokenizer.json", max_length, _pad_id(folder))
    g.nodes += [_identity(ids, "enc/input_ids"), _identity(mask, "enc/attention_mask")]
    g.add_model(onnx.load(str(graph_path)), "enc/", ["embedding"])
    return "enc/embedding"


def _refuse_side_features(config: dict[str, Any]) -> None:
    if config.get("weights", {}).get("side_features"):
        raise UserError("this model also reads side columns (--feature-columns); export covers text-only models")


def export_embedding_head(directory: Path, config: dict[str, Any], g: Graph) -> str:
    from transferlab.backbones import encoder_name
    from transferlab.features.text import text_encoder
    from transferlab.heads import Head

    _refuse_side_features(config)
    w = config["weights"]
    max_length = int(w.get("max_length", 256))
    body = str(directory / w["transformer"]) if w.get("transformer") else None
    name = "minilm" if body else encoder_name(str(w.get("encoder", "")))
    encoder = text_encoder(name, max_length, body)
    if not hasattr(encoder, "_onnx_path"):
        raise UserError(f"cannot export a model on the {name!r} encoder (word vectors, not a transformer graph)")
    emb = add_sentence_graph(g, encoder._onnx_path(), Path(encoder.folder), max_length)
    return add_head(g, Head.load(directory), emb, "head/")


def export_tuned_embedding_head(directory: Path, config: dict[str, Any], g: Graph) -> str:
    from safetensors.torch import load_file

    from transferlab.backbones.text_onnx import export_sentence_graph
    from transferlab.heads import Head
    from transferlab.nn.transformer import body_from_config

    _refuse_side_features(config)
    w = config["weights"]
    folder = directory / w["transformer"]
    body, _ = body_from_config(folder)
    body.load_state_dict(load_file(str(directory / w["file"])))
    with tempfile.TemporaryDirectory() as tmp:
        graph = export_sentence_graph(body.eval(), Path(tmp) / "body.onnx")
        emb = add_sentence_graph(g, graph, folder, int(w["max_length"]))
    return add_head(g, Head.load(directory), emb, "head/")


def export_transformer(directory: Path, config: dict[str, Any], g: Graph) -> str:
    """A whole fine-tuned transformer classifier (body, mean pooling, linear head) -> softmax (float64)."""
    import torch
    from onnx import TensorProto
    from safetensors.torch import load_file

    from transferlab.nn.transformer import TransformerClassifier, body_from_config

    w = config["weights"]
    folder = directory / w["transformer"]
    body, _ = body_from_config(folder)
    clf = TransformerClassifier(body, int(w["n_classes"]), float(w.get("dropout", 0.1)))
    clf.load_state_dict(load_file(str(directory / w["file"])))

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner((input_ids, attention_mask))

    ids = torch.ones((2, 8), dtype=torch.long)
    model = _torch_graph(Logits(clf), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"],
                         {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}})
    in_ids, in_mask = add_token_inputs(g, folder / "tokenizer.json", int(w["max_length"]), _pad_id(folder))
    g.nodes += [_identity(in_ids, "net/input_ids"), _identity(in_mask, "net/attention_mask")]
    g.add_model(model, "net/", ["out"])
    logits = g.node("Cast", ["net/out"], "net/logits64", to=TensorProto.DOUBLE)
    return g.node("Softmax", [logits], "net/proba", axis=-1)


def export_qa_reader(directory: Path, config: dict[str, Any], g: Graph) -> str:
    """A question-answering reader: token ids, mask and type ids of its windows -> start/end logits per token
    (float32, padding at -1e4). The runtime cuts the windows and decodes the spans as transferlab does."""
    import torch
    from onnx import TensorProto, helper

    from transferlab.model.qa_loaders import load_reader_net

    net, _, w = load_reader_net(directory, config)
    # BERT-like bodies (MiniLM) take token type ids; MPNet has none, and its graph takes ids and mask only
    with_types = "token_type_ids" in inspect.signature(net.body.forward).parameters

    class Spans(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            return self.inner((input_ids, attention_mask, token_type_ids))

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    ids = torch.ones((2, 8), dtype=torch.long)
    example = (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if with_types else ())
    model = _torch_graph(Spans(net), example, names, {n: {0: "batch", 1: "tokens"} for n in names})
    folder = directory / w["transformer"]
    for n in names:
        g.inputs.append(helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]))
        g.nodes.append(_identity(n, f"net/{n}"))
    g.input_specs.append({"name": "input_ids", "kind": "qa_tokens", "tokenizer": "tokenizer.json",
                          "mask": "attention_mask", "type_ids": "token_type_ids" if with_types else None,
                          "pad_id": _pad_id(folder),
                          "max_length": int(w["max_length"]), "stride": int(w["stride"]),
                          "n_best": int(w.get("n_best", 20)), "max_answer_tokens": int(w.get("max_answer_tokens", 30)),
                          "null_threshold": w.get("null_threshold")})
    g.files["tokenizer.json"] = (folder / "tokenizer.json").read_bytes()
    g.add_model(model, "net/", ["out"])
    return "net/out"


def export_tfidf_head(directory: Path, config: dict[str, Any], g: Graph) -> str:
    """Bag of n-grams: the runtime counts the saved vocabulary's n-grams (ids and counts, padded with count 0);
    the graph applies ``1 + log(count)``, the IDF, an L2 norm per part (word / character n-grams) and the head."""
    from onnx import TensorProto, helper
    from safetensors.numpy import load_file

    from transferlab.heads import Head

    _refuse_side_features(config)
    spec = json.loads((directory / "tfidf.json").read_text())
    tensors = load_file(str(directory / "tfidf.safetensors"))
    head = Head.load(directory)
    parts, idf, part_of = [], [], []
    offset = 0
    for i, part in enumerate(spec["parts"]):
        n = len(part["vocabulary"])
        parts.append({"kind": part["kind"], "max_n": int(part["max_n"]), "offset": offset,
                      "vocabulary": part["vocabulary"]})
        idf.append(tensors[f"idf.{i}"].astype(np.float64))
        part_of.append(np.full(n, i, np.int64))
        offset += n
    n_parts = len(parts)
    g.files["ngrams.json"] = json.dumps({"token_pattern": spec.get("token_pattern", _token_pattern()),
                                         "lowercase": True, "parts": parts}, ensure_ascii=False).encode()
    for name, dtype in (("term_ids", TensorProto.INT64), ("term_counts", TensorProto.FLOAT)):
        g.inputs.append(helper.make_tensor_value_info(name, dtype, ["batch", "terms"]))
    g.input_specs.append({"name": "term_ids", "kind": "ngrams", "ngrams": "ngrams.json", "counts": "term_counts"})
    counts = g.node("Cast", ["term_counts"], "bow.counts64", to=TensorProto.DOUBLE)
    present = g.node("Cast", [g.node("Greater", [counts, g.const("bow.zero", np.array(0.0))], "bow.gt0")],
                     "bow.present", to=TensorProto.DOUBLE)
    safe = g.node("Max", [counts, g.const("bow.one", np.array(1.0))], "bow.safe")
    tf = g.node("Mul", [g.node("Add", [g.node("Log", [safe], "bow.log"), g.const("bow.one2", np.array(1.0))],
                               "bow.tf1"), present], "bow.tf")
    ids = "term_ids"
    v = g.node("Mul", [tf, g.node("Gather", [g.const("bow.idf", np.concatenate(idf)), ids], "bow.idf_t", axis=0)],
               "bow.v")
    onehot = np.eye(n_parts, dtype=np.float64)[np.concatenate(part_of)]
    mask = g.node("Gather", [g.const("bow.parts", onehot), ids], "bow.mask", axis=0)  # (N, L, P)
    v3 = g.node("Unsqueeze", [v, g.const("bow.axis2", np.array([2], np.int64))], "bow.v3")
    sq = g.node("ReduceSum", [g.node("Mul", [g.node("Mul", [v3, v3], "bow.v2"), mask], "bow.v2p"),
                              g.const("bow.axis1", np.array([1], np.int64))], "bow.sq", keepdims=1)  # (N, 1, P)
    norm = g.node("Sqrt", [g.node("Max", [sq, g.const("bow.tiny", np.array(1e-300))], "bow.sqsafe")], "bow.norm")
    term_norm = g.node("ReduceSum", [g.node("Mul", [mask, norm], "bow.mn"),
                                     g.const("bow.axis2b", np.array([2], np.int64))], "bow.tnorm", keepdims=0)
    x = g.node("Div", [v, term_norm], "bow.x")  # (N, L)
    weights = g.node("Gather", [g.const("bow.wT", head.weight.astype(np.float64).T), ids], "bow.w", axis=0)
    contrib = g.node("Mul", [g.node("Unsqueeze", [x, "bow.axis2"], "bow.x3"), weights], "bow.contrib")
    z = g.node("ReduceSum", [contrib, "bow.axis1"], "bow.xw", keepdims=0)
    z = g.node("Add", [z, g.const("bow.b", head.bias.astype(np.float64))], "bow.logits")
    return g.node("Softmax", [z], "bow.proba", axis=-1)


def _token_pattern() -> str:
    from transferlab.features.tfidf import TOKEN_PATTERN

    return TOKEN_PATTERN


Exporter = Callable[[Path, dict[str, Any], Graph], str]
EXPORTERS: dict[str, Exporter] = {
    "features+head": export_features_head,
    "ensemble": export_ensemble,
    "network": export_network,
    "text_embedding+head": export_embedding_head,
    "text_tuned_embedding+head": export_tuned_embedding_head,
    "text_transformer": export_transformer,
    "text_tfidf+head": export_tfidf_head,
    "qa_reader": export_qa_reader,
}


def _read_config(model_dir: Path) -> tuple[dict[str, Any], list[str]]:
    try:
        config = json.loads((model_dir / "config.json").read_text())
        labels = json.loads((model_dir / "labels.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{model_dir}: not a transferlab model folder (no config.json / labels.json)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{model_dir}: damaged model folder ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("weights", {}), dict):
        raise UserError(f"{model_dir}: damaged model folder (config.json does not hold a model's settings)")
    if not isinstance(labels, list) or not all(isinstance(c, str | int | float) for c in labels):
        raise UserError(f"{model_dir}: damaged model folder (labels.json is not a list of class names)")
    return config, labels


def exportable(model_dir: str | Path) -> str | None:
    """None when the model saved in ``model_dir`` can be exported exactly, else the reason it cannot."""
    d = Path(model_dir)
    try:
        config, _ = _read_config(d)
    except UserError as exc:
        return str(exc)
    kind = config.get("weights", {}).get("kind")
    if kind not in EXPORTERS:
        return (f"a {kind!r} model ({config.get('strategy', {}).get('name', '?')}) has no exact ONNX export; "
                f"exportable kinds: {', '.join(EXPORTERS)}")
    if config["weights"].get("side_features"):
        return "this model also reads side columns (--feature-columns); export covers text-only models"
    if kind in ("features+head",) and (d / "head.json").exists():
        head_kind = json.loads((d / "head.json").read_text()).get("kind")
        if head_kind == "knn":
            return "a k-NN head keeps the training set and has no exact ONNX export; use a linear or MLP head"
    return None


def model_card(model_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """What the export carries about the model: strategy, backbone, metrics and the data report's summary."""
    def read(name: str) -> Any:
        try:
            return json.loads((model_dir / name).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    w = config.get("weights", {})
    report = read("data_report.json")
    summary = {k: v for k, v in (report or {}).items() if not isinstance(v, list | dict) or k == "class_counts"}
    return {"strategy": config.get("strategy", {}).get("name"),
            "backbone": w.get("backbone") or w.get("encoder") or w.get("base")
            or [m.get("backbone") for m in w.get("members", [])] or None,
            "metrics": read("metrics.json") or {}, "data_report": summary,
            "trained_with": config.get("versions", {}).get("transferlab"), "created": config.get("created")}


def build_graph(model_dir: str | Path) -> tuple[Any, dict[str, Any], dict[str, bytes]]:
    """The ONNX model, the ``export.json`` document and the extra files of the model saved in ``model_dir``."""
    d = Path(model_dir)
    config, labels = _read_config(d)
    reason = exportable(d)
    if reason is not None:
        raise UserError(f"{d}: cannot export: {reason}")
    g = Graph()
    out = EXPORTERS[config["weights"]["kind"]](d, config, g)
    output = QA_OUTPUT if config.get("task") == "qa" else "probabilities"
    model = g.build(out, len(labels), output)
    meta = {"format": EXPORT_FORMAT, "task": config.get("task", "image"), "labels": labels,
            "inputs": g.input_specs, "output": output, "kind": config["weights"]["kind"],
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S"), **model_card(d, config)}
    return model, meta, g.files


def export_model(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the export directory of the model saved in ``model_dir`` (atomically) and return its path."""
    from transferlab.model import atomic_dir

    d, target = Path(model_dir), Path(out_dir)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: a file is in the way (an export is a folder); choose another --out")
    if target.exists() and any(target.iterdir()) and not (target / "export.json").exists():
        raise UserError(f"{target}: folder exists and is not a transferlab export; choose another --out")
    model, meta, files = build_graph(d)
    data = model.SerializeToString()
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    with atomic_dir(target) as tmp:
        (tmp / "model.onnx").write_bytes(data)
        (tmp / "labels.json").write_text(json.dumps(meta["labels"], indent=2))
        for name, content in files.items():
            (tmp / name).write_bytes(content)
        (tmp / "export.json").write_text(json.dumps(meta, indent=2, default=str))
        shutil.copyfile(RUNTIME_SOURCE, tmp / "transferlab_runtime.py")
        (tmp / "README.md").write_text(_readme(meta))
    return target


def _readme(meta: dict[str, Any]) -> str:
    if meta["task"] == "qa":
        return (f"# Exported transferlab question-answering reader ({meta.get('strategy')})\n\n"
                "Needs only `onnxruntime`, `numpy`, `Pillow` and `tokenizers`.\n\n"
                "```python\nimport sys; sys.path.insert(0, 'THIS_FOLDER')\nfrom transferlab_runtime import load\n"
                "reader = load('THIS_FOLDER')\nprint(reader.answer(['Who?'], ['A passage.']))\n```\n\n"
                "`model.onnx` takes the token ids, attention mask and token type ids of (question, context) windows "
                "and returns `span_logits` (float32, start and end logit per token); `transferlab_runtime` cuts the "
                "windows and decodes the best span exactly as `transferlab qa ask` does.\n")
    kind = "image files" if meta["task"] == "image" else "texts"
    return (f"# Exported transferlab model ({meta.get('strategy')}, {meta['task']})\n\n"
            f"Needs only `onnxruntime`, `numpy`, `Pillow` and `tokenizers`. Classes: {', '.join(meta['labels'])}.\n\n"
            "```python\nimport sys; sys.path.insert(0, 'THIS_FOLDER')\nfrom transferlab_runtime import load\n"
            f"model = load('THIS_FOLDER')\nprint(model.predict([...]))  # {kind}\n```\n\n"
            "`model.onnx` takes " + ", ".join(f"`{s['name']}` ({s['kind']})" for s in meta["inputs"]) +
            " and returns `probabilities` (float64, one column per class in `labels.json`). `export.json` holds the "
            "preprocessing of each input and the model card.\n")
