"""The bump hunt: fits at every mass hypothesis of the diphoton spectrum, limits, significance.

For each mass m of the scan grid (``scan.start`` to ``scan.stop`` in steps of
``scan.step_sigmas`` x sigma(m), with windows of +-``scan.veto_sigmas`` sigma(m) around the
pi0, eta and eta' masses vetoed) the candidates in m +- ``scan.window_sigmas`` sigma(m) are
fitted with the interpolated signal shape plus a Chebyshev background
(:mod:`bumphunt.stats`), giving the signal yield, the local significance and the asymptotic
CLs upper limits. The global significance of the largest excess follows Gross and Vitells
(EPJC 70 (2010) 525), with the mean number of upcrossings counted on background-only
pseudo-experiments.

Pseudo-data, the toys and data ntuples are held as sorted candidate masses or, above
2,000,000 candidates (``scan.data_binning``), as counts in a histogram of sigma(m)/50 bins
drawn or read chunk by chunk, whose memory does not grow with the luminosity
(:mod:`~bumphunt.scan.data`).

Each mass point is written to its own file as soon as it is done, so an interrupted scan
resumes where it stopped; mass points run in parallel over local processes, or on a Dask
cluster given its scheduler address, with identical results.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import stats
from .._parallel import dask_scheduler, executor
from .._progress import progress_bar
from ..config import load_config, validate_settings
from ..coupling import limit_columns
from ..cuts import branches_used
from ..errors import BumphuntError, NtupleError
from ..kinematics import Beams
from ..layout import OutputLayout
from ..models.signal import ShapeModel
from ..ntuple import TREE_NAME, num_entries
from ..pipeline import refuse_disagreement
from ..plotting import (
    mark_blinded,
    plot_brazil,
    plot_hypothesis_fit,
    plot_local_significance,
    plot_systematic_impacts,
    save_figure,
)
from ..results import ScanResult, write_table
from ..samples import blinded, sample_names, scan_data, signal_sample
from ..stats.lookelsewhere import GlobalSignificance, global_significance, upcrossings
from ..stats.systematics import model_nuisances
from ..systematics import Systematics
from .data import (
    BackgroundModel,
    Spectrum,
    candidates,
    candidates_histogram,
    check_bin_widths,
    check_units,
    checked_fill,
    data_entries,
    histogram_edges,
    histogram_wanted,
    spectrum_from,
    takes_branches,
)
from .grid import scan_grid
from .impacts import ImpactTable, impact_masses, impact_table
from .runner import (
    code_identity,
    fingerprint,
    finished_points,
    load_model,
    lock_scan_folder,
    make_tasks,
    point_data,
    point_key,
    remove_stale_results,
    run_tasks,
    save_point,
    window_shape,
)

log = logging.getLogger(__name__)

#: The settings of the ``scan`` section that change the numbers of a mass point.
POINT_SETTINGS = (
    "window_sigmas", "window_floor", "window_ceiling", "background_order", "background_from_sidebands",
    "sideband_veto_sigmas", "confidence_level", "binned_above",
)  # fmt: skip


@dataclass(frozen=True)
class ScanSummary:
    """What :func:`run_scan` computed and wrote."""

    result: ScanResult
    table_csv: Path
    table_json: Path
    plots: list[Path]
    seconds: float
    impacts: ImpactTable | None = None  # limits without each systematic source (``scan/impacts.csv``)

    @property
    def resumed_points(self) -> int:
        return self.result.resumed_points


def _selection_of(model: ShapeModel) -> tuple[str, str]:
    """The selection and the mass variable the signal model was fitted with."""
    return model.settings.get("selection", ""), model.settings["mass_variable"]


def _evaluate_points(masses, spectrum, model, model_ref, settings, pool, advance, *, done=None, on_row=None,
                     discovery_only=False) -> dict:  # fmt: skip
    """Rows of the mass points not yet in ``done``, keyed by :func:`point_key`."""
    done = {} if done is None else done
    todo = [m for m in masses if point_key(m) not in done]
    tasks = make_tasks(todo, spectrum, model, model_ref, settings, discovery_only=discovery_only)
    for rows in run_tasks(tasks, pool, advance):
        for row in rows:
            if on_row is not None:
                on_row(row)
            done[point_key(row["mass"])] = row
    return done


def _check_model_fits_analysis(model: ShapeModel, path: Path, config: dict) -> None:
    """Refuse signal shapes fitted at another sqrt(s); say when their selection or mass
    variable (which the scan uses) differ from the configuration's."""
    sqrt_s, fitted = Beams.from_config(config).sqrt_s, model.settings.get("sqrt_s")
    if fitted is not None and not math.isclose(fitted, sqrt_s, rel_tol=1e-9):
        raise BumphuntError(
            f"{path}: signal shapes fitted at sqrt(s) = {fitted:.6f} GeV, the analysis has {sqrt_s:.6f} GeV; "
            "fit them again (bumphunt shapes) or set scan.shapes to matching ones"
        )
    selection, mass_variable = _selection_of(model)
    if (selection, mass_variable) != (config["shapes"]["selection"], config["shapes"]["mass_variable"]):
        log.warning(
            "the scan selects %r on %s as the signal shapes in %s were fitted, not as shapes.selection and "
            "shapes.mass_variable say (%r on %s)", selection, mass_variable, path, config["shapes"]["selection"],
            config["shapes"]["mass_variable"],
        )  # fmt: skip


