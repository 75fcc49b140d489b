"""Predict with a saved model from inputs as a person names them: files, folders of images, texts, or a file of them.

This is where ``transferlab predict`` turns its arguments into model inputs, so that a script gets exactly what the
command line gets: folders expand to the files in them (sorted, hidden files left out) and a CSV/TSV with a ``path``
column to the paths it lists (relative to the CSV) for image models; for text models the arguments are the texts
themselves, and ``file`` is read as one text per line or, for a .csv/.tsv/.jsonl file, by the model's own text column
together with the side feature columns it was trained with.

:func:`predict_to_file` is the batch version for inputs of any size: it streams predictions into a CSV or JSONL
file batch by batch, and an interrupted run (Ctrl-C, SIGKILL, a crash) resumes where it stopped. Each batch's rows
are written and fsynced before a small sidecar, ``FILE.progress.json``, records them (replaced atomically); the
sidecar is the only record of what is done, so on resume anything in the output past its last record (a batch cut
off mid-write) is truncated away and predicted again, and nothing it records is predicted twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from transferlab.errors import UserError

OUTPUT_SUFFIXES = (".csv", ".jsonl")
CSV_COLUMNS = ["input", "label", "score", "probabilities", "error"]
"""Columns of a ``predict_to_file`` CSV: the input as given, the most likely label and its probability, the top-k
labels with their probabilities as a JSON object (most likely first, as in ``--json``), and for an input that could
not be used only ``input`` and ``error``."""
PROGRESS_FORMAT = 1


def expand_folders(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Each folder replaced by the files below it, in a stable order (sorted, walking subfolders; hidden files
    left out); anything else kept as given, so that a missing file is reported by the model as that input's error."""
    out: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            out.extend(_walk_files(item))
        else:
            out.append(item)
    return out


