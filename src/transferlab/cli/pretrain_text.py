"""``transferlab pretrain-text``: a text backbone adapted to the user's own unlabelled corpus."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import print_json, seed_int
from transferlab.errors import UserError

HELP = "adapt to your own unlabelled texts: word2vec vectors or MiniLM MLM"


def add_parser(subparsers: Any) -> None:
    """Register ``pretrain-text``."""
    p = subparsers.add_parser("pretrain-text", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="""
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
    p.add_argument("--seed", type=seed_int, default=0, help="seed for sampling and initialisation (default 0)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace) -> int:
    """Pretrain through the workflow and say how to use the folder it wrote."""
    from transferlab.workflows.pretrain_text import pretrain_text

    if args.mlm and args.method not in (None, "mlm"):
        raise UserError(f"--mlm and --method {args.method} contradict each other")
    method = "mlm" if args.mlm else (args.method or "skipgram")
    manifest = pretrain_text(args.corpus, args.out, method=method, text_column=args.text_column, dim=args.dim,
                             epochs=args.epochs, window=args.window, min_count=args.min_count,
                             max_steps=args.max_steps, batch_size=args.batch_size, max_length=args.max_length,
                             lr=args.lr, base=args.base, seed=args.seed, sample=args.sample)
    if args.json:
        print_json({**manifest, "out": args.out})
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
