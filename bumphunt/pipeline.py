"""The chain of ``bumphunt run``: its stages in order, and the fingerprints that let a rerun
skip a stage whose inputs, settings and code did not change.

A stage's fingerprint hashes

- the configuration keys it reads (:attr:`Stage.settings`),
- its code: the source of every bumphunt module its entry module imports, directly or not,
  and the versions of the libraries the numbers depend on,
- the files it reads from outside the analysis (a data ntuple, a signal-shape file),
- the previous stage's record: its fingerprint, the identifier of its run and the content
  hashes of its outputs.

After a stage finishes, :func:`record` writes the fingerprint, its parts and the stage's
files (size, modification time and SHA-256 of each) to ``<stage folder>/fingerprint.json``.
The stage is up to date while that record's fingerprint equals the one computed now and
every file it lists is unchanged (:func:`check`): of the same size and modification time, or,
when only the time differs (a copied folder), of the same content. A rerun stage gets a new
run identifier, so every later stage reruns too (even when the rerun wrote the same bytes).

:func:`lock_folder` keeps a second bumphunt command out of the folder one is writing to.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from filelock import FileLock, Timeout

from ._io import writable_folder, write_json
from ._version import __version__, installed_version
from .errors import BumphuntError
from .layout import OutputLayout
from .samples import analysis_samples

#: The file next to a stage's outputs that records how they were made.
RECORD_NAME = "fingerprint.json"
#: The lock of a folder a bumphunt command writes to, and the file naming the command (:func:`lock_folder`).
LOCK_NAME = ".bumphunt.lock"
HOLDER_NAME = ".bumphunt.lock.json"
#: Files of a stage folder that are not its outputs.
_NOT_OUTPUTS = (RECORD_NAME, ".lock", LOCK_NAME, HOLDER_NAME)
#: Bytes read at a time when hashing a file.
_CHUNK = 1 << 20
#: The package's folder: the source files of the stages' code are below it.
_PACKAGE = Path(__file__).resolve().parent
#: Libraries whose version is part of every stage's code.
LIBRARIES = ("numpy", "scipy", "numba", "uproot", "iminuit", "zfit", "tensorflow")


@dataclass(frozen=True)
class Stage:
    """One stage of the chain.

    Parameters
    ----------
    name : str
        The stage's name, also its folder in the :class:`~bumphunt.layout.OutputLayout`.
    entry : str
        The module that runs it: its import closure within bumphunt is the stage's code.
    settings : tuple of str
        The configuration keys it reads, dotted (``"scan.start"``) or whole sections; ``"*"``
        for the whole configuration.
    data_files : tuple of str
        Files of the package's data folder it reads (the published limit, say).
    """

    name: str
    entry: str
    settings: tuple[str, ...]
    data_files: tuple[str, ...] = ()


#: The chain of ``bumphunt run``, in order; each stage reads the outputs of the ones before.
CHAIN = (
    # the luminosity is applied where weights are read (bumphunt.ntuple.luminosity_scale): a change
    # of it reruns the selection and what follows, never the simulation or the kinematic fit
    Stage("simulation", "bumphunt.simulation.stage", ("seed", "beam", "detector", "preselection", "simulation")),
    Stage("kinfit", "bumphunt.kinfit", ("beam", "kinfit", "samples", "simulation.signal.coupling")),
    Stage("select", "bumphunt.select.stage",
          ("seed", "luminosity", "beam", "select", "scan.start", "scan.stop", "samples")),
    Stage("shapes", "bumphunt.shapes.stage", ("beam", "shapes", "samples")),
    Stage("scan", "bumphunt.scan.stage",
          ("seed", "luminosity", "beam", "scan", "shapes.selection", "shapes.mass_variable", "systematics",
           "samples", "unblind")),
    Stage("exclusion", "bumphunt.exclusion.stage", ("luminosity", "beam", "scan.shapes", "exclusion"),
          ("belle2_2020_alp_gagg_limit.csv", "besiii_2022_jpsi_gamma_a.csv", "lep_gammagammagamma.csv")),
    Stage("report", "bumphunt.report", ("*",), ("belle2_2020_alp_gagg_limit.csv",)),
)  # fmt: skip
STAGE_NAMES = tuple(stage.name for stage in CHAIN)
#: ``bumphunt count``, beside the chain: it reads the kinematic fit and the selection.
COUNT = Stage(
    "count",
    "bumphunt.count.stage",
    ("seed", "luminosity", "beam", "count", "shapes.selection", "shapes.mass_variable", "samples"),
)


def stage_by_name(name: str) -> Stage:
    """The stage called ``name``; a BumphuntError names the choices otherwise."""
    for stage in CHAIN:
        if stage.name == name:
            return stage
    raise BumphuntError(f"unknown stage {name!r}; choose from {', '.join(STAGE_NAMES)}")


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """A stage's fingerprint and the parts it hashes (kept in the record to say what changed)."""

    parts: dict

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.parts, sort_keys=True).encode()).hexdigest()[:20]