def _background_model(config: dict, layout: OutputLayout, model: ShapeModel) -> BackgroundModel | None:
    """The background simulation for pseudo-data and look-elsewhere toys (None when neither
    is asked for); checked before any fit."""
    settings = config["scan"]
    source = scan_data(config, layout)
    if source != "pseudo" and settings["global_toys"] == 0:
        return None
    selection, mass_variable = _selection_of(model)
    try:
        return BackgroundModel(layout, selection, mass_variable, model.resolution, mode=settings["pseudo_data"],
                               smoothing=settings["background_smoothing"],
                               backgrounds=sample_names(config, "background"),
                               signal_name=signal_sample(config), luminosity=config["luminosity"])  # fmt: skip
    except NtupleError as error:
        if source == "pseudo":
            raise
        raise BumphuntError(
            f"{settings['global_toys']} look-elsewhere toys need the background simulation in {layout.kinfit_dir} "
            f"({error}); simulate it, or set scan.global_toys=0 to count the upcrossings on the scan itself"
        ) from None


def _analysis_data(config: dict, layout: OutputLayout, model: ShapeModel, background) -> tuple[Spectrum, int]:
    """The spectrum the analysis scans and the candidates dropped for a NaN mass: pseudo-data
    of ``background`` or the data ntuple ``scan.data``, as sorted candidates or, by
    ``scan.data_binning``, as a histogram of sigma(m)/50 bins filled chunk by chunk."""
    settings = config["scan"]
    selection, mass_variable = _selection_of(model)
    source = scan_data(config, layout)
    if source == "pseudo":
        inject = settings["inject"]
        binned = histogram_wanted(settings["data_binning"], background.expected_candidates)
        spectrum = background.draw(config["seed"], binned=binned, inject_mass=inject["mass"],
                                   inject_events=inject["events"])  # fmt: skip
        dropped = 0
    else:
        own = Path(source).parent == layout.kinfit_dir  # the data sample, with its selection friend
        friends = layout.friends(Path(source).stem, branches_used(selection)) if own else ()
        sqrt_s = Beams.from_config(config).sqrt_s
        if histogram_wanted(settings["data_binning"], num_entries(source)):
            edges = histogram_edges(model.resolution, sqrt_s)
            fill = candidates_histogram(source, selection, mass_variable, edges, friends=friends)
            spectrum, dropped = checked_fill(fill), fill.dropped
        else:
            x, dropped = candidates(source, selection, mass_variable, count_dropped=True, friends=friends)
            spectrum = Spectrum(np.sort(x))
        if spectrum.n_events > 0:
            check_units(spectrum, sqrt_s, f"sqrt(s) = {sqrt_s:.4f} GeV")
    if spectrum.n_events == 0:
        raise BumphuntError("the scan data hold no candidates (check the data file and the selection)")
    return spectrum, dropped


