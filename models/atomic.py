"""Files that are either whole or absent: written under a temporary name, then renamed.

An interrupted training or archive build (Ctrl-C, a killed container, a full disk) must never
leave a half-written ``weights.pt`` or ``.mar`` that make then takes for up to date, or that
TorchServe fails to unzip. A rename within one folder is atomic on POSIX file systems, so a
reader sees the old file, the new one, or none.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partial_name(path: Path) -> Path:
    """Hidden, per-process name in the same folder (same file system, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    temporary = partial_name(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text)
