"""Atomic file writes: a result file is either the old one or the complete new one, never half.

Every writer goes to a temporary file in the same directory, is flushed to disk, and replaces the
target with one ``os.replace`` — so a crash, ``kill -9`` or Ctrl-C in the middle of a write leaves
what was there before, and resumable sweeps can trust every file they find.

A result file gets the mode any other file the user creates gets (0666 less the umask), not the
0600 of a private temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd


def _umask() -> int:
    """The process umask (read by setting it and putting it back; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)``, fsync the result, and move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_table(path: str | os.PathLike, df: pd.DataFrame, fmt: str = "csv", **csv_kw) -> None:
    if fmt == "parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, **csv_kw))
