"""Fan-out of the mass points: tasks of a few consecutive masses, run in process, on local
processes or on a Dask cluster, and the per-point files an interrupted scan resumes from."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from .. import stats
from .._io import atomic_write_text, writable_folder
from .._parallel import ordered_map
from .._version import __version__
from ..errors import BumphuntError
from ..layout import OutputLayout
from ..models.signal import ShapeModel, SignalShape
from ..stats.background import choose_order, sideband_shape
from ..stats.systematics import model_nuisances
from .data import Spectrum

log = logging.getLogger(__name__)

#: Columns of a scan row computed at the mass point (the table adds the conversion columns).
POINT_COLUMNS = (
    "mass", "n_sig", "n_sig_err", "p0_local", "z_local", "ul_obs", "ul_exp_m2", "ul_exp_m1", "ul_exp",
    "ul_exp_p1", "ul_exp_p2", "fit_status", "n_events", "q0", "background_order",
)  # fmt: skip
#: Yield-like columns: in units of events, rescaled for weighted histograms.
_EVENT_COLUMNS = (
    "n_events", "n_sig", "n_sig_err", "ul_obs", "ul_exp_m2", "ul_exp_m1", "ul_exp", "ul_exp_p1", "ul_exp_p2",
)  # fmt: skip
MIN_EVENTS_IN_WINDOW = 10
POINTS_PER_TASK = 16
_BINS = 2000  # binned likelihood: bins of window / 2000 = sigma / 50 at +-20 sigma


def load_model(path: str) -> ShapeModel:
    """The signal model at ``path``, read once per process and again when the file changes."""
    try:
        status = Path(path).stat()
    except OSError:
        return ShapeModel.load(path)  # its error names the file
    return _load_model(path, status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=4)
def _load_model(path: str, mtime_ns: int, size: int) -> ShapeModel:
    return ShapeModel.load(path)


@dataclass(frozen=True)
class ScanTask:
    """A few consecutive mass points with the part of the spectrum their windows need."""

    masses: tuple[float, ...]
    spectrum: Spectrum
    model: ShapeModel | str  # a model, or the path of its file (loaded once per worker)
    settings: dict
    discovery_only: bool = False


def window_shape(model: ShapeModel, mass: float, settings: dict) -> SignalShape:
    """Signal shape at ``mass`` in its fit window: +-window_sigmas resolutions, cut below at
    ``window_floor``, where the diphoton spectrum turns on and no polynomial follows it, and
    above at ``window_ceiling`` (when set), where a selection ends the spectrum."""
    return model.windowed(mass, window_sigmas=settings["window_sigmas"], floor=settings["window_floor"],
                          ceiling=settings.get("window_ceiling"))  # fmt: skip


def _snap_to_bins(shape: SignalShape, edges: np.ndarray) -> SignalShape | None:
    """The window widened to whole bins of a histogram, clipped to its range (None outside it)."""
    low = edges[max(np.searchsorted(edges, shape.lower, side="right") - 1, 0)]
    high = edges[min(np.searchsorted(edges, shape.upper, side="left"), len(edges) - 1)]
    return shape.with_window(float(low), float(high)) if high > low else None


def failed_row(status: str) -> dict:
    """A row whose numbers are NaN, with the reason in ``fit_status``."""
    nan = math.nan
    return {column: nan for column in POINT_COLUMNS if column not in ("mass", "n_events")} | {"fit_status": status}


def point_data(x, shape: SignalShape, model: ShapeModel, mass: float, settings: dict, *, weights=None, bins=None,
               nuisances=stats.NO_NUISANCES) -> stats.HypothesisData | str:  # fmt: skip
    """The candidates of one hypothesis' window with its background model: the order of
    ``settings["background_order"]`` (or chosen by the likelihood-ratio rule for "auto") and,
    with ``background_from_sidebands``, the shape fixed from the sidebands; a string says why
    there is none."""

    def data_of_order(order):
        return stats.hypothesis_data(x, shape, order=order, weights=weights, bins=bins, mass=mass, nuisances=nuisances)

    order = settings["background_order"]
    if order == "auto":
        order = choose_order(data_of_order)
        if isinstance(order, str):
            return order
    data = data_of_order(order)
    if settings.get("background_from_sidebands"):
        coefficients = sideband_shape(data, settings["sideband_veto_sigmas"], float(model.resolution(mass)))
        if coefficients is None:
            return "background fit to the sidebands failed"
        data = data.with_fixed_background(coefficients)
    return data


def evaluate_point(spectrum: Spectrum, model: ShapeModel, mass: float, settings: dict, *, discovery_only=False) -> dict:
    """Fit, significance and (unless ``discovery_only``) limits at one mass hypothesis, with
    the systematic uncertainties of ``settings["systematics"]`` as nuisance parameters."""
    low, high = model.mass_range
    if not low <= mass <= high:
        status = f"outside the signal model's mass range ({low:g}-{high:g} GeV)"
        return {"mass": mass, "n_events": math.nan} | failed_row(status)
    shape = window_shape(model, mass, settings)
    if spectrum.binned:
        shape = _snap_to_bins(shape, spectrum.edges)
        part = spectrum.window(shape.lower, shape.upper) if shape is not None else Spectrum(np.array([]))
    else:
        part = spectrum.window(shape.lower, shape.upper)
    row = {"mass": mass, "n_events": part.n_events}
    if len(part) == 0 or part.n_events < MIN_EVENTS_IN_WINDOW:
        return row | failed_row(f"empty window ({part.n_events:.0f} candidates)")
    nuisances = model_nuisances(model, shape, mass, settings.get("systematics"))
    scale = 1.0
    if part.binned:
        weights = part.weights
        if part.variances is not None:
            # scaled Poisson (Bohm & Zech, NIM A 748 (2014) 1): counts in units of effective events
            scale = float(weights.sum() / part.variances.sum()) if part.variances.sum() > 0 else 1.0
            weights = weights * scale
        data = point_data(part.x, shape, model, mass, settings, weights=weights, nuisances=nuisances)
    else:
        bins = _BINS if len(part) > settings["binned_above"] else None
        data = point_data(part.x, shape, model, mass, settings, bins=bins, nuisances=nuisances)
    if isinstance(data, str):
        return row | failed_row(data)
    row["background_order"] = float(data.order)
    if discovery_only:
        result = stats.fit_discovery(data)
    else:
        result = stats.evaluate_hypothesis(data, confidence_level=settings["confidence_level"]).to_dict()
    row.update(result)
    if scale != 1.0:
        row.update({key: row[key] / scale for key in _EVENT_COLUMNS if key in row})
    row["mass"] = mass
    return row


def run_task(task: ScanTask) -> list[dict]:
    """Evaluate the mass points of a task (in a worker process or on a Dask worker)."""
    model = load_model(task.model) if isinstance(task.model, str) else task.model
    return [
        evaluate_point(task.spectrum, model, mass, task.settings, discovery_only=task.discovery_only)
        for mass in task.masses
    ]


def make_tasks(masses, spectrum: Spectrum, model: ShapeModel, model_ref, settings: dict, *, discovery_only=False):
    """Tasks of :data:`POINTS_PER_TASK` consecutive masses, each with the spectrum from the
    first window's lower edge to the last window's upper edge."""
    tasks = []
    widest_bin = float(np.diff(spectrum.edges).max()) if spectrum.binned else 0.0
    for start in range(0, len(masses), POINTS_PER_TASK):
        group = tuple(float(m) for m in masses[start : start + POINTS_PER_TASK])
        first, last = window_shape(model, group[0], settings), window_shape(model, group[-1], settings)
        lower, upper = first.lower, last.upper
        if spectrum.binned:  # whole bins on both sides
            lower, upper = lower - widest_bin, upper + widest_bin
        tasks.append(ScanTask(group, spectrum.window(lower, upper), model_ref, settings, discovery_only))
    return tasks


def run_tasks(tasks, pool, advance) -> Iterator[list[dict]]:
    """The rows of each task, in order, as the tasks finish."""
    for rows in ordered_map(pool, run_task, tasks, max_in_flight=8):
        advance(len(rows))
        yield rows


def fingerprint(*parts) -> str:
    """A short hash of the inputs of a scan: finished points are reused only when it matches."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def code_identity() -> tuple[bytes, ...]:
    """The version and the source of the statistics layer (every module: the fits, the
    background-order rule, the nuisance parameters) and of the per-point code: a changed fit
    invalidates old points."""
    sources = sorted(Path(stats.__file__).parent.glob("*.py"))
    return (__version__.encode(), *(path.read_bytes() for path in sources), Path(__file__).read_bytes())