def fingerprint(stage: Stage | str, config: Mapping, layout: OutputLayout | None = None) -> Fingerprint:
    """The fingerprint of ``stage`` for ``config``, from the files on disk now."""
    stage = stage if isinstance(stage, Stage) else stage_by_name(stage)
    layout = layout or OutputLayout.from_config(config)
    index = STAGE_NAMES.index(stage.name)
    upstream = None
    if index > 0:
        previous = CHAIN[index - 1]
        record_now = read_record(previous, layout) or {}
        recorded = _recorded_outputs(record_now)
        upstream = {
            "stage": previous.name,
            "fingerprint": record_now.get("fingerprint"),
            "run": record_now.get("run"),
            "outputs": {
                name: _describe(path, recorded.get(name))[2]
                for name, path in _output_files(layout.stage_dir(previous.name)).items()
            },
        }
    parts = {
        "settings": settings_of(stage, config),
        "code": code_identity(stage),
        "inputs": _external_inputs(stage, config),
        "upstream": upstream,
    }
    return Fingerprint(parts)


def settings_of(stage: Stage, config: Mapping) -> dict:
    """The values of the configuration keys ``stage`` reads, by dotted key."""
    if stage.settings == ("*",):
        return {key: value for key, value in config.items() if key not in WHERE_NOT_WHAT}
    values = {}
    for key in stage.settings:
        node = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None  # keys added since: None
        values[key] = node
    return values


def refuse_disagreement(stage: Stage | str, config: Mapping, layout: OutputLayout | None = None) -> None:
    """Stop before ``stage`` runs on the outputs of earlier stages made with other settings.

    Every earlier stage of the chain (for :data:`COUNT`, those it reads) with a record in
    ``layout`` is compared on the keys it shares with ``stage`` (``luminosity`` with
    ``scan``, say; not :data:`STAGE_OWN_KEYS`): a value recorded there that differs from
    ``config`` is a one-line :class:`~bumphunt.errors.BumphuntError` naming the stage, the key
    and both values. ``bumphunt run`` reruns the earlier stage instead.
    """
    stage = stage if isinstance(stage, Stage) else stage_by_name(stage)
    layout = layout or OutputLayout.from_config(config)
    upstream = CHAIN[: STAGE_NAMES.index(stage.name if stage.name in STAGE_NAMES else "scan")]
    for earlier in upstream:
        recorded = ((read_record(earlier, layout) or {}).get("parts") or {}).get("settings")
        if not isinstance(recorded, Mapping):
            continue
        for key in _shared_keys(earlier, stage):
            before, now = _value_at(recorded, key), _value_at(config, key)
            if before is _ABSENT or before == now:
                continue
            if isinstance(before, Mapping) and isinstance(now, Mapping):
                leaf = _changed_keys(before, now)[0]  # name the value that differs, not its section
                key, before, now = f"{key}.{leaf}", _value_at(before, leaf), _value_at(now, leaf)
            raise BumphuntError(
                f"{layout.stage_dir(earlier.name)} was made with {key} = {_short(before)}, this {stage.name} has "
                f"{_short(now)}: run `bumphunt run` with it (stages whose settings changed rerun) or set it back"
            )