def _walk_files(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        yield from (os.path.join(root, f) for f in sorted(files) if not f.startswith("."))


def _is_path_table(path: object) -> bool:
    """A .csv/.tsv file whose header has a ``path`` column: a list of images, as training reads one."""
    if not (isinstance(path, str) and path.lower().endswith((".csv", ".tsv")) and os.path.isfile(path)):
        return False
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        header = next(csv.reader(f, delimiter="\t" if path.lower().endswith(".tsv") else ","), [])
    return "path" in (h.strip() for h in header)


def _table_paths(path: str) -> Iterator[str]:
    """The ``path`` column of a table, read row by row (a table of a million images is never held), relative paths
    taken relative to the table's folder."""
    base = os.path.dirname(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t" if path.lower().endswith(".tsv") else ","):
            p = (row.get("path") or "").strip()
            if p:
                yield p if os.path.isabs(p) else os.path.join(base, p)


def iter_image_inputs(inputs: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """The image files named by ``inputs``, lazily and in a stable order: a folder as :func:`expand_folders` walks it,
    a CSV/TSV with a ``path`` column as the paths it lists, anything else as given."""
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            yield from _walk_files(item)
        elif _is_path_table(item):
            yield from _table_paths(item)
        else:
            yield item


def read_inputs_file(path: str | os.PathLike[str], task: str, preprocessing: dict[str, Any]) -> list[Any]:
    """Inputs listed in a file. A text model reads a table by the columns it was trained on (rows become dicts
    when it uses side features); an image model reads a CSV/TSV with a ``path`` column by that column; anything
    else is one input per non-empty line."""
    from transferlab.data.texts import TEXT_SUFFIXES, read_lines, read_text_file

    tables = tuple(s for s in TEXT_SUFFIXES if s != ".txt")
    if task == "text" and os.fspath(path).lower().endswith(tables):
        text_column = preprocessing.get("text_column", "text")
        ds = read_text_file(path, text_column, None, feature_columns=preprocessing.get("feature_columns", []))
        return list(ds.rows(text_column))
    if task != "text" and _is_path_table(os.fspath(path)):
        return list(_table_paths(os.fspath(path)))
    return list(read_lines(path))


def _input_source(model: Any, inputs: Sequence[Any], file: str | os.PathLike[str] | None) -> Callable[[], Iterator]:
    """A function giving a fresh iterator over the inputs each call (the same ones, in the same order): image
    inputs are expanded lazily, so a folder of a million files is walked, not held."""
    items: list[Any] = list(inputs)
    if model.task == "text":
        if file is not None:
            items += read_inputs_file(file, model.task, model.config.get("preprocessing", {}))
        return lambda: iter(items)
    if file is not None:
        listed = os.fspath(file)
        items += [listed] if _is_path_table(listed) else read_inputs_file(listed, model.task, {})
    return lambda: iter_image_inputs(items)


def predict(model_dir: str | os.PathLike[str], inputs: Sequence[Any], file: str | os.PathLike[str] | None = None,
            top_k: int = 1) -> list[dict[str, Any]]:
    """One entry per input, in order: ``{"input", "label", "probabilities"}`` with the ``top_k`` most likely labels,
    or ``{"input", "error"}`` for an input that could not be used (the others are still predicted).

    ``inputs`` are image files, folders of images or CSVs with a ``path`` column for an image model, texts for a
    text model; ``file`` adds the inputs it lists after them. Raises :class:`UserError` when there is nothing to
    predict or ``top_k`` < 1.
    """
    from transferlab.model import Model

    if top_k < 1:
        raise UserError(f"top_k must be >= 1, got {top_k}")
    model = Model.load(model_dir)
    if model.task == "text":
        _note_paths_read_as_texts(inputs)
    items = list(_input_source(model, inputs, file)())
    if not items:
        raise UserError("no texts to predict" if model.task == "text" else "no input files found")
    return model.predict(items, top_k=top_k)


def _note_paths_read_as_texts(inputs: Sequence[Any]) -> None:
    """A text model reads each argument as a text: say so when one names a file or folder (an image, or a file of
    texts meant for --file), which it then classifies as the words of its name."""
    from transferlab.progress import log

    for value in inputs:
        if not isinstance(value, str) or not value or value.strip() != value or " " in value:
            continue
        try:
            kind = "folder" if Path(value).is_dir() else "file" if Path(value).is_file() else None
        except (OSError, ValueError):  # a text too long for a file name, or with a NUL in it
            continue
        if kind:
            log(f"note: {value!r} is a {kind}, but a text model reads each argument as a text to classify (its "
                "name, here); --file FILE reads the texts in a file")


# --- streamed, resumable prediction into a file -------------------------------------------------------------------
def progress_path(out: str | os.PathLike[str]) -> Path:
    """The sidecar that records how far ``predict_to_file`` got with ``out``: ``FILE.progress.json``."""
    out = Path(out)
    return out.with_name(out.name + ".progress.json")


def _shown(value: Any) -> str:
    """An input as one CSV cell (and as hashed): a path or text as it is, anything else (a row of a text table) as
    JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _fingerprint(items: Iterator[Any]) -> tuple[int, str]:
    """(how many inputs, a SHA-256 over them in order): what a resumed run must find again."""
    h = hashlib.sha256()
    n = 0
    for item in items:
        s = _shown(item).encode("utf-8", "surrogatepass")
        h.update(b"%d:" % len(s))
        h.update(s)
        n += 1
    return n, h.hexdigest()


def _model_digest(model_dir: str | os.PathLike[str]) -> str:
    """The saved model's identity: its config (which carries the time it was saved, so a retrained model in the same
    folder differs) and its labels."""
    h = hashlib.sha256()
    for name in ("config.json", "labels.json"):
        h.update(Path(model_dir, name).read_bytes())
    return h.hexdigest()


def _encode(entries: list[dict[str, Any]], kind: str) -> bytes:
    """One batch's rows as bytes; a file name that is not UTF-8 comes out as its own bytes, not as an exception."""
    if kind == ".jsonl":
        text = "".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in entries)
        return text.encode("utf-8", "surrogateescape")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for e in entries:
        if "error" in e:
            w.writerow([_shown(e["input"]), "", "", "", e["error"]])
        else:
            probs = e["probabilities"]
            top = json.dumps(probs, ensure_ascii=False)
            w.writerow([_shown(e["input"]), e["label"], repr(probs[e["label"]]), top, ""])
    return buf.getvalue().encode("utf-8", "surrogateescape")


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Replace the sidecar atomically: a kill leaves the old record or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _mismatch(record: dict[str, Any], identity: dict[str, Any]) -> str | None:
    """What differs between a sidecar and this run, in words; None when the run may continue the file."""
    if record.get("format") != identity["format"]:
        return "a record this version cannot continue"
    if record.get("model") != identity["model"]:
        return "predictions of another model"
    if record.get("inputs") != identity["inputs"] or record.get("total") != identity["total"]:
        return f"predictions of other inputs ({record.get('total')} then, {identity['total']} now)"
    if record.get("top_k") != identity["top_k"]:
        return f"predictions with --top-k {record.get('top_k')}"
    return None


def _resume_point(out_size: int | None, out: Path, sidecar: Path, identity: dict[str, Any],
                  resume: bool) -> dict[str, Any] | None:
    """The sidecar record to continue from, or None to start afresh (``out_size`` is None when ``out`` did not
    exist). Raises :class:`UserError` rather than mix two runs' rows in one file, or overwrite a file that is not an
    unfinished prediction."""
    for stale in sidecar.parent.glob(f".{sidecar.name}.tmp*"):  # a record being written when a run was killed
        stale.unlink(missing_ok=True)
    if not resume:
        sidecar.unlink(missing_ok=True)
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        record = "damaged"
    if record is None:
        if out_size:
            raise UserError(f"{out} exists and is not an interrupted prediction (no {sidecar.name}); pass --restart "
                            "to overwrite it, or choose another --out")
        return None
    why = _mismatch(record, identity) if isinstance(record, dict) else "a damaged progress record"
    if why is not None:
        raise UserError(f"{out} holds {why}; pass --restart to start it over, or choose another --out")
    if out_size is None:
        return None  # the output was deleted: nothing to continue, nothing to mix
    if out_size < int(record["bytes"]):
        raise UserError(f"{out} is shorter than {sidecar.name} records (edited or damaged?); pass --restart to "
                        "start it over")
    return record


def _lock(f: Any, out: Path) -> None:
    """One writer per output file: a second run on the same ``out`` stops instead of interleaving rows."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one run at a time is up to the user
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise UserError(f"{out} is being written by another transferlab predict; wait for it, or choose another "
                        "--out") from None


def predict_to_file(model_dir: str | os.PathLike[str], inputs: Sequence[Any], out: str | os.PathLike[str],
                    file: str | os.PathLike[str] | None = None, top_k: int = 1, batch_size: int = 64,
                    resume: bool = True) -> dict[str, Any]:
    """Predict ``inputs`` (as :func:`predict` reads them) batch by batch into ``out``, a .csv or .jsonl file, and
    return a summary: ``total`` inputs, ``predicted`` (labelled) and ``failed`` (error rows) in this run,
    ``skipped_as_done`` (rows kept from an earlier, interrupted run), ``errors_in_output`` (error rows in the whole
    file), ``already_complete`` and ``seconds``.

    JSONL rows are exactly :meth:`Model.predict`'s entries; CSV rows have the columns :data:`CSV_COLUMNS`. An input
    that cannot be used (not an image, empty, missing) is a row with its ``error``, never a failed run. Memory stays
    flat in the number of inputs: inputs are listed lazily, one batch is predicted at a time and its rows are written
    (and fsynced) before the next starts.

    With ``resume`` (the default) a run of the same model, inputs and ``top_k`` into the same ``out`` continues
    after the rows an earlier run recorded in ``FILE.progress.json``; a run that finished is not predicted again (the
    sidecar stays, marked complete). A sidecar of another model, other inputs or another ``top_k``, or an ``out``
    without a sidecar, is a :class:`UserError`; ``resume=False`` starts over. ``batch_size`` may change between runs.
    """
    from transferlab.model import Model
    from transferlab.progress import log

    started = time.perf_counter()
    out = Path(out)
    kind = out.suffix.lower()
    if kind not in OUTPUT_SUFFIXES:
        raise UserError(f"--out {out}: give a .csv or .jsonl file")
    if top_k < 1:
        raise UserError(f"top_k must be >= 1, got {top_k}")
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a .csv or .jsonl file")
    model = Model.load(model_dir)
    source = _input_source(model, inputs, file)
    total, digest = _fingerprint(source())
    if total == 0:
        raise UserError("no texts to predict" if model.task == "text" else "no input files found")
    identity = {"format": PROGRESS_FORMAT, "model": _model_digest(model_dir), "inputs": digest, "total": total,
                "top_k": top_k}
    sidecar = progress_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existed = out.exists()
    with os.fdopen(os.open(out, os.O_RDWR | os.O_CREAT, 0o666), "r+b") as f:
        try:
            _lock(f, out)
            record = _resume_point(os.fstat(f.fileno()).st_size if existed else None, out, sidecar, identity, resume)
        except BaseException:
            if not existed:
                out.unlink(missing_ok=True)
            raise
        if record is not None and record.get("complete"):
            log(f"{out}: already complete ({total} inputs); pass --restart to predict them again")
            return {"out": str(out), "total": total, "predicted": 0, "failed": 0, "skipped_as_done": total,
                    "errors_in_output": int(record.get("errors", 0)), "already_complete": True,
                    "seconds": round(time.perf_counter() - started, 3)}
        if record is None:
            record = {**identity, "batch_size": batch_size, "rows": 0, "bytes": 0, "errors": 0, "complete": False}
            _write_record(sidecar, record)  # before the file is touched: from here a kill leaves a resumable pair
        record["batch_size"] = batch_size
        kept = int(record["rows"])
        if kept:
            log(f"{out}: resuming after {kept} of {total} rows")
        predicted, failed = _stream(model, itertools.islice(source(), kept, None), f, kind, record, sidecar,
                                    top_k, batch_size)
    if record["rows"] != total:
        raise UserError(f"the inputs changed while predicting ({total} listed, {record['rows']} found); pass "
                        "--restart to start over")
    record["complete"] = True
    _write_record(sidecar, record)
    return {"out": str(out), "total": total, "predicted": predicted, "failed": failed, "skipped_as_done": kept,
            "errors_in_output": int(record["errors"]), "already_complete": False,
            "seconds": round(time.perf_counter() - started, 3)}


def _stream(model: Any, items: Iterator[Any], f: Any, kind: str, record: dict[str, Any], sidecar: Path, top_k: int,
            batch_size: int) -> tuple[int, int]:
    """Append the predictions of ``items`` to ``f`` after ``record["bytes"]``, one batch at a time, recording each
    batch in ``sidecar`` once its rows are durable; (labelled, failed) rows written."""
    from transferlab import runtime
    from transferlab.progress import progress_bar

    predicted = failed = 0
    try:
        f.truncate(int(record["bytes"]))  # a batch cut off mid-write was never recorded: it goes, and is redone
        f.seek(int(record["bytes"]))
        if record["bytes"] == 0 and kind == ".csv":
            record["bytes"] = _append(f, (",".join(CSV_COLUMNS) + "\n").encode())
            _write_record(sidecar, record)
        unit = "text" if model.task == "text" else "img"
        with progress_bar(total=record["total"], initial=record["rows"], desc="predicting", unit=unit,
                          enabled=runtime.show_progress()) as bar:
            while batch := list(itertools.islice(items, batch_size)):
                with runtime.settings(progress=False):  # one bar over all inputs, not one per batch
                    entries = model.predict(batch, top_k=top_k)
                errors = sum("error" in e for e in entries)
                record["bytes"] += _append(f, _encode(entries, kind))
                record["rows"] += len(entries)
                record["errors"] += errors
                _write_record(sidecar, record)  # only now is the batch done
                failed += errors
                predicted += len(entries) - errors
                bar.update(len(entries))
    except BaseException:
        try:  # leave the file as recorded (a resume would truncate it anyway)
            f.truncate(int(record["bytes"]))
        except OSError:
            pass
        raise
    return predicted, failed


def _append(f: Any, data: bytes) -> int:
    """Write ``data`` at the file's position and make it durable before anything records it; its length."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
    return len(data)
