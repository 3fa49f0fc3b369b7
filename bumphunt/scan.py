"""The bump hunt: fits at every mass hypothesis of the diphoton spectrum, limits, significance.

For each mass m of the scan grid (``scan.start`` to ``scan.stop`` in steps of
``scan.step_sigmas`` x sigma(m), with windows of +-``scan.veto_sigmas`` sigma(m) around the
pi0, eta and eta' masses vetoed) the candidates in m +- ``scan.window_sigmas`` sigma(m) are
fitted with the interpolated signal shape plus a Chebyshev background
(:mod:`bumphunt.hypothesis`), giving the signal yield, the local significance and the
asymptotic CLs upper limits. The global significance of the largest excess follows Gross and
Vitells (EPJC 70 (2010) 525), with the mean number of upcrossings counted on
background-only pseudo-experiments.

Each mass point is written to its own file as soon as it is done, so an interrupted scan
resumes where it stopped; mass points run in parallel over local processes, or on a Dask
cluster given its scheduler address, with identical results.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import physics
from ._parallel import executor, ordered_map
from .constants import ETA_MASS, ETAPRIME_MASS, PI0_MASS

VETOES = {"pi0": PI0_MASS, "eta": ETA_MASS, "etaprime": ETAPRIME_MASS}
BACKGROUND_SAMPLES = ("ggg", "pi0_gamma", "eta_gamma", "etaprime_gamma")
COLUMNS = (
    "mass", "n_sig", "n_sig_err", "p0_local", "z_local", "ul_obs", "ul_exp_m2", "ul_exp_m1", "ul_exp",
    "ul_exp_p1", "ul_exp_p2", "efficiency", "xsec_ul_pb", "g_ul_gev", "fit_status", "n_events", "q0",
)  # fmt: skip
MIN_EVENTS_IN_WINDOW = 10
_POINTS_PER_TASK = 16
_BINS = 2000  # binned likelihood: bins of window / 2000 = sigma / 50 at +-20 sigma


def scan_grid(model, start: float, stop: float, step_sigmas: float, veto_sigmas: float, step_gev: float = 0.0):
    """Mass hypotheses from ``start`` to ``stop`` in steps of ``step_sigmas`` resolutions (or
    of ``step_gev`` when it is positive), without those within ``veto_sigmas`` resolutions of
    a vetoed meson.

    Returns
    -------
    masses : array
    vetoed : dict name -> (low, high)
        The vetoed mass ranges.
    """
    masses, mass = [], start
    while mass <= stop + 1e-12:
        masses.append(mass)
        mass += step_gev if step_gev > 0 else step_sigmas * float(model.resolution(mass))
    masses = np.array(masses)
    vetoed = {}
    keep = np.ones(len(masses), dtype=bool)
    for name, centre in VETOES.items():
        half = veto_sigmas * float(model.resolution(centre))
        vetoed[name] = (centre - half, centre + half)
        keep &= np.abs(masses - centre) >= veto_sigmas * model.resolution(masses)
    return np.round(masses[keep], 7), vetoed


def _candidates(path, selection: str, mass_variable: str, *, weights_to_counts=None) -> np.ndarray:
    """Finite diphoton candidates of the events of an ntuple passing ``selection``.

    With ``weights_to_counts`` (a numpy Generator) each event enters Poisson(weight) times:
    a pseudo-data set with the expected number of events.
    """
    from .ntuple import iterate_ntuple
    from .selection import branches_used, evaluate_cut

    needed = {mass_variable} | branches_used(selection)
    if weights_to_counts is not None:
        needed.add("weight")
    pieces = []
    for chunk in iterate_ntuple(path, sorted(needed), step_size=500_000):
        keep = evaluate_cut(selection, chunk, len(chunk[mass_variable]))
        values = chunk[mass_variable][keep]
        if weights_to_counts is not None:
            values = np.repeat(values, weights_to_counts.poisson(chunk["weight"][keep]), axis=0)
        pieces.append(values.ravel())
    values = np.concatenate(pieces) if pieces else np.array([])
    return values[np.isfinite(values)]


def pseudo_data(config: dict, *, seed: int, inject_mass: float | None = None, inject_events: float = 0.0) -> np.ndarray:
    """Background-only (or signal-injected) pseudo-data from the fitted background samples.

    Every background event enters Poisson(weight) times, so the pseudo-data holds the
    expected numbers at the configured luminosity; with ``inject_mass``, Poisson(inject_events)
    signal events of the nearest generated ALP mass are added. Returns the sorted candidates.
    """
    from .errors import NtupleError

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    directory = Path(config["output_dir"]) / "kinfit"
    selection, variable = config["shapes"]["selection"], config["shapes"]["mass_variable"]
    paths = [directory / f"{sample}.root" for sample in BACKGROUND_SAMPLES if (directory / f"{sample}.root").is_file()]
    if not paths:
        raise NtupleError(f"{directory}: no background ntuples after the kinematic fit (run `bumphunt kinfit`)")
    pieces = [_candidates(path, selection, variable, weights_to_counts=rng) for path in paths]
    if inject_mass is not None and inject_events > 0:
        pieces.append(_injected_signal(config, rng, inject_mass, inject_events))
    return np.sort(np.concatenate(pieces))


def _injected_signal(config, rng, mass, n_produced):
    """Candidates of Poisson-many ALP events at the generated mass nearest ``mass``.

    ``n_produced`` counts ALPs before the detector: the pre-selected events stored at that
    mass are drawn with the mean n_produced x (stored / generated), then the selection cut.
    """
    from .ntuple import read_metadata, read_ntuple
    from .selection import branches_used, evaluate_cut

    selection, variable = config["shapes"]["selection"], config["shapes"]["mass_variable"]
    path = Path(config["output_dir"]) / "kinfit" / "alp.root"
    data = read_ntuple(path, sorted({"gen_mass", variable} | branches_used(selection)))
    nearest = float(data["gen_mass"][np.argmin(np.abs(data["gen_mass"] - mass))])
    generated = {round(m["mass"], 9): m["n_generated"] for m in read_metadata(path)["masses"]}[round(nearest, 9)]
    stored = np.flatnonzero(data["gen_mass"] == nearest)
    n_draw = min(rng.poisson(n_produced * len(stored) / generated), len(stored))
    events = rng.choice(stored, size=n_draw, replace=False)
    keep = evaluate_cut(selection, {k: v[events] for k, v in data.items()}, len(events))
    values = data[variable][events][keep].ravel()
    return values[np.isfinite(values)]


@lru_cache(maxsize=4)
def _load_model(path: str):
    from .shapes import ShapeModel

    return ShapeModel.load(path)


@dataclass(frozen=True)
class ScanTask:
    """A few consecutive mass points with the candidates their windows need."""

    masses: tuple[float, ...]
    candidates: np.ndarray
    model_path: str
    settings: dict
    discovery_only: bool = False


def window_shape(model, mass: float, settings: dict):
    """Signal shape at ``mass`` in its fit window: +-window_sigmas resolutions, cut below at
    ``window_floor``, where the diphoton spectrum turns on and no polynomial follows it."""
    shape = model.shape(mass, window_sigmas=settings["window_sigmas"])
    if shape.lower < settings["window_floor"]:
        shape = shape.with_window(settings["window_floor"], shape.upper)
    return shape


def run_task(task: ScanTask) -> list[dict]:
    """Evaluate the mass points of a task (in a worker process or on a Dask worker)."""
    from .hypothesis import evaluate_hypothesis, fit_discovery, hypothesis_data

    model = _load_model(task.model_path)
    settings = task.settings
    rows = []
    for mass in task.masses:
        shape = window_shape(model, mass, settings)
        low, high = np.searchsorted(task.candidates, [shape.lower, shape.upper])
        x = task.candidates[low:high]
        row = {"mass": mass, "n_events": float(len(x))}
        if len(x) < MIN_EVENTS_IN_WINDOW:
            row.update(_failed_row(f"empty window ({len(x)} candidates)"))
        else:
            binned = len(x) > settings["binned_above"]
            bins = _BINS if binned else None
            data = hypothesis_data(x, shape, order=settings["background_order"], bins=bins, mass=mass)
            if task.discovery_only:
                row.update(fit_discovery(data))
            else:
                result = evaluate_hypothesis(data, confidence_level=settings["confidence_level"])
                row.update(result.to_dict())
        row["mass"] = mass
        rows.append(row)
    return rows


def _failed_row(status: str) -> dict:
    nan = float("nan")
    return {column: nan for column in COLUMNS if column not in ("mass", "n_events")} | {"fit_status": status}


def _fingerprint(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _code_identity() -> tuple[bytes, ...]:
    """The version and the source of the statistics code: a changed fit invalidates old points."""
    from . import hypothesis
    from ._version import __version__

    return (__version__.encode(), Path(hypothesis.__file__).read_bytes(), Path(__file__).read_bytes())


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ScanResult:
    """The scan table and what was written."""

    rows: list[dict]
    global_significance: dict
    vetoed: dict
    table_csv: Path
    table_json: Path
    plots: list[Path]
    seconds: float
    resumed_points: int


def _run_tasks(tasks, pool, advance):
    for rows in ordered_map(pool, run_task, tasks, max_in_flight=8):
        advance(len(rows))
        yield rows


def run_scan(
    config: dict,
    *,
    output_dir=None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    resume: bool = True,
) -> ScanResult:
    """Scan the diphoton spectrum: fit, limits and significance at every mass hypothesis.

    Parameters
    ----------
    config : dict
        Validated configuration (``scan`` and ``shapes`` sections, luminosity).
    output_dir : path, optional
        Default ``<output_dir>/scan``: ``results.csv``, ``results.json``, the plots, and
        ``points/`` with one file per mass point (what a resumed scan reuses).
    workers : int, optional
        Local worker processes (default ``scan.workers``; 0 = one per core).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); overrides ``workers``.
    resume : bool
        Reuse finished mass points of an interrupted scan with the same inputs.
    """
    from ._progress import progress_bar
    from .errors import BumphuntError

    started = time.perf_counter()
    settings = config["scan"]
    output_dir = Path(output_dir) if output_dir else Path(config["output_dir"]) / "scan"
    model_path = Path(settings["shapes"] or Path(config["output_dir"]) / "shapes" / "signal_shapes.json")
    model = _load_model(str(model_path.resolve()))
    candidates = _scan_data(config)
    if len(candidates) == 0:
        raise BumphuntError("the scan data hold no candidates (check the data file and the selection)")
    grid = (settings["start"], settings["stop"], settings["step_sigmas"], settings["veto_sigmas"], settings["step_gev"])
    masses, vetoed = scan_grid(model, *grid)
    keys = ("window_sigmas", "window_floor", "background_order", "confidence_level", "binned_above")
    task_settings = {k: settings[k] for k in keys}
    fingerprint = _fingerprint(task_settings, model_path.read_bytes(), candidates.tobytes(), *_code_identity())
    points_dir = output_dir / "points"
    points_dir.mkdir(parents=True, exist_ok=True)
    done = _finished_points(points_dir, fingerprint) if resume else {}
    todo = [m for m in masses if _point_key(m) not in done]
    tasks = _tasks(todo, candidates, model, str(model_path.resolve()), task_settings)
    workers = settings["workers"] if workers is None else workers
    workers = workers or os.cpu_count() or 1
    with progress_bar(progress) as bar, executor(workers, scheduler) as pool:
        advance = bar.add("scan mass points", len(todo))
        for rows in _run_tasks(tasks, pool, advance):
            for row in rows:
                key = _point_key(row["mass"])
                _atomic_write(points_dir / f"{key}.json", json.dumps({"fingerprint": fingerprint, "row": row}))
                done[key] = row
    from .kinematics import Beams

    sqrt_s = Beams.from_config(config).sqrt_s
    rows = [_with_exclusion(done[_point_key(m)], model, sqrt_s, config["luminosity"]) for m in masses]
    global_significance = _global_significance(config, rows, model_path, task_settings, workers, scheduler, progress)
    table_csv, table_json = _write_table(output_dir, rows, global_significance, vetoed, settings, fingerprint)
    plots = []
    if settings["plots"]:
        from .plotting import plot_brazil, plot_local_significance

        plots = [
            plot_brazil(rows, vetoed, output_dir / "upper_limits.png"),
            plot_local_significance(rows, vetoed, global_significance, output_dir / "local_significance.png"),
        ]
        if np.isfinite(global_significance["mass"]):
            plots.append(_plot_best_fit(candidates, model, global_significance, settings, output_dir / "best_fit.png"))
    return ScanResult(
        rows, global_significance, vetoed, table_csv, table_json, plots, time.perf_counter() - started,
        len(masses) - len(todo),
    )  # fmt: skip


def _plot_best_fit(candidates, model, global_significance, settings, path):
    """The fit at the mass of the largest local excess."""
    from .hypothesis import HypothesisLikelihood, hypothesis_data
    from .plotting import plot_hypothesis_fit

    mass = global_significance["mass"]
    shape = window_shape(model, mass, settings)
    data = hypothesis_data(candidates, shape, order=settings["background_order"], mass=mass)
    fit = HypothesisLikelihood(data).fit()
    title = f"m = {mass:.4f} GeV: $Z_{{local}}$ = {global_significance['z_local_max']:.2f}"
    return plot_hypothesis_fit(data, fit, path, title=title)


def _scan_data(config) -> np.ndarray:
    settings = config["scan"]
    if settings["data"] == "pseudo":
        inject = settings["inject"]
        return pseudo_data(config, seed=config["seed"], inject_mass=inject["mass"], inject_events=inject["events"])
    selection, variable = config["shapes"]["selection"], config["shapes"]["mass_variable"]
    return np.sort(_candidates(settings["data"], selection, variable))


def _point_key(mass: float) -> str:
    return f"m{mass:.7f}"


def _finished_points(points_dir: Path, fingerprint: str) -> dict:
    done = {}
    for path in points_dir.glob("m*.json"):
        try:
            content = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if content.get("fingerprint") == fingerprint:
            done[path.stem] = content["row"]
    return done


def _tasks(masses, candidates, model, model_path, settings, *, discovery_only=False):
    tasks = []
    for start in range(0, len(masses), _POINTS_PER_TASK):
        group = tuple(float(m) for m in masses[start : start + _POINTS_PER_TASK])
        first, last = window_shape(model, group[0], settings), window_shape(model, group[-1], settings)
        low, high = np.searchsorted(candidates, [first.lower, last.upper])
        tasks.append(ScanTask(group, candidates[low:high].copy(), model_path, settings, discovery_only))
    return tasks


def _with_exclusion(row: dict, model, sqrt_s: float, luminosity: float) -> dict:
    """Add the efficiency and the cross-section and coupling limits to a scan row."""
    mass = row["mass"]
    efficiency = float(model.efficiency(mass))
    sigma_unit = float(physics.alp_cross_section(mass, 1.0, sqrt_s))
    xsec_ul = row["ul_obs"] / (efficiency * luminosity) if efficiency > 0 else math.nan
    return {
        **row,
        "efficiency": efficiency,
        "xsec_ul_pb": xsec_ul,
        "g_ul_gev": math.sqrt(xsec_ul / sigma_unit) if xsec_ul >= 0 else math.nan,
    }


def upcrossings(z: np.ndarray, level: float) -> int:
    """Number of times the local significance crosses ``level`` from below along the scan."""
    above = np.nan_to_num(z, nan=-np.inf) > level
    return int(np.sum(~above[:-1] & above[1:]))


def _global_significance(config, rows, model_path, task_settings, workers, scheduler, progress) -> dict:
    """Gross-Vitells: p_global = p_local + <N(u0)> exp(-(Z^2 - u0^2) / 2), with the mean
    number of upcrossings above u0 counted on background-only pseudo-experiments."""
    from scipy import stats

    settings = config["scan"]
    z = np.array([r["z_local"] for r in rows], dtype=float)
    if not np.any(np.isfinite(z)):
        return {"z_local_max": math.nan, "mass": math.nan, "p_global": math.nan, "z_global": math.nan}
    best = int(np.nanargmax(z))
    z_max = float(z[best])
    u0 = settings["global_level"]
    counts = []
    if settings["global_toys"] > 0:
        model = _load_model(str(Path(model_path).resolve()))
        masses = [r["mass"] for r in rows]
        from ._progress import progress_bar

        with progress_bar(progress) as bar, executor(workers or os.cpu_count() or 1, scheduler) as pool:
            advance = bar.add("look-elsewhere toys", settings["global_toys"] * len(masses))
            for toy in range(settings["global_toys"]):
                candidates = pseudo_data(config, seed=config["seed"] + 1000 + toy)
                model_file = str(Path(model_path).resolve())
                tasks = _tasks(masses, candidates, model, model_file, task_settings, discovery_only=True)
                toy_rows = [row for rows_ in _run_tasks(tasks, pool, advance) for row in rows_]
                counts.append(upcrossings(np.array([r["z_local"] for r in toy_rows]), u0))
    else:
        counts.append(upcrossings(z, u0))
    mean_upcrossings = float(np.mean(counts))
    p_local = float(stats.norm.sf(z_max))
    p_global = min(1.0, p_local + mean_upcrossings * math.exp(-(z_max**2 - u0**2) / 2.0))
    return {
        "z_local_max": z_max,
        "mass": rows[best]["mass"],
        "p_local": p_local,
        "reference_level": u0,
        "mean_upcrossings": mean_upcrossings,
        "upcrossings_per_toy": counts,
        "p_global": p_global,
        "z_global": float(max(stats.norm.isf(p_global), 0.0)),
    }


def _write_table(output_dir: Path, rows, global_significance, vetoed, settings, fingerprint):
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = output_dir / "results.csv", output_dir / "results.json"
    tmp = csv_path.with_name(f".{csv_path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, csv_path)
    document = {
        "columns": list(COLUMNS),
        "rows": [{k: row.get(k) for k in COLUMNS} for row in rows],
        "global_significance": global_significance,
        "vetoed": {k: list(v) for k, v in vetoed.items()},
        "settings": settings,
        "fingerprint": fingerprint,
    }
    _atomic_write(json_path, json.dumps(document, indent=1, allow_nan=True))
    return csv_path, json_path
