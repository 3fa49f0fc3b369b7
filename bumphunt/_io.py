"""Writing files so that a crash never leaves a half-written one behind.

Every file is written to a temporary name beside its place and renamed when complete
(:func:`atomic_write_text`, :func:`write_json`; ``NtupleWriter`` and ``save_figure`` do the
same through :func:`writing`). A full disk, an exceeded quota, a denied permission or a
read-only disk while writing becomes a :class:`~bumphunt.errors.BumphuntError` naming the
file (:func:`write_error`), the temporary file removed and the file as it was before.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import BumphuntError

#: What went wrong and what to do, by the errno of an OSError raised while writing a file.
WRITE_ERRORS = {
    errno.ENOSPC: "no space left on the device while writing it; free some space and rerun",
    getattr(errno, "EDQUOT", 122): "disk quota exceeded while writing it; free some space (or have the quota "
    "raised) and rerun",
    errno.EACCES: "permission denied while writing it; make it and its folder writable and rerun",
    errno.EPERM: "permission denied while writing it; make it and its folder writable and rerun",
    errno.EROFS: "the disk is read-only; set another output_dir (or -o/--output) and rerun",
}
#: The end of every such message: nothing half-written was left.
UNCHANGED = "(the file is as it was before)"
#: The temporary name of a file being written (``.results.json.1234.tmp``, ``.fom.1234.tmp.png``).
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.\d+\.tmp(?P<suffix>.*)$")


def write_error(path: str | Path, error: OSError) -> BumphuntError | None:
    """The one-line error for ``error``, raised while writing ``path``, or None when its errno
    is none of :data:`WRITE_ERRORS` (a bug, not something the user can fix).

    A temporary name (``.name.<pid>.tmp``) in ``path`` is shown as the file it stands for.
    """
    what = WRITE_ERRORS.get(getattr(error, "errno", None))
    if what is None:
        return None
    parts = [_TEMPORARY.sub(r"\g<stem>\g<suffix>", part) for part in Path(path).parts]
    return BumphuntError(f"{Path(*parts)}: {what} {UNCHANGED}")


@contextmanager
def writing(path: str | Path, tmp: str | Path | None = None) -> Iterator[None]:
    """The block that writes ``path`` (through its temporary file ``tmp``): on any exception
    ``tmp`` is removed, and an OSError of :data:`WRITE_ERRORS` becomes a BumphuntError naming
    ``path`` (:func:`write_error`)."""
    try:
        yield
    except BaseException as error:
        if tmp is not None:
            with suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
        converted = write_error(path, error) if isinstance(error, OSError) else None
        if converted is None:
            raise
        raise converted from error


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
    """Write ``text`` to a temporary file beside ``path`` and rename it into place.

    Raises
    ------
    BumphuntError
        The disk is full, the quota exceeded, the permission denied or the disk read-only
        (:func:`write_error`); the temporary file is removed and ``path`` is as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
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