def _spectrum_bytes(spectrum: Spectrum) -> tuple[bytes, ...]:
    """What identifies the scanned data in the fingerprint: the candidates, or the histogram."""
    if not spectrum.binned:
        return (spectrum.x.tobytes(),)
    return b"histogram", spectrum.edges.tobytes(), spectrum.weights.tobytes()


def _with_conversion(row: dict, model: ShapeModel, luminosity: float | None, sqrt_s: float | None) -> dict:
    low, high = model.mass_range
    if not low <= row["mass"] <= high:
        return {**row, "efficiency": np.nan, "xsec_ul_pb": np.nan, "g_ul_gev": np.nan}
    efficiency = float(model.efficiency(row["mass"]))
    if luminosity is None or sqrt_s is None or not math.isfinite(row.get("ul_obs", math.nan)):
        # no limit to convert: the efficiency at the generated lifetime
        return {**row, "efficiency": efficiency, "xsec_ul_pb": np.nan, "g_ul_gev": np.nan}
    # self-consistent with the lifetime the limit implies (bumphunt.coupling, the exclusion stage's conversion)
    efficiency = model.efficiency_of_lifetime(row["mass"])
    return {**row, **limit_columns(row.get("ul_obs", math.nan), row["mass"], luminosity, sqrt_s, efficiency)}


def run_scan(
    config: dict,
    *,
    output_dir=None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    resume: bool = True,
) -> ScanSummary:
    """The scan stage of an analysis: fit, limits and significance at every mass hypothesis.

    Parameters
    ----------
    config : dict
        Validated configuration (``scan`` section, luminosity).
    output_dir : path, optional
        Default ``<output_dir>/scan``: ``results.csv``, ``results.json``, the plots, and
        ``points/`` with one file per mass point (what a resumed scan reuses).
    workers : int, optional
        Local worker processes (default ``scan.workers``; 0 = one per core).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``; default the configuration's
        ``dask.scheduler``); overrides ``workers``.
    resume : bool
        Reuse finished mass points of an interrupted scan with the same inputs.
    """
    started = time.perf_counter()
    layout = OutputLayout.from_config(config).with_stage_dir("scan", output_dir)
    refuse_disagreement("scan", config, layout)
    lock = lock_scan_folder(layout)
    try:
        scheduler = dask_scheduler(config, scheduler)
        return _scan_analysis(config, layout, workers, scheduler, progress, resume, started)
    finally:
        lock.release()


def _scan_analysis(config, layout, workers, scheduler, progress, resume, started) -> ScanSummary:
    """:func:`run_scan` in its locked folder."""
    settings = config["scan"]
    model_path = Path(settings["shapes"] or layout.shapes_file).resolve()
    model = load_model(str(model_path))
    _check_model_fits_analysis(model, model_path, config)
    masses, vetoed = scan_grid(  # refuses a range without a mass hypothesis, before any work
        model, settings["start"], settings["stop"], settings["step_sigmas"], settings["veto_sigmas"],
        settings["step_gev"],
    )  # fmt: skip
    background = _background_model(config, layout, model)
    spectrum, dropped = _analysis_data(config, layout, model, background)
    point_settings = {k: settings[k] for k in POINT_SETTINGS}
    point_settings["systematics"] = config["systematics"]["sources"]
    key = fingerprint(point_settings, model_path.read_bytes(), *_spectrum_bytes(spectrum), *code_identity())
    remove_stale_results(layout, key)
    points_dir = layout.scan_points_dir
    points_dir.mkdir(parents=True, exist_ok=True)
    done = finished_points(points_dir, key) if resume else {}
    resumed = sum(point_key(m) in done for m in masses)
    workers = settings["workers"] if workers is None else workers
    workers = workers or os.cpu_count() or 1
    run = dict(workers=workers, scheduler=scheduler, progress=progress)
    with progress_bar(progress) as bar, executor(workers, scheduler) as pool:
        advance = bar.add("scan mass points", len(masses) - resumed)
        _evaluate_points(masses, spectrum, model, str(model_path), point_settings, pool, advance, done=done,
                         on_row=lambda row: save_point(points_dir, key, row))  # fmt: skip
        impacts = _impacts(config, masses, done, spectrum, model, str(model_path), point_settings, pool, bar)
    rows = [_with_conversion(done[point_key(m)], model, config["luminosity"], model.settings.get("sqrt_s"))
            for m in masses]  # fmt: skip

    def toy_spectrum(toy: int) -> Spectrum:
        binned = histogram_wanted(settings["data_binning"], background.expected_candidates)
        return background.draw(config["seed"] + 1000 + toy, binned=binned)

    significance = _look_elsewhere(rows, model, str(model_path), point_settings, settings, toy_spectrum, run)
    result = ScanResult.from_rows(
        rows, global_significance=significance, vetoed=vetoed, settings={**settings, "blinded": blinded(config)},
        fingerprint=key,
        resumed_points=resumed, dropped_candidates=dropped,
    )  # fmt: skip
    table_csv, table_json = write_table(result, layout.scan_dir)
    impacts_csv = layout.scan_impacts_csv
    if impacts is not None:
        impacts.write(impacts_csv)
    else:
        impacts_csv.unlink(missing_ok=True)
    plots = []
    if settings["plots"]:
        marked = mark_blinded if blinded(config) else (lambda axes: axes)
        plots = [
            save_figure(marked(plot_brazil(result)), layout.scan_plot("upper_limits")),
            save_figure(marked(plot_local_significance(result)), layout.scan_plot("local_significance")),
        ]
        if impacts is not None and impacts.rows:
            plots.append(save_figure(marked(plot_systematic_impacts(impacts)), layout.scan_plot("systematics_impact")))
        found = np.isfinite(significance.mass)
        best_fit = _best_fit_axes(spectrum, model, significance, point_settings) if found else None
        if best_fit is not None:
            plots.append(save_figure(marked(best_fit), layout.scan_plot("best_fit")))
    return ScanSummary(result, table_csv, table_json, plots, time.perf_counter() - started, impacts)