def point_key(mass: float) -> str:
    return f"m{mass:.7f}"


def finished_points(points_dir: Path, fingerprint: str) -> dict:
    """The rows of the mass points finished with this fingerprint, by :func:`point_key`.

    A point whose row does not match the checksum written with it (edited by hand, damaged)
    or that cannot be read is not resumed, so it is computed again; the log says which.
    """
    done = {}
    for path in sorted(points_dir.glob("m*.json")):
        try:
            content = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("%s: not readable (damaged?): computed again", path)
            continue
        if not isinstance(content, dict) or content.get("fingerprint") != fingerprint:
            continue
        row = content.get("row")
        if not isinstance(row, dict) or content.get("row_sha256") != _row_checksum(row):
            log.warning("%s: its row does not match its checksum (edited or damaged): computed again", path)
            continue
        done[path.stem] = row
    return done


def _row_checksum(row: dict) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()


def save_point(points_dir: Path, fingerprint: str, row: dict) -> None:
    """Write one finished mass point, atomically, with the checksum of its row."""
    text = json.dumps({"fingerprint": fingerprint, "row": row, "row_sha256": _row_checksum(row)})
    atomic_write_text(points_dir / f"{point_key(row['mass'])}.json", text)


def lock_scan_folder(layout: OutputLayout) -> FileLock:
    """Create the scan folder, check that it can be written, and lock it for this scan.

    The lock (an OS lock on :attr:`~bumphunt.layout.OutputLayout.scan_lock_file`) is held
    until it is released (:func:`run_scan` releases it when it returns or raises) and never
    beyond the process, however it ends, so a killed scan leaves no stale lock. It is
    re-entrant within one process.

    Raises
    ------
    BumphuntError
        The folder cannot be written, or another scan is writing there.
    """
    folder = writable_folder(layout.scan_dir)
    lock = FileLock(layout.scan_lock_file, timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise BumphuntError(
            f"{folder}: another scan is writing there; wait until it ends, or scan into another folder (-o/--output)"
        ) from None
    return lock


def remove_stale_results(layout: OutputLayout, fingerprint: str) -> list[Path]:
    """Remove the tables and figures of an earlier scan with other inputs than ``fingerprint``.

    ``results.json`` holds the fingerprint of the scan that wrote it; without a readable one
    the tables and figures cannot be told current and are removed as well. Done when a scan
    starts, so an interrupted scan never leaves old results looking current. Returns the
    removed files.
    """
    try:
        document = json.loads(layout.scan_table_json.read_text())
    except (OSError, ValueError):
        document = None
    if isinstance(document, dict) and document.get("fingerprint") == fingerprint:
        return []
    removed = [path for path in layout.scan_results if path.is_file()]
    for path in removed:
        path.unlink()
    if removed:
        log.warning(
            "removed %s in %s: results of a scan with other inputs", ", ".join(p.name for p in removed), layout.scan_dir
        )
    return removed