#: Keys that say where an analysis runs or writes, never what it computes: in no fingerprint.
WHERE_NOT_WHAT = ("output_dir", "dask")
#: Keys two stages may hold different values of: each stage draws its own random numbers from
#: the seed, and a selection trained over one mass range serves a scan of part of it.
STAGE_OWN_KEYS = ("seed", "scan.start", "scan.stop")
#: A key the record does not hold (added since): nothing to compare.
_ABSENT = object()


def _shared_keys(earlier: Stage, stage: Stage) -> list[str]:
    """The dotted keys both stages read, the more specific of two nested ones (``scan.start``
    of ``scan``); every key of ``earlier`` for a stage that reads the whole configuration."""
    if stage.settings == ("*",):
        return list(earlier.settings)
    shared = []
    for mine in earlier.settings:
        for theirs in stage.settings:
            if mine == theirs or mine.startswith(theirs + "."):
                shared.append(mine)
            elif theirs.startswith(mine + "."):
                shared.append(theirs)
    return sorted(set(shared) - set(STAGE_OWN_KEYS))


def _value_at(settings: Mapping, key: str):
    """The value of a dotted key in a configuration or a record's settings (whose keys may be dotted)."""
    if key in settings:
        return settings[key]
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in settings:
            return _value_at(settings[head], ".".join(parts[cut:])) if isinstance(settings[head], Mapping) else _ABSENT
    return _ABSENT