def _impacts(config, masses, done, spectrum, model, model_ref, point_settings, pool, bar) -> ImpactTable | None:
    """The limits without each systematic source and without all, at masses
    ``systematics.impact_step`` apart (None when there are no sources or no step)."""
    section = config["systematics"]
    systematics = Systematics.from_config(section)
    if not systematics or section["impact_step"] <= 0:
        return None
    scan = config["scan"]
    fitted = np.array([done[point_key(m)]["fit_status"] == "ok" for m in masses], dtype=bool)
    chosen = impact_masses(masses, fitted, scan["start"], scan["stop"], section["impact_step"])
    advance = bar.add("systematic impacts", len(chosen) * (1 + len(systematics.names)))

    def evaluate(points, sources):
        if sources is systematics:
            return [done[point_key(m)] for m in points]
        variant = dict(point_settings, systematics=sources)
        rows = _evaluate_points(points, spectrum, model, model_ref, variant, pool, advance)
        return [rows[point_key(m)] for m in points]

    return impact_table(systematics, chosen, evaluate)


def _look_elsewhere(rows, model, model_ref, point_settings, settings, toy_spectrum, run) -> GlobalSignificance:
    """Global significance of the largest local excess, with the upcrossings of
    ``settings["global_level"]`` counted on ``settings["global_toys"]`` background-only
    pseudo-experiments (on the scan itself without toys)."""
    z = np.array([r["z_local"] for r in rows], dtype=float)
    masses = np.array([r["mass"] for r in rows], dtype=float)
    level = settings["global_level"]
    if not np.any(np.isfinite(z)) or settings["global_toys"] <= 0 or toy_spectrum is None:
        return global_significance(z, masses, level, [upcrossings(z, level)])
    counts = []
    with progress_bar(run["progress"]) as bar, executor(run["workers"], run["scheduler"]) as pool:
        advance = bar.add("look-elsewhere toys", settings["global_toys"] * len(masses))
        for toy in range(settings["global_toys"]):
            toy_rows = _evaluate_points(masses, toy_spectrum(toy), model, model_ref, point_settings, pool, advance,
                                        discovery_only=True)  # fmt: skip
            counts.append(upcrossings(np.array([toy_rows[point_key(m)]["z_local"] for m in masses]), level))
    return global_significance(z, masses, level, counts)


