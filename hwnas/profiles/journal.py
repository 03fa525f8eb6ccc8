"""Crash-safe row storage: an append-only JSON-lines journal compacted into Parquet.

Each measured row is appended to ``<table>.journal.jsonl`` as one line and fsynced before the
profiler moves on, so ``kill -9`` loses at most the row in flight. A torn last line (the process
died mid-write) is ignored on reading and cut off before the next append. Compaction writes
Parquet + journal rows to a new ``<table>.parquet`` atomically (temp file + rename), then removes
the journal; a crash in between leaves duplicates that readers drop by ``row_key``. A failed
write (e.g. a full disk) truncates the journal back to its previous length and raises
:class:`~hwnas.errors.ProfileError`: rows already stored are never lost.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from hwnas.errors import ProfileError
from hwnas.fileio import atomic_write_bytes
from hwnas.profiles.schema import COLUMNS


def journal_path(root: Path, table: str) -> Path:
    return root / f"{table}.journal.jsonl"


def parquet_path(root: Path, table: str) -> Path:
    return root / f"{table}.parquet"


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a journal (a torn last line is skipped)."""
    if not path.exists():
        return []
    rows = []
    data = path.read_bytes()
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if data.endswith(b"\n") or i < data.count(b"\n"):
                raise ProfileError(f"'{path}' is corrupt at line {i + 1}; move it away to keep the rest "
                                   "of the profile (only the rows in that file are lost).") from None
    return rows


def repair_journal(path: Path) -> None:
    """Cut a torn last line left by a killed writer, so the next append starts on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
            fh.flush()
            os.fsync(fh.fileno())


def append_row(path: Path, row: dict[str, Any], stored: int = 0) -> None:
    """Append ``row`` as one line and fsync it. ``stored`` (rows already in the profile) goes into
    the error message of a failed write."""
    line = (json.dumps(row, default=_jsonable, allow_nan=True, separators=(",", ":")) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # the reader skips a torn line anyway
            raise ProfileError(f"Could not write to '{path}' ({exc.strerror or exc}). The {stored} rows "
                               "stored before are intact; free disk space and re-run the same command "
                               "to resume.") from None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _jsonable(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def read_table(root: Path, table: str):
    """Parquet rows + journal rows as one DataFrame with the schema's columns, deduplicated by ``row_key``."""
    import pandas as pd

    frames = []
    pq = parquet_path(root, table)
    if pq.exists():
        try:
            frames.append(pd.read_parquet(pq))
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ProfileError(f"'{pq}' is not readable Parquet ({exc}); restore it from a backup or "
                               "profile again into a new directory.") from None
    rows = read_journal(journal_path(root, table))
    if rows:
        frames.append(pd.DataFrame(rows))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS[table]))
    missing = [c for c in ("row_key",) if c not in df.columns]
    if missing:
        raise ProfileError(f"'{root}' holds a {table} table without a row_key column: not a hwnas profile table.")
    df = df.drop_duplicates("row_key", keep="first").reset_index(drop=True)
    return coerce(df, table)


def coerce(df, table: str):
    """Give every schema column its dtype (missing columns are added empty)."""
    import pandas as pd

    for col, typ in COLUMNS[table].items():
        if col not in df.columns:
            df[col] = None
        if typ is float:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif typ is int:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        elif typ is bool:
            df[col] = df[col].astype("boolean")
        else:
            df[col] = df[col].astype("string")
    return df


def compact(root: Path, table: str) -> int:
    """Fold the journal into the Parquet file; returns the row count."""
    jp = journal_path(root, table)
    if not jp.exists():
        return -1
    df = read_table(root, table)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd")
    try:
        atomic_write_bytes(parquet_path(root, table), buf.getvalue())
    except OSError as exc:
        for tmp in root.glob(f".{table}.parquet.*.tmp"):
            tmp.unlink(missing_ok=True)
        raise ProfileError(f"Could not write '{parquet_path(root, table)}' ({exc.strerror or exc}); the rows "
                           f"stay in '{jp.name}' and are not lost. Free disk space and re-run.") from None
    jp.unlink()
    return len(df)