def _short(value) -> str:
    if value is _ABSENT:
        return "nothing"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def code_identity(stage: Stage) -> dict:
    """Hashes of the source of every bumphunt module the stage imports and of its data files,
    with the versions of bumphunt, Python and the numerical libraries."""
    identity = {"bumphunt": __version__, "python": sys.version.split()[0]}
    identity |= {name: installed_version(name) for name in LIBRARIES}
    for path in sorted(_import_closure(stage.entry)):
        identity[Path(path).relative_to(_PACKAGE.parent).as_posix()] = _file_hash(path)
    for name in stage.data_files:
        identity[f"bumphunt/data/{name}"] = hashlib.sha256(
            resources.files("bumphunt.data").joinpath(name).read_bytes()
        ).hexdigest()[:16]
    return identity


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@cache
def _import_closure(module: str) -> frozenset[str]:
    """The source files of ``module`` and of every bumphunt module it imports, at any depth,
    the packages' ``__init__`` included (imports inside functions count too). Found from the
    source alone: nothing is imported."""
    files, todo, seen = set(), [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files.add(str(path))
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
        package = name if path.name == "__init__.py" else parent
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            todo.extend(_imported_modules(node, package))
    return frozenset(files)


def _module_file(name: str) -> Path | None:
    """The source file of the bumphunt module ``name`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] != "bumphunt":
        return None
    folder = _PACKAGE.joinpath(*parts[1:])
    for path in (folder / "__init__.py", folder.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imported_modules(node: ast.AST, package: str) -> list[str]:
    """The bumphunt modules an import statement may load (``from x import y``: x and x.y)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "bumphunt"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
    return [name for name in candidates if _module_file(name) is not None]


def _external_inputs(stage: Stage, config: Mapping) -> dict:
    """Size and modification time of files the stage reads from outside the analysis folder."""
    paths = []
    if stage.name == "kinfit" and config.get("samples"):
        for sample in analysis_samples(config).values():
            paths += sample.paths() + ([sample.beam_table] if sample.beam_table else [])
    if stage.name in ("scan", "report") and config["scan"]["data"] != "pseudo":
        paths.append(config["scan"]["data"])
    if stage.name in ("scan", "exclusion", "report") and config["scan"]["shapes"]:
        paths.append(config["scan"]["shapes"])
    return {str(path): _signature(Path(path)) for path in paths}


def _signature(path: Path) -> list | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _output_files(folder: Path) -> dict[str, Path]:
    """Every output file below ``folder``, by relative path."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in _NOT_OUTPUTS
    }


#: Content hashes computed in this process, by path, size, inode and times (a file changed
#: since has another modification or status-change time, so it is hashed again).
_HASHES: dict[tuple, str] = {}


def content_hash(path: str | Path, status: os.stat_result | None = None) -> str:
    """The SHA-256 of the file's content (hex), read in chunks of 1 MiB (about 1 s per GB on
    this project's machine, whether the file is cached in memory or read from disk); a file
    unchanged since it was last hashed in this process is not read again."""
    status = status or os.stat(path)
    key = (str(path), status.st_size, status.st_ino, status.st_mtime_ns, status.st_ctime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as file:
            while size := file.readinto(buffer):
                digest.update(view[:size])
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _valid_entry(entry) -> bool:
    """Whether ``entry`` is a record's [size, modification time, content hash] of a file."""
    return (isinstance(entry, list) and len(entry) == 3 and all(isinstance(v, int) for v in entry[:2])
            and isinstance(entry[2], str))  # fmt: skip


def _recorded_outputs(record: dict | None) -> dict:
    """The outputs a record lists, each [size, modification time, content hash]."""
    outputs = (record or {}).get("outputs")
    return outputs if isinstance(outputs, dict) else {}


def _describe(path: Path, recorded=None) -> list:
    """[size, modification time, content hash] of ``path``: the hash is the one ``recorded``
    holds when the size and time are still the recorded ones, else the file is read."""
    status = path.stat()
    size, mtime = status.st_size, status.st_mtime_ns
    if _valid_entry(recorded) and recorded[:2] == [size, mtime]:
        return [size, mtime, recorded[2]]
    return [size, mtime, content_hash(path, status)]


def _unchanged(path: Path, recorded) -> bool:
    """Whether ``path`` is still the file ``recorded`` describes: the same size, and the same
    modification time or, when only the time differs (a copy), the same content."""
    if not _valid_entry(recorded):
        return False
    try:
        status = path.stat()
    except OSError:
        return False
    if status.st_size != recorded[0]:
        return False
    return status.st_mtime_ns == recorded[1] or content_hash(path, status) == recorded[2]


def read_record(stage: Stage | str, layout: OutputLayout) -> dict | None:
    """The record of the stage's last finished run, or None (none, or unreadable)."""
    name = stage.name if isinstance(stage, Stage) else stage
    try:
        record = json.loads((layout.stage_dir(name) / RECORD_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("stage") == name else None


def check(stage: Stage | str, config: Mapping, layout: OutputLayout | None = None) -> tuple[Fingerprint, str | None]:
    """The stage's fingerprint now, and why it must run (None: it is up to date)."""
    stage = stage if isinstance(stage, Stage) else stage_by_name(stage)
    layout = layout or OutputLayout.from_config(config)
    now = fingerprint(stage, config, layout)
    record = read_record(stage, layout)
    if record is None:
        return now, "not run before"
    if record.get("fingerprint") != now.digest:
        return now, _what_changed(record.get("parts") or {}, now.parts)
    outputs = _output_files(layout.stage_dir(stage.name))
    recorded = _recorded_outputs(record)
    missing = sorted(set(recorded) - set(outputs))
    if missing:
        return now, f"output {missing[0]} is missing"
    changed = next((name for name in sorted(recorded) if not _unchanged(outputs[name], recorded[name])), None)
    if changed is not None:
        return now, f"output {changed} was changed"
    return now, None


def _what_changed(before: dict, now: dict) -> str:
    """The first kind of difference between two fingerprints' parts, in words."""
    for part, words in (("settings", "settings changed"), ("code", "code changed")):
        changed = _changed_keys(before.get(part) or {}, now[part])
        if changed:
            return f"{words}: {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}"
    if before.get("inputs") != now["inputs"]:
        return f"input changed: {', '.join(now['inputs']) or 'none now'}"
    upstream = now["upstream"] or {}
    return f"{upstream.get('stage', 'upstream')} changed"


def _changed_keys(before: dict, now: dict, prefix: str = "") -> list[str]:
    """Dotted keys of the values that differ, down to the leaves of nested mappings."""
    found = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            found += _changed_keys(old, new, f"{prefix}{key}.")
        else:
            found.append(f"{prefix}{key}")
    return found


def record(stage: Stage | str, fingerprint_now: Fingerprint, layout: OutputLayout, seconds: float) -> Path:
    """Write the record of a finished stage next to its outputs (atomically): its fingerprint,
    a new identifier of this run (part of the next stage's fingerprint, so that it reruns) and
    the size, modification time and content hash of each of its files (the files a rerun left
    as they were keep the hash of the previous record, unread)."""
    name = stage.name if isinstance(stage, Stage) else stage
    before = _recorded_outputs(read_record(name, layout))
    document = {
        "stage": name,
        "fingerprint": fingerprint_now.digest,
        "run": secrets.token_hex(8),
        "seconds": round(seconds, 3) if math.isfinite(seconds) else None,
        "outputs": {
            file: _describe(path, before.get(file)) for file, path in _output_files(layout.stage_dir(name)).items()
        },
        "parts": fingerprint_now.parts,
    }
    return write_json(layout.stage_dir(name) / RECORD_NAME, document)


def refresh(stage: Stage | str, layout: OutputLayout) -> bool:
    """Update the modification times in the record of an up-to-date stage whose files have
    the recorded content but other times (a copied folder), so that the next check needs no
    hashing; True when the record was rewritten. Call it only after :func:`check` found the
    stage up to date."""
    name = stage.name if isinstance(stage, Stage) else stage
    document = read_record(name, layout)
    recorded = _recorded_outputs(document)
    outputs = _output_files(layout.stage_dir(name))
    now = {}
    for file, entry in recorded.items():
        if file not in outputs or not _unchanged(outputs[file], entry):
            return False
        now[file] = _describe(outputs[file], entry)
        if now[file][2] != entry[2]:
            return False
    if now == recorded:
        return False
    write_json(layout.stage_dir(name) / RECORD_NAME, {**document, "outputs": now})
    return True


@contextmanager
def lock_folder(folder: str | Path, command: str) -> Iterator[Path]:
    """Create ``folder``, check that it can be written, and hold it for ``command`` (what a
    second command is told holds it, e.g. ``"bumphunt run"``) until the block ends.

    The lock is an OS lock (:mod:`filelock`) on ``folder/.bumphunt.lock``: it never outlives
    the process, however it ends, so a killed command leaves no stale lock. It is re-entrant
    within one thread; another thread or process is refused. Beside it,
    ``.bumphunt.lock.json`` names the holder while it holds the lock.

    Raises
    ------
    BumphuntError
        The folder cannot be written, or another command holds it (the message names it).
    """
    folder = writable_folder(folder)
    lock = FileLock(folder / LOCK_NAME, timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise BumphuntError(
            f"{folder}: {_holder(folder)} is writing there; wait until it ends, or write elsewhere "
            "(another output_dir, or -o/--output)"
        ) from None
    first = lock.lock_counter == 1
    try:
        if first:
            holder = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                      "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
            with suppress(BumphuntError):  # a full disk: the command says so when it writes its files
                write_json(folder / HOLDER_NAME, holder)
        yield folder
    finally:
        try:
            if first:
                with suppress(OSError):
                    (folder / HOLDER_NAME).unlink(missing_ok=True)
        finally:
            lock.release()


def _holder(folder: Path) -> str:
    """Who holds the lock of ``folder``, from its holder file: ``bumphunt run (process 1234
    on host, since 2025-01-31 14:02:11)``."""
    try:
        holder = json.loads((folder / HOLDER_NAME).read_text())
        return f"{holder['command']} (process {holder['pid']} on {holder['host']}, since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another bumphunt command"
