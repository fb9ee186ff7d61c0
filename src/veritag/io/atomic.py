"""Write a file beside its final name and rename it into place, so a crash never leaves half a
file (exports, resolved labels, source tables)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write"]


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[Any]:
    """Yield a text handle (``mode="w"``) or, with ``mode="path"``, the temporary path for a
    writer that opens it itself; ``path`` is replaced only when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if mode == "path":
            yield tmp
        else:
            with tmp.open(mode, encoding="utf-8", newline="") as fh:
                yield fh
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
