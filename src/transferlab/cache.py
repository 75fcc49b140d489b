"""The on-disk feature cache, shared by every strategy, analysis and later run.

Keys are content-based: a *feature key* (backbone + weights + preprocessing + output name) and the SHA-1 of the image
file's bytes, so renamed or copied files hit the cache and edited files miss it. Files that could not be decoded are
remembered too (with their reason), so a warm run reports them without decoding again.

Storage is one SQLite file: each batch is one transaction, so an interrupted extraction keeps every finished batch
and never leaves a torn entry. Prediction opens it read-only (see :class:`FeatureCache`): served requests never grow it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    """``$TRANSFERLAB_CACHE``, else ``$XDG_CACHE_HOME/transferlab``, else ``~/.cache/transferlab``."""
    env = os.environ.get("TRANSFERLAB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "transferlab"


def file_digest(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class FeatureCache:
    """Vectors by (feature key, content digest); failures by (decoder key, content digest).

    ``read_only=True`` is the cache a prediction uses: it reads whatever earlier runs stored (hits are free) but never
    writes, so a server answering requests on images it has never seen does not grow the file, and several
    processes may read it while a training run writes. The database is opened through a ``mode=ro`` URI; ``put_*``
    do nothing; a missing database file simply has no entries (until a writer creates it).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, read_only: bool = False) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / "features.sqlite"
        self.read_only = read_only
        self._db: sqlite3.Connection | None = None
        if read_only:
            self._connect_read_only()
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT, digest TEXT, dim INTEGER, data BLOB,"
            " PRIMARY KEY (key, digest))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS failures (digest TEXT PRIMARY KEY, reason TEXT)")
        self._db.commit()

    def _connect_read_only(self) -> sqlite3.Connection | None:
        """The read-only connection, opened on first use after the database file exists (None before that).

        Reads only, so one connection may serve several threads (a server's request threads)."""
        if self._db is None and self.path.is_file():
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)
        return self._db

    def _select(self, sql: str, args: list[str]) -> list[tuple]:
        """Rows of one query. Read-only, a database that is still empty (a writer is creating it) has no rows."""
        if not self.read_only:
            assert self._db is not None, "the cache is closed"
            return self._db.execute(sql, args).fetchall()
        db = self._connect_read_only()
        if db is None:
            return []
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- vectors ----------------------------------------------------------------------------------------------
    def get_many(self, key: str, digests: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._select(
                f"SELECT digest, data FROM vectors WHERE key = ? AND digest IN ({marks})", [key, *chunk]
            )
            for digest, blob in rows:
                found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, key: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        if self.read_only:
            return
        assert self._db is not None, "the cache is closed"
        rows = [(key, d, int(v.shape[-1]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for d, v in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)

    # --- files that failed to decode --------------------------------------------------------------------------
    def get_failures(self, digests: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, reason in self._select(
                f"SELECT digest, reason FROM failures WHERE digest IN ({marks})", chunk
            ):
                found[digest] = reason
        return found

    def put_failures(self, items: Iterable[tuple[str, str]]) -> None:
        if self.read_only:
            return
        assert self._db is not None, "the cache is closed"
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?)", list(items))

    def stats(self) -> dict[str, int]:
        rows = self._select("SELECT COUNT(*) FROM vectors", [])
        n = rows[0][0] if rows else 0
        return {"vectors": int(n), "bytes": self.path.stat().st_size if self.path.exists() else 0}
