"""The counting experiment: events in a signal window at every generated ALP mass, with limits
from the single-bin on/off likelihood of :mod:`bumphunt.stats.counting`.

At every generated mass between ``count.start`` and ``count.stop`` the window holds
``count.signal_fraction`` of the truth-matched signal candidates (equal tails around the
median); the signal efficiency and the background b in it come from the weighted
simulation after the kinematic fit and the selection (``shapes.selection`` on
``shapes.mass_variable``), b with its statistical uncertainty (and ``count.background_uncertainty``)
as the off count of the on/off likelihood. The data are a data ntuple or, by default,
pseudo-data drawn from the background simulation; the expected limits are the median and
quantiles of the limits on ``count.expected_toys`` such pseudo-data sets. Limits in events
become cross-section and coupling limits as in the scan (:func:`bumphunt.coupling.prompt_exclusion`).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, writable_folder
from .._progress import progress_bar
from ..config import validate_settings
from ..coupling import prompt_exclusion
from ..cuts import branches_used
from ..errors import BumphuntError, NtupleError
from ..kinematics import Beams
from ..layout import OutputLayout
from ..pipeline import COUNT, refuse_disagreement
from ..plotting import plot_brazil, plot_local_significance, save_figure
from ..results import ScanResult, write_table
from ..samples import sample_names, signal_sample
from ..stats.counting import CountingModel, discovery_pvalues, evaluate_counting, significance
from ..stats.lookelsewhere import global_significance, upcrossings
from ..systematics import Systematics
from .windows import Events, SignalMass, background_events, bootstrap_counts, signal_masses, signal_window

log = logging.getLogger(__name__)

#: The keys of the ``count`` section :func:`counting_model` reads.
COUNTING_SETTINGS = ("tau", "background_uncertainty", "efficiency_uncertainty")

#: The counting experiment's random streams derive from the analysis seed with this spawn key.
SEED_KEY = 16


@dataclass(frozen=True)
class Window:
    """The signal window of one generated mass and what the simulation and the data put in it.

    ``signal_fraction`` is the fraction of the truth-matched signal candidates inside (the
    configured one, up to the discreteness of the sample); ``background_mc_error`` the
    statistical uncertainty of ``background`` from the simulation's weights, sqrt(sum w^2).
    """

    mass: float
    low: float
    high: float
    truth_candidates: int
    signal_fraction: float
    efficiency: float
    background: float
    background_mc_error: float
    tau: float
    n_observed: float


@dataclass(frozen=True)
class CountSummary:
    """What :func:`run_count` computed and wrote."""

    result: ScanResult
    windows: list[Window]
    table_csv: Path
    table_json: Path
    windows_csv: Path
    plots: list[Path]
    seconds: float


def counting_model(n_observed: float, background: float, mc_error: float, settings: dict) -> CountingModel:
    """The on/off model of one window: tau from ``settings["tau"]`` or, when that is None, from
    the simulation's statistical uncertainty and the relative ``background_uncertainty`` added
    in quadrature (tau = b / sigma_b^2; b known where sigma_b = 0).

    ``settings`` holds the keys ``tau``, ``background_uncertainty`` and
    ``efficiency_uncertainty`` of the ``count`` section, checked as the configuration's are
    (:func:`bumphunt.config.validate_settings`: a ConfigError with the same message)."""
    settings = validate_settings("count", {key: settings[key] for key in COUNTING_SETTINGS})
    if settings["tau"] is not None:
        tau = float(settings["tau"])
    else:
        variance = mc_error**2 + (settings["background_uncertainty"] * background) ** 2
        tau = background / variance if variance > 0 and background > 0 else math.inf
    return CountingModel(n_observed, background, tau, settings["efficiency_uncertainty"])


def _observed_counts(config: dict, background: Events, in_windows: list, windows: list, seed) -> np.ndarray:
    """Events per window in the data ntuple, or in pseudo-data drawn from the background simulation."""
    settings = config["count"]
    if settings["data"] == "pseudo":
        return bootstrap_counts(background, in_windows, [seed])[0]
    data = Events.read(settings["data"], config["shapes"]["selection"], config["shapes"]["mass_variable"],
                       weighted=False)  # fmt: skip
    return np.array([float(len(data.in_window(low, high))) for low, high in windows])


def _signal_in_range(config: dict, layout: OutputLayout) -> list[SignalMass]:
    """The selected ALP events of every generated mass between count.start and count.stop."""
    settings, selection = config["count"], config["shapes"]["selection"]
    alp = layout.ntuple("kinfit", signal_sample(config))
    if not alp.is_file():
        raise NtupleError(
            f"{alp}: no such file; the count needs the ALP ntuple after the kinematic fit "
            "(run `bumphunt simulate` and `bumphunt kinfit`)"
        )
    friends = layout.friends(alp.stem, branches_used(selection))
    signal = [
        sample
        for sample in signal_masses(alp, selection, config["shapes"]["mass_variable"], friends=friends)
        if settings["start"] - 1e-9 <= sample.mass <= settings["stop"] + 1e-9
    ]
    where = f"between {settings['start']} and {settings['stop']} GeV"
    if not signal:
        raise BumphuntError(f"{alp}: no generated ALP mass {where} (count.start, count.stop)")
    if not any(len(sample.truth) for sample in signal):
        raise BumphuntError(
            f"{alp}: no selected signal event at any generated mass {where} (check shapes.selection: {selection!r})"
        )
    return signal


def run_count(config: dict, output_dir=None, *, progress: bool = True) -> CountSummary:
    """The counting experiment of an analysis: a signal window, its background and the limits
    at every generated ALP mass in ``count.start``-``count.stop``.

    Parameters
    ----------
    config : dict
        Validated configuration (``count`` section; ``shapes.selection`` and
        ``shapes.mass_variable``; luminosity, beams and seed).
    output_dir : path, optional
        Default ``<output_dir>/count``: ``results.csv``, ``results.json`` (the columns of the
        scan's table), ``windows.csv`` and the plots.
    """
    started = time.perf_counter()
    settings = config["count"]
    layout = OutputLayout.from_config(config).with_stage_dir("count", output_dir)
    refuse_disagreement(COUNT, config, layout)
    writable_folder(layout.count_dir)
    signal = _signal_in_range(config, layout)
    background = background_events(layout, config["shapes"]["selection"], config["shapes"]["mass_variable"],
                                   sample_names(config, "background"), luminosity=config["luminosity"])  # fmt: skip
    placed = [sample for sample in signal if len(sample.truth)]
    windows = [signal_window(sample.truth, settings["signal_fraction"]) for sample in placed]
    in_windows = [background.in_window(low, high) for low, high in windows]
    data_seed, toy_data_seed, toys_seed = np.random.SeedSequence(config["seed"], spawn_key=(SEED_KEY,)).spawn(3)
    observed = _observed_counts(config, background, in_windows, windows, data_seed)
    toy_counts = bootstrap_counts(background, in_windows, toy_data_seed.spawn(settings["expected_toys"]))
    options = dict(confidence_level=settings["confidence_level"], statistic=settings["limit"],
                   method=settings["method"], toys=settings["toys"], seed=toys_seed)  # fmt: skip
    conversion = dict(luminosity=config["luminosity"], sqrt_s=Beams.from_config(config).sqrt_s)
    systematics = Systematics.from_config(config["systematics"])
    counted = {}
    with progress_bar(progress) as bar:
        advance = bar.add("count mass points", len(placed))
        for index, (sample, window, in_window) in enumerate(zip(placed, windows, in_windows)):
            # the normalisation sources scale the signal as the efficiency does (docs/systematics.md)
            normalisation = systematics.normalisation_size(sample.mass)
            uncertainty = math.hypot(settings["efficiency_uncertainty"], normalisation)
            window_settings = dict(settings, efficiency_uncertainty=uncertainty)
            counted[sample.mass] = _count_window(sample, window, background.weights[in_window], observed[index],
                                                 toy_counts[:, index], window_settings, options,
                                                 conversion)  # fmt: skip
            advance(1)
    flagged = {"fit_status": "no selected signal event"}
    rows = [counted[s.mass][0] if s.mass in counted else {"mass": s.mass, **flagged} for s in signal]
    toy_z = np.array([counted[s.mass][2] if s.mass in counted else np.full(len(toy_counts), np.nan) for s in signal])
    window_rows = [counted[sample.mass][1] for sample in placed]
    _warn_about_empty_windows(window_rows)
    best = _global_significance(rows, toy_z.T, settings["global_level"])
    result = ScanResult.from_rows(rows, global_significance=best, vetoed={}, settings=dict(settings), kind="count")
    table_csv, table_json = write_table(result, layout.count_dir)
    windows_csv = atomic_write_text(layout.count_windows_csv, windows_table_csv(window_rows))
    plots = _plots(result, settings, layout) if settings["plots"] else []
    return CountSummary(result, window_rows, table_csv, table_json, windows_csv, plots, time.perf_counter() - started)


def _count_window(sample: SignalMass, window, weights, n_observed, toy_counts, settings, options, conversion):
    """The table row, the :class:`Window` and the local significance of every pseudo-data set at one mass."""
    low, high = window
    background, mc_error = float(weights.sum()), float(np.sqrt((weights**2).sum()))
    model = counting_model(float(n_observed), background, mc_error, settings)
    result = evaluate_counting(model, mass=sample.mass, background_counts=toy_counts, **options)
    toy_z = significance(discovery_pvalues(model, toy_counts, method=options["method"], toys=options["toys"],
                                           seed=options["seed"]))  # fmt: skip
    efficiency = float(sample.events.weights[sample.events.in_window(low, high)].sum()) * sample.efficiency_per_weight
    row = {**result.to_dict(), **prompt_exclusion(sample.mass, result.upper_limit, efficiency, **conversion)}
    inside = float(np.mean((sample.truth >= low) & (sample.truth <= high)))
    return row, Window(sample.mass, low, high, len(sample.truth), inside, efficiency, background, mc_error,
                       model.tau, model.n_observed), toy_z  # fmt: skip


def _warn_about_empty_windows(windows: list[Window]) -> None:
    empty = [window.mass for window in windows if window.background == 0]
    if empty:
        log.warning(
            "%d signal windows hold no simulated background event (the first at %.4g GeV): their background is "
            "taken as 0, known, which makes their limits those of a background-free count", len(empty), empty[0],
        )  # fmt: skip


def _global_significance(rows: list[dict], toy_z: np.ndarray, level: float):
    """The largest local excess and its Gross-Vitells global significance, the upcrossings of
    ``level`` counted on the pseudo-data sets (``toy_z``: data sets x masses)."""
    z = np.array([row.get("z_local", np.nan) for row in rows], dtype=float)
    masses = np.array([row["mass"] for row in rows], dtype=float)
    counts = [upcrossings(toy, level) for toy in toy_z] or [upcrossings(z, level)]
    return global_significance(z, masses, level, counts)


def _plots(result: ScanResult, settings: dict, layout: OutputLayout) -> list[Path]:
    statistic = {"cls": "CL$_s$", "clsb": "CL$_{s+b}$"}[settings["limit"]]
    label = f"{settings['confidence_level']:.0%} CL upper limit on $N_{{sig}}$ ({statistic})"
    return [
        save_figure(plot_brazil(result, ylabel=label), layout.count_plot("upper_limits")),
        save_figure(plot_local_significance(result), layout.count_plot("local_significance")),
    ]


def windows_table_csv(windows: list[Window]) -> str:
    """The windows as CSV text: floats to 8 significant digits."""
    buffer = io.StringIO(newline="")
    names = [name for name in Window.__dataclass_fields__]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\r\n")
    writer.writeheader()
    for window in windows:
        writer.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in asdict(window).items()})
    return buffer.getvalue()
