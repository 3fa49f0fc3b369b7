"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from .errors import BumphuntError


def writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` (with its parents) and check that a file can be written there.

    Stages call it first thing, so a folder they cannot write stops them before any work.

    Raises
    ------
    BumphuntError
        Naming the folder and why (a file in the way, no permission, a read-only disk).
    """
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise BumphuntError(f"{folder}: cannot write output there ({blocker} is a file, not a folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".bumphunt-write-check-"):
            pass
    except OSError as error:
        raise BumphuntError(f"{folder}: cannot write output there ({error.strerror or error})") from None
    return folder


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def strict_json(value):
    """``value`` with every non-finite float replaced by None, so ``json.dumps`` writes
    standard JSON (``null``) instead of the bare ``NaN``/``Infinity`` other readers reject."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalar
        return strict_json(value.item())
    return value


def write_json(path: str | Path, document, *, indent: int | None = 1) -> Path:
    """Write ``document`` as strict JSON (non-finite numbers as null), atomically."""
    return atomic_write_text(path, json.dumps(strict_json(document), indent=indent, allow_nan=False))
