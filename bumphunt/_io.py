"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


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
