"""The ``transferlab`` command line: a thin layer over the Python API.

Everything a person reads also exists for scripts: ``--json`` prints one JSON document on stdout (progress and logs
go to stderr) and commands that train write their results into ``--out DIR``. Exit codes: 0 success, 2 bad input or
usage (one clear line on stderr, no traceback), 1 anything else, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from transferlab.errors import UserError

EPILOG_DATA = """\
DATA can be:
  a folder with train/ and val/ (or valid/, test/), each with one subfolder per class;
  a single folder with one subfolder per class (split by --val-fraction, stratified, with --seed);
  a CSV with columns path,label (paths relative to the CSV; split the same way).
Unreadable files (empty, truncated, not an image, too large) are left out and listed in the data report.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        raise UserError(message)


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise UserError(f"--param needs KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _common_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of each class held out for evaluation when DATA has no eval split (default 0.2)")
    p.add_argument("--eval-split", default=None, help="name of the evaluation folder (default: val, valid or test)")
    p.add_argument("--seed", type=int, default=0, help="seed for splits and training (default 0)")


def _text_column_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", default="text", help="text data: column of the texts (default text)")
    p.add_argument("--label-column", default="label", help="text data: column of the labels (default label)")


def _task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=["image", "text"], default=None,
                   help="kind of data (default: text when DATA is a CSV/TSV/JSONL with a text column or a folder with "
                   "train.csv, else image)")
    _text_column_args(p)


def _is_text(args: argparse.Namespace) -> bool:
    if args.task is not None:
        return args.task == "text"
    from transferlab.data.texts import looks_like_text_data

    return looks_like_text_data(args.data, args.text_column)