def _best_fit_axes(spectrum: Spectrum, model: ShapeModel, significance: GlobalSignificance, settings: dict):
    """The fit at the mass of the largest local excess, drawn."""
    mass = significance.mass
    shape = window_shape(model, mass, settings)
    data = point_data(spectrum.x, shape, model, mass, settings, weights=spectrum.weights,
                      nuisances=model_nuisances(model, shape, mass, settings.get("systematics")))  # fmt: skip
    if isinstance(data, str):
        return None
    fit = stats.HypothesisLikelihood(data).fit()
    title = f"m = {mass:.4f} GeV: $Z_{{local}}$ = {significance.z_local_max:.2f}"
    return plot_hypothesis_fit(data, fit, title=title)


def scan_spectrum(
    data,
    shapes: ShapeModel | str | Path,
    *,
    start: float,
    stop: float,
    tree: str | None = None,
    mass: str | None = None,
    selection: str | None = None,
    luminosity: float | None = None,
    limits: bool = True,
    workers: int = 1,
    progress: bool = False,
    systematics=None,
    **settings,
) -> ScanResult:
    """Scan a spectrum of one's own: no configuration file needed.

    Parameters
    ----------
    data : array, path, uproot TTree, table or hist.Hist
        Candidate masses (GeV) as a one-dimensional array of numbers (NaN dropped; an array
        of more dimensions is refused, not flattened); a ROOT file (path) or an uproot
        ``TTree`` (``uproot.open(path)["alp"]``), of which ``mass`` gives the candidates; a
        table of columns (a dict of arrays, a numpy structured array, a pandas
        ``DataFrame``), read as a tree; or a one-dimensional ``hist.Hist`` of the mass
        (fitted binned; weighted histograms through the scaled-Poisson approximation).
    shapes : ShapeModel or path
        The signal model (``signal_shapes.json`` of the shape stage).
    start, stop : float
        The mass range (GeV).
    tree : str, optional
        The tree of a ROOT file (default ``events``, bumphunt's own ntuples).
    mass : str, optional
        The mass (GeV) in a file, tree or table: a branch, or an expression of branches with
        numbers, ``+ - * / **``, ``abs``, ``sqrt`` and indexing with integers and slices
        (``"m_gg_fit[:, 0]"``, ``"M / 1000"``; nothing else is evaluated). A branch of several
        candidates per entry gives them all. Default: the signal model's mass variable.
    selection : str, optional
        A cut on the entries of a file, tree or table (:mod:`bumphunt.cuts`). Default: the
        signal model's selection when ``mass`` is not given (bumphunt's own ntuples), none
        when it is (a user's candidates, selected as the signal shapes were).
    luminosity : float, optional
        Integrated luminosity (pb^-1, > 0 as the configuration's ``luminosity``): adds the
        cross-section and coupling limits.
    limits : bool
        Compute the upper limits; without them (NaN columns) a scan of the local
        significance alone is several times faster.
    workers : int
        Local worker processes (``scan.workers``: 0 = one per core).
    progress : bool
        Show a progress bar.
    systematics : Systematics or list of dict, optional
        Systematic sources (:class:`bumphunt.systematics.Systematics`, or the
        ``systematics.sources`` list of a configuration); none by default.
    **settings
        Any other key of the ``scan`` configuration section (``step_sigmas``,
        ``window_sigmas``, ``background_order``, ``global_toys`` is ignored: without
        background samples the look-elsewhere effect is estimated on the scan itself).
        Defaults are those of the bundled analysis. These settings, ``start``, ``stop``,
        ``workers``, ``luminosity`` and ``systematics`` are checked as the configuration's
        keys are (:func:`bumphunt.config.validate_settings`), with the same messages.

    Returns
    -------
    ScanResult

    Raises
    ------
    BumphuntError
        On one line: data that are not numbers or have more than one dimension; a missing
        file, tree or branch, or a malformed ``mass`` expression; masses that look like MeV
        (every candidate above sqrt(s) of the signal model, or, for a model without it,
        above 1000 x ``stop``); a range beyond sqrt(s), or without a mass hypothesis (inside
        a veto). :class:`~bumphunt.errors.ConfigError`, as for a configuration: an unknown
        setting, or a value the configuration refuses (``confidence_level=1.5``,
        ``luminosity=-1``, ``start`` not below ``stop``), all before any work.

    Notes
    -----
    Two problems are logged as warnings (logger ``bumphunt.scan.data``), and the scan goes
    on: more than half of the candidates above sqrt(s) (masses in MeV?), and histogram bins
    in the scan range wider than a third of the signal resolution at their mass
    (:data:`~bumphunt.scan.data.BIN_WIDTH_RESOLUTIONS`), which smear the peak or fail the
    fits.
    """
    # the settings as a configuration's: the same schema, checks and messages (bumphunt.config)
    given = validate_settings("scan", {**settings, "start": start, "stop": stop, "workers": workers})
    if luminosity is not None:
        luminosity = validate_settings("", {"luminosity": luminosity})["luminosity"]
    if not isinstance(systematics, Systematics):
        systematics = Systematics.from_config(validate_settings("systematics", {"sources": systematics or []}))
    settings = {**load_config()["scan"], **given}
    start, stop, workers = settings["start"], settings["stop"], settings["workers"] or os.cpu_count() or 1
    model = shapes if isinstance(shapes, ShapeModel) else load_model(str(Path(shapes).resolve()))
    sqrt_s = model.settings.get("sqrt_s")
    if sqrt_s is not None and stop >= sqrt_s:
        raise BumphuntError(f"the scan range must end below sqrt(s) = {sqrt_s:.4f} GeV, got stop = {stop}")
    masses, vetoed = scan_grid(  # refuses a range without a mass hypothesis, before the data are read
        model, start, stop, settings["step_sigmas"], settings["veto_sigmas"], settings["step_gev"]
    )
    spectrum = _own_spectrum(data, model, tree, mass, selection, settings)
    if spectrum.n_events == 0:
        raise BumphuntError("the data hold no candidates")
    if sqrt_s is not None:
        check_units(spectrum, sqrt_s, f"sqrt(s) = {sqrt_s:.4f} GeV")
    else:
        check_units(spectrum, 1000.0 * stop, f"1000 x stop = {1000.0 * stop:g} GeV")
    check_bin_widths(spectrum, model.resolution, start, stop, model.mass_range)
    point_settings = {k: settings[k] for k in POINT_SETTINGS}
    point_settings["systematics"] = systematics
    run = dict(workers=workers, scheduler=None, progress=progress)
    with progress_bar(progress) as bar, executor(workers) as pool:
        advance = bar.add("scan mass points", len(masses))
        done = _evaluate_points(
            masses, spectrum, model, model, point_settings, pool, advance, discovery_only=not limits
        )
    rows = [_with_conversion(done[point_key(m)], model, luminosity, model.settings.get("sqrt_s")) for m in masses]
    significance = _look_elsewhere(rows, model, model, point_settings, settings, None, run)
    return ScanResult.from_rows(rows, global_significance=significance, vetoed=vetoed, settings=settings)