def build_parser() -> argparse.ArgumentParser:
    from transferlab.backbones import DEFAULT_BACKBONE

    parser = _Parser(prog="transferlab", description=(
        "Transfer learning for small labelled datasets, offline, on a CPU. Bring a folder of images per class; "
        "transferlab adapts a pretrained network to it, evaluates it and saves a model you can predict with."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with:  transferlab train photos/ --out mymodel/   then   transferlab predict mymodel/ img.jpg")
    parser.add_argument("--cache-dir", default=None,
                        help="feature cache folder (default $TRANSFERLAB_CACHE or ~/.cache/transferlab)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or logs on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train and evaluate a model on a labelled folder or CSV",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_DATA + """
Strategies (see `transferlab strategies`):
  headless     frozen backbone features + logistic regression (fast, strong on small data; the default)
  frozen_head  frozen backbone + a small neural head with early stopping
  finetune, finetune_top, gradual_unfreeze, from_scratch   train the network itself (minutes; --resume)
  auto         measure the data, pick, say why. Images: size, closeness to ImageNet, the backbone `rank` puts
               first. Text: examples per class (few -> text_fewshot), text length and amount (plenty of short
               texts -> text_finetune), else 3-fold cross-validation of bow, text_headless and text_hybrid
Examples:
  transferlab train photos/ --out ants_bees/
  transferlab train photos/ --backbone efficientnet_lite2 --strategy headless --param classifier=svm
""")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", required=False, default=None, help="folder to save the model into")
    p.add_argument("--task", choices=["image", "text"], default=None,
                   help="kind of data (default: text when DATA is a CSV/TSV/JSONL with a text column or a folder with "
                   "train.csv, else image)")
    _text_column_args(p)
    p.add_argument("--feature-columns", default=None, metavar="COL,COL",
                   help="text data: side columns joined to the text features (numeric ones standardised, categorical "
                   "ones one-hot with a 'missing' level; force a kind with COL:numeric or COL:categorical); for bow, "
                   "text_headless and text_fewshot")
    p.add_argument("--backbone", default=None, help=f"pretrained network (default {DEFAULT_BACKBONE}; "
                   "see `transferlab models`); for headless_ensemble several joined by + (default: all, of which "
                   "the two rank puts first are used); for text, a folder from `transferlab pretrain-text`")
    p.add_argument("--strategy", default="headless", help="how to adapt the network (default headless)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy parameter, e.g. classifier=svm, C=0.5, hidden=0 (repeatable)")
    p.add_argument("--json", action="store_true", help="print metrics as JSON on stdout")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (same DATA, --out and parameters) from its last complete epoch; "
                   "for strategies that train a network (finetune, finetune_top, gradual_unfreeze, from_scratch)")
    _common_data_args(p)

    p = sub.add_parser("predict", help="predict labels of images (or texts) with a saved model")
    p.add_argument("model_dir", metavar="DIR")
    p.add_argument("inputs", metavar="INPUT", nargs="*",
                   help="image files (or folders of images); for a text model, the texts themselves")
    p.add_argument("--file", default=None, help="also read inputs from this file, one per line; for a text model a "
                   ".csv/.tsv/.jsonl file is read by column (the text column and any side feature columns)")
    p.add_argument("--top-k", type=int, default=3, help="how many labels to show per input (default 3)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("evaluate", help="metrics of a saved model on another labelled folder or CSV")
    p.add_argument("model_dir", metavar="DIR")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", default=None, help="also write metrics.json, confusion_matrix.png, mistakes here")
    p.add_argument("--eval-split", default=None)
    p.add_argument("--text-column", default=None, help="text models: column of the texts (default: as trained)")
    p.add_argument("--label-column", default=None, help="text models: column of the labels (default: as trained)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("compare", help="run strategies x backbones side by side; leaderboard, report, best model",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_DATA + """
The default set is fast: headless on every backbone, headless_ensemble (the two backbones rank puts first, their
probabilities averaged), headless on mid-layer features and frozen_head on the default backbone; --thorough adds
finetune, gradual_unfreeze and from_scratch (minutes each). Finished runs are cached, so a second compare on the same
data is quick. A strategy may carry parameters: --strategies headless:classifier=svm
Text (a CSV/TSV/JSONL, or a folder with train.csv): bow, text_headless on MiniLM and on GloVe, text_hybrid and,
when the class names are words, text_zeroshot; --thorough adds text_finetune, text_embedding_cnn and (64 or fewer
examples per class) text_fewshot. Pick encoders through parameters: --strategies text_headless:encoder=glove
Examples:
  transferlab compare photos/ --out bakeoff/     then open bakeoff/report.html
  transferlab compare reviews.csv --out bakeoff/ --thorough
""")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", default=None, help="folder for leaderboard.{json,csv,md}, report.html and best/")
    p.add_argument("--strategies", nargs="+", default=None, metavar="S", help="strategies to try (default: a fast set)")
    p.add_argument("--backbones", nargs="+", default=None, metavar="B", help="backbones to try (default: all)")
    p.add_argument("--thorough", action="store_true", help="also fine-tune (full, gradual) and train from scratch")
    p.add_argument("--seeds", type=int, default=3, help="runs per candidate (default 3)")
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    _task_args(p)
    p.add_argument("--feature-columns", default=None, metavar="COL,COL",
                   help="text data: side columns joined to the features of the candidates with a classifier head")
    _common_data_args(p)

    p = sub.add_parser("rank", help="which backbone will transfer best, from cached features, in seconds",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""
Scores (higher is better), computed on the training split's frozen features without training (for text: the
MiniLM and mean-pooled GloVe encoders, or pretrain-text folders given to --backbones):
  logme     LogME, the evidence of a Bayesian linear model from features to labels (the ranking score)
  h_score   H-score: between-class over total feature covariance
  knn_loo   leave-one-out 5-nearest-neighbour accuracy
  imagenet_confidence   mean top-1 probability of the backbone's ImageNet head: how ImageNet-like the data is
""")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--backbones", nargs="+", default=None, metavar="B",
                   help="image backbones (default: all); for text: minilm, glove or pretrain-text folders")
    p.add_argument("--json", action="store_true")
    _task_args(p)
    _common_data_args(p)

    p = sub.add_parser("pretrain-text", help="adapt to your own unlabelled texts: word2vec vectors or MiniLM MLM",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""
CORPUS is a .txt file (one document per line) or a CSV/TSV/JSONL file with a text column (--text-column).
  --method skipgram | cbow   word2vec word vectors (gensim) for text_embedding_cnn / text_embedding_rnn
  --method mlm (or --mlm)    masked-language-model training of MiniLM continued on the corpus, for text_finetune,
                             text_headless and text_fewshot
The folder DIR is then a backbone: transferlab train DATA --task text --strategy S --backbone DIR
Examples:
  transferlab pretrain-text reviews.txt --out vectors/ --method skipgram --dim 100 --epochs 10
  transferlab train reviews.csv --task text --strategy embedding_cnn --backbone vectors/ --out m/
  transferlab pretrain-text reviews.txt --out minilm_reviews/ --mlm --max-steps 300
  transferlab train reviews.csv --task text --strategy finetune --backbone minilm_reviews/ --out m2/
""")
    p.add_argument("corpus", metavar="CORPUS")
    p.add_argument("--out", required=True, help="folder to write the backbone into")
    p.add_argument("--method", choices=["skipgram", "cbow", "mlm"], default=None,
                   help="skipgram (default), cbow, or mlm")
    p.add_argument("--mlm", action="store_true", help="the same as --method mlm")
    p.add_argument("--text-column", default="text", help="CSV/JSONL corpora: column of the texts (default text)")
    p.add_argument("--dim", type=int, default=100, help="word vectors: dimensions (default 100)")
    p.add_argument("--epochs", type=int, default=5, help="word vectors: passes over the corpus (default 5)")
    p.add_argument("--window", type=int, default=5, help="word vectors: context window (default 5)")
    p.add_argument("--min-count", type=int, default=2, help="word vectors: ignore rarer words (default 2)")
    p.add_argument("--sample", type=float, default=1e-3,
                   help="word vectors: down-sampling of frequent words (default 1e-3; 0 for none)")
    p.add_argument("--max-steps", type=int, default=300, help="mlm: training steps (default 300)")
    p.add_argument("--batch-size", type=int, default=16, help="mlm: texts per step (default 16)")
    p.add_argument("--max-length", type=int, default=128, help="mlm: tokens per text (default 128)")
    p.add_argument("--lr", type=float, default=5e-5, help="mlm: learning rate of the body (default 5e-5)")
    p.add_argument("--base", default=None, help="mlm: continue from an earlier mlm folder (default: MiniLM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")

    p = sub.add_parser("example-data", help="write a small labelled dataset shipped in an installed package")
    p.add_argument("name", choices=["digits"], help="digits: scikit-learn's handwritten digits, 40 per class")
    p.add_argument("--out", required=True, help="folder to write class folders into")

    p = sub.add_parser("models", help="the pretrained backbones available offline")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("strategies", help="the strategies and their parameters")
    p.add_argument("--json", action="store_true")
    return parser


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def _metrics_table(metrics: dict[str, Any]) -> str:
    keys = ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "count", "train_seconds"]
    lines = []
    for k in keys:
        v = metrics.get(k)
        if v is None:
            continue
        lines.append(f"  {k:<18} {v:.4f}" if isinstance(v, float) else f"  {k:<18} {v}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from transferlab.workflows.train import train

    params = dict(_parse_param(t) for t in args.param)
    result = train(args.data, out=args.out, strategy=args.strategy, backbone=args.backbone, params=params,
                   seed=args.seed, val_fraction=args.val_fraction, eval_split=args.eval_split,
                   resume=args.resume, task=args.task, text_column=args.text_column,
                   label_column=args.label_column, feature_columns=args.feature_columns)
    if args.json:
        _print_json({k: v for k, v in result.metrics.items()} | {"out": str(result.out) if result.out else None,
                                                                 "skipped": result.report.skipped})
    else:
        source = "text" if result.model.task == "text" else result.model.config.get("backbone", args.backbone)
        name = result.model.config["strategy"]["name"]
        if "auto" in result.metrics:
            print(f"auto chose {name} on {source}: {result.metrics['auto']['reason']}")
        print(f"{name} on {source}, evaluation split ({result.metrics['count']} items):")
        print(_metrics_table(result.metrics))
        if result.out:
            print(f"saved to {result.out}/ (metrics.json, confusion_matrix.png, data_report.json)")
    return 0


def _expand_inputs(inputs: Sequence[str]) -> list[str]:
    out = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
        else:
            out.append(item)
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    from transferlab.model import Model

    if args.top_k < 1:
        raise UserError("--top-k must be >= 1")
    model = Model.load(args.model_dir)
    lines: list[Any] = []
    if args.file:
        from transferlab.data.texts import TEXT_SUFFIXES, read_lines, read_text_file

        pre = model.config.get("preprocessing", {})
        if model.task == "text" and args.file.lower().endswith(tuple(s for s in TEXT_SUFFIXES if s != ".txt")):
            text_column = pre.get("text_column", "text")
            ds = read_text_file(args.file, text_column, None, feature_columns=pre.get("feature_columns", []))
            lines = ds.rows(text_column)
        else:
            lines = read_lines(args.file)
    inputs = list(args.inputs) + lines if model.task == "text" else _expand_inputs(list(args.inputs) + lines)
    if not inputs:
        raise UserError("no input files found")
    predictions = model.predict(inputs, top_k=args.top_k)
    if args.json:
        _print_json({"predictions": predictions})
    else:
        for p in predictions:
            if "error" in p:
                print(f"{p['input']}: ERROR {p['error']}")
            else:
                probs = ", ".join(f"{k} {v:.3f}" for k, v in p["probabilities"].items())
                print(f"{p['input']}: {p['label']}  ({probs})")
    failed = [p for p in predictions if "error" in p]
    for p in failed:
        print(f"error: {p['input']}: {p['error']}", file=sys.stderr)
    return 2 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from transferlab.workflows.train import evaluate

    metrics = evaluate(args.model_dir, args.data, out=args.out, eval_split=args.eval_split,
                       text_column=args.text_column, label_column=args.label_column)
    if args.json:
        _print_json(metrics)
    else:
        print(_metrics_table(metrics))
        for s in metrics.get("skipped", []):
            print(f"  skipped {s['path']}: {s['reason']}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from transferlab.backbones import list_backbones
    from transferlab.benchmarks_data import measured_speed

    rows = []
    for spec in list_backbones():
        info = spec.info()
        info["images_per_second"] = measured_speed(spec.name)
        rows.append(info)
    if args.json:
        _print_json({"models": rows})
    else:
        print(f"{'name':<20}{'modality':<10}{'params':>8}{'features':>10}{'input':>7}{'ImageNet':>10}{'img/s':>8}")
        for r in rows:
            speed = f"{r['images_per_second']:.0f}" if r["images_per_second"] else "-"
            print(f"{r['name']:<20}{r['modality']:<10}{r['params_millions']:>7.2f}M{r['feature_dim']:>10}"
                  f"{r['input_size']:>6}px{r['imagenet_top1'] or 0:>9.1f}%{speed:>8}")
        print("img/s: frozen feature extraction on 2 CPU cores (ONNX Runtime, batch 32), "
              "from benchmarks/extraction_speed.py")
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    from transferlab.strategies import get_strategy_class, strategy_names

    rows = []
    for name in strategy_names():
        cls = get_strategy_class(name)
        rows.append({"name": name, "modality": cls.modality, "summary": cls.summary, "params": cls().get_params()})
    if args.json:
        _print_json({"strategies": rows})
    else:
        width = max(len(r["name"]) for r in rows) + 2
        for r in rows:
            print(f"{r['name']:<{width}}[{r['modality']}] {r['summary']}")
            print(" " * width + ", ".join(f"{k}={v}" for k, v in r["params"].items()))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from transferlab.workflows.compare import compare, terminal_table

    if _is_text(args):
        from transferlab.workflows.compare_text import compare_text

        if args.backbones:
            raise UserError("--backbones is for images; for text pick encoders through strategies, e.g. "
                            "--strategies bow text_headless text_headless:encoder=glove")
        result = compare_text(args.data, out=args.out, strategies=args.strategies, thorough=args.thorough,
                              seeds=args.seeds, seed=args.seed, val_fraction=args.val_fraction,
                              eval_split=args.eval_split, text_column=args.text_column,
                              label_column=args.label_column, feature_columns=args.feature_columns)
    else:
        if args.feature_columns:
            raise UserError("--feature-columns is for text data (--task text)")
        result = compare(args.data, out=args.out, strategies=args.strategies, backbones=args.backbones,
                         thorough=args.thorough, seeds=args.seeds, seed=args.seed, val_fraction=args.val_fraction,
                         eval_split=args.eval_split)
    if args.json:
        _print_json({"leaderboard": result.rows, "protocol": result.protocol, "winner": result.winner,
                     "advice": result.advice, "warning": result.warning, "seconds": result.seconds,
                     "cached_runs": result.cached_runs})
        return 0
    print(f"protocol: {result.protocol}; {result.seconds:.1f} s ({result.cached_runs} runs from the cache)")
    print(terminal_table(result.rows))
    if result.advice:
        print(f"advice: {result.advice['reason']}")
    if result.warning:
        print(f"warning: {result.warning}")
    if args.out:
        print(f"wrote {args.out}/leaderboard.json, leaderboard.csv, leaderboard.md, report.html; winner in "
              f"{args.out}/best/")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    text = _is_text(args)
    if text:
        from transferlab.workflows.compare_text import rank_text

        rows = rank_text(args.data, backbones=args.backbones, val_fraction=args.val_fraction, seed=args.seed,
                         eval_split=args.eval_split, text_column=args.text_column, label_column=args.label_column)
    else:
        from transferlab.workflows.rank import rank

        rows = rank(args.data, backbones=args.backbones, val_fraction=args.val_fraction, seed=args.seed,
                    eval_split=args.eval_split)
    if args.json:
        _print_json({"ranking": rows})
        return 0
    # text: how many rows were scored (a sample of large data); images: how ImageNet-like the data is
    name, extra, width = ("encoder", "rows", 7) if text else ("backbone", "imagenet_conf", 15)
    print(f"{'rank':<6}{name:<22}{'logme':>8}{'h_score':>9}{'knn_loo':>9}{extra:>{width}}{'seconds':>9}")
    for r in rows:
        value = str(r["scored_rows"]) if text else f"{r['imagenet_confidence']:.3f}"
        seconds = r.get("embed_seconds", 0.0) + r["score_seconds"]
        print(f"{r['rank']:<6}{r['backbone']:<22}{r['logme']:>8.3f}{r['h_score']:>9.3f}{r['knn_loo']:>9.3f}"
              f"{value:>{width}}{seconds:>9.2f}")
    return 0


def cmd_pretrain_text(args: argparse.Namespace) -> int:
    from transferlab.workflows.pretrain_text import pretrain_text

    if args.mlm and args.method not in (None, "mlm"):
        raise UserError(f"--mlm and --method {args.method} contradict each other")
    method = "mlm" if args.mlm else (args.method or "skipgram")
    manifest = pretrain_text(args.corpus, args.out, method=method, text_column=args.text_column, dim=args.dim,
                             epochs=args.epochs, window=args.window, min_count=args.min_count,
                             max_steps=args.max_steps, batch_size=args.batch_size, max_length=args.max_length,
                             lr=args.lr, base=args.base, seed=args.seed, sample=args.sample)
    if args.json:
        _print_json({**manifest, "out": args.out})
        return 0
    if manifest["kind"] == "word_vectors":
        print(f"{method} word vectors: {manifest['vocab_size']} words x {manifest['dim']} dimensions from "
              f"{manifest['documents']} documents ({manifest['seconds']:.1f} s)")
        use = "--strategy embedding_cnn (or embedding_rnn)"
    else:
        print(f"MLM on {manifest['documents']} documents, {manifest['params']['max_steps']} steps: loss "
              f"{manifest['mlm_loss_before']:.3f} -> {manifest['mlm_loss_after']:.3f} ({manifest['seconds']:.1f} s)")
        use = "--strategy finetune (or headless, fewshot)"
    print(f"saved to {args.out}/; use it with: transferlab train DATA --task text {use} --backbone {args.out}")
    return 0


def cmd_example_data(args: argparse.Namespace) -> int:
    from transferlab.examples import write_example

    root = write_example(args.name, args.out)
    print(f"wrote {args.name} to {root}/ (one folder per class)")
    return 0


COMMANDS = {"compare": cmd_compare, "rank": cmd_rank, "example-data": cmd_example_data, "train": cmd_train,
            "pretrain-text": cmd_pretrain_text,
            "predict": cmd_predict, "evaluate": cmd_evaluate,
            "models": cmd_models, "strategies": cmd_strategies}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        from transferlab import runtime

        runtime.configure(cache_directory=args.cache_dir, progress=not args.quiet)
        if args.quiet:
            os.environ["TRANSFERLAB_QUIET"] = "1"
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"transferlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transferlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("TRANSFERLAB_DEBUG"):
            raise
        print(f"transferlab: unexpected error: {type(exc).__name__}: {exc} "
              "(set TRANSFERLAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