def _own_spectrum(data, model: ShapeModel, tree: str | None, mass: str | None, selection: str | None,
                  settings: dict) -> Spectrum:  # fmt: skip
    """The :class:`Spectrum` of :func:`scan_spectrum`'s data: the signal model's mass variable
    and selection unless ``mass`` (and ``selection``) say otherwise; a histogram of
    sigma(m)/50 bins up to sqrt(s) (or the last window) by ``settings["data_binning"]``."""
    given = [name for name, value in (("tree", tree), ("mass", mass), ("selection", selection)) if value is not None]
    if given and not takes_branches(data):
        raise BumphuntError(
            f"{given[0]}= applies to a ROOT file, TTree or table, not to data of type {type(data).__name__}"
        )
    if tree is not None and not isinstance(data, (str, os.PathLike)) and not hasattr(data, "classnames"):
        raise BumphuntError("tree= names a tree in a ROOT file; the data are a tree or table already")
    model_selection, model_mass = _selection_of(model)
    if mass is None:
        mass, selection = model_mass, model_selection if selection is None else selection
    edges = None
    if histogram_wanted(settings["data_binning"], data_entries(data, tree=tree or TREE_NAME)):
        top = model.settings.get("sqrt_s") or window_shape(model, settings["stop"], settings).upper
        edges = histogram_edges(model.resolution, top)
    return spectrum_from(data, selection=selection or "", mass_variable=mass, tree=tree or TREE_NAME, edges=edges)
