"""The selection stage: train the Punzi-net on the kinematically fitted samples, choose its
working point, score every event, and compare with the baselines.

Reads every ntuple of ``kinfit/``; writes, below ``select/`` (:class:`~bumphunt.layout.OutputLayout`):

- ``<sample>.root``: a friend ntuple per sample, entry by entry with its kinematic-fit ntuple,
  holding ``punzi_score`` and ``punzi_selected`` (pre-selection and score >= working point);
  the shapes and the scan read ``punzi_selected`` through it (``shapes.selection``);
- ``punzinet/``: the trained network (:class:`~bumphunt.select.network.PunziNet`);
- ``fom.csv`` / ``fom.json``: sigma_min per generated mass for the Punzi-net cut and the
  baselines; plots ``fom.png``, ``training.png``, ``scores.png``.

Events: those passing ``select.preselection``, split at random (seeded) into a test part
(``test_fraction``; every figure of merit reported is measured on it) and a training part,
from which the network takes ``network.validation_fraction`` for early stopping. Signal events
of the held-out masses never enter the training. The optimisation window of a generated mass
m is m +- ``window_sigmas`` sigma(m), sigma(m) the 68 % half-width of its truth-matched
candidates (:func:`~bumphunt.models.signal.core_width`). Efficiencies count the events with a
candidate in the window over the generated events at m (the sample's ISR factor and trigger
efficiency, nearly constant in mass, are left out); the background is the weighted events
(expected at ``luminosity``) with a candidate in the window, scaled to the full sample.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from .._io import atomic_write_text, writable_folder, write_json
from .._parallel import InlineExecutor, check_worker_access, dask_scheduler, executor, ordered_map
from .._progress import progress_bar
from ..cuts import branches_used, evaluate_cut
from ..errors import BumphuntError, NtupleError
from ..kinematics import Beams
from ..layout import OutputLayout
from ..models.signal import core_width
from ..models.splines import held_out_masses
from ..ntuple import (
    Branch,
    NtupleWriter,
    friend_fingerprint,
    iterate_ntuple,
    num_entries,
    read_metadata,
    read_selected,
    truth_matched_pairs,
)
from ..pipeline import refuse_disagreement
from ..plotting import blind_mask, plot_data_mc, plot_fom, plot_score_distributions, plot_training, save_figure
from ..samples import analysis_samples, blinded, data_sample, sample_names, signal_sample
from .baselines import (
    best_cut_per_region,
    mass_regions,
    permutation_importance,
    region_fom_grid,
    region_of,
    train_region_bdts,
)
from .features import FEATURE_BRANCHES, FEATURES, compute_features
from .fom import FomGrid, Membership, Selection, bootstrap_mean_sigma_min, fom_grid, own_window, window_membership
from .loss import soft_windows
from .network import WEIGHTS_FILE, NetworkSettings, PunziNet, train_bce, train_punzi

log = logging.getLogger(__name__)

#: Branches of a friend ntuple (``select/<sample>.root``).
FRIEND_BRANCHES = {
    "event_id": Branch("int64", (), "", "index of the generated event within its sample (as in kinfit/)"),
    "punzi_score": Branch("float32", (), "", "Punzi-net output in [0, 1]; NaN where the features are not finite"),
    "punzi_selected": Branch("int32", (), "", "1: passes select.preselection and punzi_score >= the working point"),
}
#: Cut values on the network output at which figures of merit are evaluated: steps of 0.005,
#: finer towards 0 and 1, where a Punzi-net's outputs pile up.
_NEAR_ENDS = np.geomspace(1e-5, 5e-3, 30)
CUT_GRID = np.unique(np.r_[np.linspace(0.0, 1.0, 201), _NEAR_ENDS, 1.0 - _NEAR_ENDS])
CHUNK = 500_000
#: Bootstrap replicas of the test events for the uncertainty of the mean sigma_min comparison.
BOOTSTRAP_REPLICAS = 200
#: Mass regions of the BDT baseline (one classifier and one cut each), as in other analyses of our field.
N_BDT_REGIONS = 4


@dataclass
class EventSet:
    """Pre-selected events of one sample: features, diphoton candidates and weights."""

    sample: str
    features: np.ndarray
    candidates: np.ndarray
    weights: np.ndarray
    gen_mass: np.ndarray
    matched: np.ndarray
    test: np.ndarray = field(default=None)


@dataclass(frozen=True)
class SelectSummary:
    """What :func:`run_select` produced."""

    working_point: float
    table: dict
    friends: list[Path]
    model_path: Path
    plots: list[Path]
    seconds: float

    def mean_sigma_min(self, column: str, *, held_out: bool) -> float:
        """Mean sigma_min (pb) of a table column over the training or the held-out masses."""
        rows = [r for r in self.table["masses"] if r["held_out"] == held_out and math.isfinite(r[column])]
        return float(np.mean([r[column] for r in rows])) if rows else math.nan


def read_events(path, sample: str, settings: dict, beams: Beams, rng: np.random.Generator, *,
                luminosity: float | None = None) -> EventSet:  # fmt: skip
    """The pre-selected events of an ntuple with their features, split into training and test;
    weights at ``luminosity`` (pb^-1; as stored when None)."""
    mass_variable = settings["mass_variable"]
    needed = set(FEATURE_BRANCHES) | {mass_variable, "weight", "gen_mass", "photon_origin"}
    needed |= branches_used(settings["preselection"])
    parts = {name: [] for name in ("features", "candidates", "weights", "gen_mass", "matched")}
    invalid = 0
    for chunk in iterate_ntuple(path, sorted(needed), step_size=CHUNK, luminosity=luminosity):
        n = len(chunk["weight"])
        keep = evaluate_cut(settings["preselection"], chunk, n)
        table = compute_features({k: v[keep] for k, v in chunk.items() if k in FEATURE_BRANCHES}, beams)
        valid = ~table.invalid
        invalid += table.n_invalid
        parts["features"].append(table.values[valid].astype(np.float32))
        parts["candidates"].append(np.asarray(chunk[mass_variable][keep][valid], dtype=np.float64))
        parts["weights"].append(np.asarray(chunk["weight"][keep][valid], dtype=np.float64))
        parts["gen_mass"].append(np.round(chunk["gen_mass"][keep][valid], 9))
        parts["matched"].append(truth_matched_pairs(chunk["photon_origin"][keep][valid]))
    if invalid:
        log.warning("%s: %d pre-selected events with non-finite features left out", path, invalid)
    empty = {"features": (0, len(FEATURES)), "candidates": (0, 3), "matched": (0, 3)}
    arrays = {k: np.concatenate(v) if v else np.empty(empty.get(k, (0,))) for k, v in parts.items()}
    events = EventSet(sample, **arrays)
    events.test = rng.random(len(events.weights)) < settings["test_fraction"]
    return events


def mass_windows(signal: EventSet, masses: np.ndarray, window_sigmas: float):
    """sigma(m) (68 % half-width of the truth-matched candidates) and the windows m +- n sigma(m)."""
    sigma = np.empty(len(masses))
    for i, mass in enumerate(masses):
        at = signal.gen_mass == mass
        truth = signal.candidates[at][signal.matched[at]]
        truth = truth[np.isfinite(truth)]
        if len(truth) < 50:
            raise BumphuntError(f"only {len(truth)} truth-matched candidates at m = {mass:.4f} GeV: no window")
        sigma[i] = core_width(truth)
    return sigma, np.maximum(masses - window_sigmas * sigma, 0.0), masses + window_sigmas * sigma


@dataclass
class _Part:
    """Signal and background events of one part of the split, with their windows."""

    signal_features: np.ndarray
    signal_mass: np.ndarray
    signal_membership: Membership
    n_generated: np.ndarray
    background_features: np.ndarray
    background_weights: np.ndarray
    background_membership: Membership


def _part(signal, backgrounds, signal_rows, background_rows, masses, lower, upper, generated, stored):
    """The events of ``signal_rows`` / ``background_rows`` with windows, scaled to the full sample."""
    mass_index = {m: i for i, m in enumerate(masses)}
    own = np.array([mass_index.get(m, -1) for m in signal.gen_mass[signal_rows]])
    membership = own_window(window_membership(signal.candidates[signal_rows], lower, upper), own)
    used = np.bincount(own[own >= 0], minlength=len(masses))
    # the efficiency's denominator: the generated events these rows stand for
    n_generated = np.array([generated[m] for m in masses]) * used / np.maximum([stored[m] for m in masses], 1)
    features = np.concatenate([b.features[r] for b, r in zip(backgrounds, background_rows)])
    weights = np.concatenate([b.weights[r] / max(np.mean(r), 1e-300) for b, r in zip(backgrounds, background_rows)])
    candidates = np.concatenate([b.candidates[r] for b, r in zip(backgrounds, background_rows)])
    return _Part(signal.features[signal_rows], signal.gen_mass[signal_rows], membership, n_generated, features, weights,
                 window_membership(candidates, lower, upper))  # fmt: skip


def _grid(part: _Part, signal_scores, background_scores, luminosity, fom_options) -> FomGrid:
    return fom_grid(signal_scores, part.signal_membership, part.n_generated, background_scores,
                    part.background_weights, part.background_membership, CUT_GRID, luminosity,
                    **fom_options)  # fmt: skip


def _fom_options(settings: dict) -> dict:
    return {"a": settings["punzi_a"], "b": settings["punzi_b"], "form": settings["punzi_form"],
            "constant": settings["punzi_constant"]}  # fmt: skip


def choose_working_point(grid: FomGrid) -> float:
    """The cut that minimises the mean sigma_min over the windows of ``grid``."""
    values = grid.sigma_min
    mean = np.where(np.all(np.isfinite(values), axis=1), values.mean(axis=1), np.inf)
    if not np.isfinite(mean).any():
        raise BumphuntError("no cut on the Punzi-net output keeps signal in every training window")
    return float(grid.cuts[int(np.argmin(mean))])


def run_select(
    config: dict, output_dir=None, *, model_path=None, scheduler: str | None = None, progress: bool = True
) -> SelectSummary:
    """The selection stage: train (or load) the Punzi-net, choose the working point, score
    every sample, write the friend ntuples, the figure-of-merit table and the plots.

    Parameters
    ----------
    config : dict
        Validated configuration (its ``select`` section, ``luminosity``, ``seed``).
    output_dir : path, optional
        Default ``<output_dir>/select``.
    model_path : path, optional
        A saved Punzi-net folder to apply instead of training one (its working point is kept).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``), the configuration's ``dask.scheduler``
        by default: the events of every sample are then scored in chunks by the workers of its
        cluster, each loading the network from its saved folder (on a filesystem shared with
        this machine). Training stays here; every way gives the same friend ntuples.
    """
    started = time.perf_counter()
    with executor(1, dask_scheduler(config, scheduler)) as pool:  # an unreachable cluster fails before training
        return _select(config, output_dir, model_path, progress, pool, started)


def _select(config: dict, output_dir, model_path, progress: bool, pool: Executor, started: float) -> SelectSummary:
    """:func:`run_select` with the executor that scores the events."""
    settings = config["select"]
    layout = OutputLayout.from_config(config).with_stage_dir("select", output_dir)
    refuse_disagreement("select", config, layout)
    writable_folder(layout.select_dir)
    saved_network = Path(model_path or layout.select_model_dir).absolute()  # what the workers of a cluster load
    check_worker_access(pool, read=[saved_network if model_path else layout.select_dir.absolute()])
    beams = Beams.from_config(config)
    luminosity = float(config["luminosity"])
    samples = analysis_samples(config)
    signal_name = signal_sample(config)
    signal_path = layout.ntuple("kinfit", signal_name)
    if not signal_path.is_file():
        raise NtupleError(f"{signal_path}: no signal ntuple after the kinematic fit (run `bumphunt kinfit`)")
    background_paths = layout.existing_ntuples("kinfit", sample_names(config, "background"))
    if not background_paths:
        raise NtupleError(f"{layout.kinfit_dir}: no background ntuples after the kinematic fit (run `bumphunt kinfit`)")
    seed = np.random.SeedSequence(config["seed"], spawn_key=(samples[signal_name].sample_id, 101))
    signal = read_events(signal_path, signal_name, settings, beams, np.random.default_rng(seed), luminosity=luminosity)
    backgrounds = [
        read_events(p, p.stem, settings, beams, np.random.default_rng(np.random.SeedSequence(
            config["seed"], spawn_key=(samples[p.stem].sample_id, 101))), luminosity=luminosity)
        for p in background_paths
    ]  # fmt: skip

    metadata = read_metadata(signal_path)
    generated = {round(float(m["mass"]), 9): int(m["n_generated"]) for m in metadata["masses"]}
    stored = dict(zip(*np.unique(signal.gen_mass, return_counts=True)))
    # the masses of the search: a single cut over masses far outside it (above 9.7 GeV the
    # recoil photon becomes soft) would trade the search's sensitivity for theirs
    scan, margin = config["scan"], settings["mass_margin"]
    masses = np.array([m for m in sorted(stored) if scan["start"] - margin <= m <= scan["stop"] + margin])
    held = held_out_masses(masses, settings["n_held_out"], setting="select.n_held_out")
    training = ~np.isin(masses, held)
    sigma, lower, upper = mass_windows(signal, masses, settings["window_sigmas"])
    fom_options = _fom_options(settings)

    network_settings = NetworkSettings.from_config({"seed": config["seed"], **settings["network"]})
    rng = np.random.default_rng(np.random.SeedSequence(config["seed"], spawn_key=(102,)))
    rows = _split(signal, backgrounds, masses[training], settings["max_signal_per_mass"],
                  network_settings.validation_fraction, rng)  # fmt: skip
    parts = {name: _part(signal, backgrounds, s, b, masses, lower, upper, generated, stored)
             for name, (s, b) in rows.items()}  # fmt: skip
    model_folder = layout.select_model_dir
    with progress_bar(progress) as bar:
        if model_path is None:
            net, bce_net = _train(parts, network_settings, luminosity, training, fom_options, bar,
                                  normalise=settings["normalise_loss"])  # fmt: skip
            working_point = settings["working_point"]
            if working_point == "auto":  # on the events outside the test sample, training masses only
                grid = _scored_grid(_training_windows(parts["tune"], training), net, luminosity, fom_options)
                working_point = choose_working_point(grid)
            net = dataclasses.replace(net, working_point=float(working_point))
            net.save(model_folder)
        else:
            net = PunziNet.load(model_path)
            if tuple(net.feature_names) != FEATURES:
                raise BumphuntError(f"{model_path}: the network's features differ from bumphunt's {FEATURES}")
            bce_net = None
        table = _figure_of_merit_table(parts["tune"], parts["test"], net, bce_net, masses, held, sigma, luminosity,
                                       fom_options, config["seed"])  # fmt: skip
        if model_path is None and _use_bdt(settings["bdt_baseline"]):
            _add_bdt_baseline(table, parts, masses, training, luminosity, fom_options, config["seed"], bar)
        table["feature_importance"] = _feature_importance(parts["test"], net, config["seed"])
        network = net if isinstance(pool, InlineExecutor) else str(saved_network)
        friends = _write_friends(layout, settings, beams, network, net.working_point, pool, bar, list(samples))
    table.update(working_point=net.working_point, luminosity=luminosity, settings=_jsonable(settings),
                 features=list(FEATURES))  # fmt: skip
    write_json(layout.select_table_json, table)
    atomic_write_text(layout.select_table_csv, _csv(table))
    plots = []
    if settings["plots"]:
        plots.append(save_figure(plot_fom(table), layout.select_plot("fom")))
        if net.history:
            plots.append(save_figure(plot_training(net.history), layout.select_plot("training")))
        scores = {b.sample: (net.score(b.features[b.test]), b.weights[b.test] / max(b.test.mean(), 1e-300))
                  for b in backgrounds}  # fmt: skip
        scores[signal_name] = (net.score(signal.features[signal.test]), None)
        plots.append(save_figure(plot_score_distributions(scores, net.working_point), layout.select_plot("scores")))
        plots += data_mc_plots(config, layout)
    return SelectSummary(net.working_point, table, friends, model_folder if model_path is None else Path(model_path),
                         plots, time.perf_counter() - started)  # fmt: skip


def _split(signal, backgrounds, training_masses, max_signal_per_mass, validation_fraction, rng) -> dict:
    """Rows (signal mask, background masks) of each part: ``test`` (every figure reported),
    ``train`` and ``validation`` (the network: training masses, at most ``max_signal_per_mass``
    signal events each), ``fit`` (both of those), ``tune`` (everything but the test events:
    where cuts are chosen)."""
    signal_train = ~signal.test & np.isin(signal.gen_mass, training_masses)
    signal_train &= _cap_per_mass(signal, max_signal_per_mass, rng)
    signal_val = signal_train & (rng.random(len(signal_train)) < validation_fraction)
    signal_train &= ~signal_val
    background_val = [~b.test & (rng.random(len(b.test)) < validation_fraction) for b in backgrounds]
    background_train = [~b.test & ~v for b, v in zip(backgrounds, background_val)]
    return {
        "train": (signal_train, background_train),
        "validation": (signal_val, background_val),
        "test": (signal.test, [b.test for b in backgrounds]),
        "tune": (~signal.test, [~b.test for b in backgrounds]),
        "fit": (signal_train | signal_val, [t | v for t, v in zip(background_train, background_val)]),
    }


def _cap_per_mass(signal: EventSet, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` randomly chosen training events per generated mass (bounds training time)."""
    keep = np.zeros(len(signal.gen_mass), dtype=bool)
    candidates = np.flatnonzero(~signal.test)
    order = candidates[rng.permutation(len(candidates))]
    masses = signal.gen_mass[order]
    rank = np.empty(len(order), dtype=np.int64)
    sort = np.argsort(masses, kind="stable")
    sorted_masses = masses[sort]
    starts = np.r_[0, np.flatnonzero(sorted_masses[1:] != sorted_masses[:-1]) + 1]
    group = np.repeat(starts, np.diff(np.r_[starts, len(sort)]))
    rank[sort] = np.arange(len(sort)) - group
    keep[order[rank < cap]] = True
    return keep


def _train(parts, network_settings, luminosity, training, fom_options, bar, *, normalise: bool = False):
    """BCE pre-training (kept as the BCE baseline), then the Punzi loss over the training windows;
    with ``normalise`` each window's sigma_min is divided by the BCE network's best hard-cut
    sigma_min there, so that every window weighs alike."""
    train, validation = parts["train"], parts["validation"]
    net = PunziNet.create(np.concatenate([train.signal_features, train.background_features]), FEATURES,
                          network_settings)  # fmt: skip

    def labelled(part):
        x = net.inputs(np.concatenate([part.signal_features, part.background_features]))
        y = np.r_[np.ones(len(part.signal_features)), np.zeros(len(part.background_features))]
        return x, y, np.r_[np.ones(len(part.signal_features)), part.background_weights]

    advance = bar.add("train Punzi-net", 2)
    history = {"bce": train_bce(net.model, *labelled(train), network_settings, validation=labelled(validation))}
    advance(1)
    bce_net = dataclasses.replace(_snapshot(net), history=dict(history))
    windows = {
        name: soft_windows(restricted.signal_membership, restricted.n_generated, part.background_weights,
                           restricted.background_membership)
        for name, part in (("train", train), ("validation", validation))
        for restricted in [_training_windows(part, training)]
    }  # fmt: skip
    options = dict(fom_options, scale=1.0)
    if normalise:
        fit = _training_windows(parts["fit"], training)
        grid = _grid(fit, bce_net.score(fit.signal_features), bce_net.score(fit.background_features), luminosity,
                     fom_options)  # fmt: skip
        options.update(normalise=True, reference=grid.best_per_window().sigma_min)

    history["punzi"] = train_punzi(
        net.model, net.inputs(train.signal_features), net.inputs(train.background_features), windows["train"],
        luminosity, network_settings, loss_options=options,
        validation=(net.inputs(validation.signal_features), net.inputs(validation.background_features),
                    windows["validation"]),
    )  # fmt: skip
    advance(1)
    return dataclasses.replace(net, history=history), bce_net


def _snapshot(net: PunziNet) -> PunziNet:
    """A copy of ``net`` with its current weights, unaffected by further training."""
    model = tf.keras.models.clone_model(net.model)
    model.set_weights(net.model.get_weights())
    return PunziNet(model, net.standardiser, net.feature_names, net.settings)


def _training_windows(part: _Part, training: np.ndarray) -> _Part:
    """``part`` with only the training windows (renumbered)."""
    index = np.cumsum(training) - 1

    def keep(membership: Membership) -> Membership:
        mask = training[membership.window]
        return Membership(membership.event[mask], index[membership.window[mask]], membership.n_events,
                          int(training.sum()))  # fmt: skip

    return _Part(part.signal_features, part.signal_mass, keep(part.signal_membership), part.n_generated[training],
                 part.background_features, part.background_weights, keep(part.background_membership))  # fmt: skip


def _scored_grid(part: _Part, net: PunziNet, luminosity, fom_options) -> FomGrid:
    return _grid(part, net.score(part.signal_features), net.score(part.background_features), luminosity, fom_options)


def _tuned_on(tune: _Part, evaluated: FomGrid, net: PunziNet, luminosity, fom_options) -> tuple[np.ndarray, np.ndarray]:
    """The best cut per mass chosen on the ``tune`` events, and its sigma_min in ``evaluated``
    (the grid of the same network on the test events)."""
    chosen = _scored_grid(tune, net, luminosity, fom_options).best_per_window()
    return chosen.cut, evaluated.sigma_min[chosen.index, np.arange(len(chosen.index))]


def _figure_of_merit_table(tune, test, net, bce_net, masses, held, sigma, luminosity, fom_options, seed) -> dict:
    """sigma_min per mass on the test events: the Punzi-net at its working point, the BCE
    network and the Punzi-net with the best cut per mass (chosen on the ``tune`` events, outside
    the test sample), the pre-selection alone."""
    punzi = _scored_grid(test, net, luminosity, fom_options)
    index = int(np.searchsorted(punzi.cuts, net.working_point, side="right") - 1)  # CUT_GRID is sorted
    ones_s, ones_b = np.ones(len(test.signal_features)), np.ones(len(test.background_features))
    preselection = _grid(test, ones_s, ones_b, luminosity, fom_options)
    bce = None
    if bce_net is not None:
        bce = _tuned_on(tune, _scored_grid(test, bce_net, luminosity, fom_options), bce_net, luminosity, fom_options)
    best_punzi = _tuned_on(tune, punzi, net, luminosity, fom_options)
    rows = []
    for j, mass in enumerate(masses):
        row = {
            "mass": float(mass),
            "held_out": bool(np.isin(mass, held)),
            "resolution": float(sigma[j]),
            "sigma_min_punzi": float(punzi.sigma_min[index, j]),
            "efficiency_punzi": float(punzi.efficiency[index, j]),
            "background_punzi": float(punzi.background[index, j]),
            "sigma_min_punzi_best_cut": float(best_punzi[1][j]),
            "sigma_min_preselection": float(preselection.sigma_min[0, j]),
            "efficiency_preselection": float(preselection.efficiency[0, j]),
            "background_preselection": float(preselection.background[0, j]),
        }
        if bce is not None:
            row.update(sigma_min_bce_best_cut=float(bce[1][j]), cut_bce=float(bce[0][j]))
        rows.append(row)
    table = {"format": "bumphunt-select-fom", "version": 1, "masses": rows}
    if bce is not None:
        table["bootstrap"] = _bootstrap_comparison(test, net, bce_net, bce[0], np.isin(masses, held), rows,
                                                   luminosity, fom_options, seed)  # fmt: skip
    return table


def _bootstrap_comparison(test, net, bce_net, bce_cuts, held, rows, luminosity, fom_options, seed) -> dict:
    """Statistical uncertainty of the mean sigma_min of the Punzi-net's single cut, of the BCE
    network's cuts per mass, and of their ratio, from bootstrap replicas of the test events."""
    selections = [
        Selection(net.score(test.signal_features), net.score(test.background_features), net.working_point),
        Selection(bce_net.score(test.signal_features), bce_net.score(test.background_features), bce_cuts),
    ]
    finite = np.array([math.isfinite(r["sigma_min_punzi"]) and math.isfinite(r["sigma_min_bce_best_cut"])
                       for r in rows])  # fmt: skip
    out = {"replicas": BOOTSTRAP_REPLICAS}
    for name, windows in (("training", ~held & finite), ("held_out", held & finite)):
        if not windows.any():
            continue
        means = bootstrap_mean_sigma_min(selections, test.signal_membership, test.n_generated,
                                         test.background_weights, test.background_membership, luminosity, windows,
                                         replicas=BOOTSTRAP_REPLICAS, seed=seed, **fom_options)  # fmt: skip
        out[name] = replica_spreads(means)
    return out


def replica_spreads(means: np.ndarray) -> dict:
    """Standard deviations over bootstrap replicas of the two mean sigma_min (columns of
    ``means``: Punzi-net, BCE network) and of their ratio. A replica without signal in some
    window has an infinite mean: the spreads are those of the other replicas, and how many
    were left out is kept (NaN with fewer than two left)."""
    ratio = means[:, 0] / means[:, 1]
    usable = np.isfinite(means).all(axis=1) & np.isfinite(ratio)
    means, ratio = means[usable], ratio[usable]

    def spread(values):
        return float(values.std(ddof=1)) if len(values) > 1 else math.nan

    return {"std_sigma_min_punzi": spread(means[:, 0]), "std_sigma_min_bce_best_cut": spread(means[:, 1]),
            "std_ratio_punzi_bce": spread(ratio), "replicas_not_finite": int((~usable).sum())}  # fmt: skip


def _use_bdt(setting) -> bool:
    """Whether to train the BDT baseline: ``True``, ``False`` or ``"auto"`` (when XGBoost is installed)."""
    if setting != "auto":
        return bool(setting)
    return importlib.util.find_spec("xgboost") is not None


def _add_bdt_baseline(table, parts, masses, training, luminosity, fom_options, seed, bar) -> None:
    """Boosted decision trees per mass region (3-fold cross-validated, trained on the events the
    Punzi-net trains on), the cut per region chosen on out-of-fold scores, sigma_min on the test
    events; added to ``table`` as ``sigma_min_bdt_best_cut`` and ``cut_bdt``."""
    advance = bar.add("train BDT baseline", 2)
    fit, test = _training_windows(parts["fit"], training), parts["test"]
    edges = mass_regions(masses[training], N_BDT_REGIONS)
    fit_regions = region_of(masses[training], edges)
    in_region = np.zeros((fit.background_membership.n_events, N_BDT_REGIONS), dtype=bool)
    in_region[fit.background_membership.event, fit_regions[fit.background_membership.window]] = True
    bdts = train_region_bdts(fit.signal_features, fit.signal_mass, None, fit.background_features,
                             fit.background_weights, in_region, edges, seed=seed)  # fmt: skip
    advance(1)
    out_of_fold = _region_grid(fit, bdts.oof_signal, bdts.oof_background, fit_regions, luminosity, fom_options)
    cuts = best_cut_per_region(out_of_fold, fit_regions)
    test_regions = region_of(masses, edges)
    scores = [np.column_stack([bdts.score(features, r) for r in range(N_BDT_REGIONS)])
              for features in (test.signal_features, test.background_features)]  # fmt: skip
    evaluated = _region_grid(test, *scores, test_regions, luminosity, fom_options)
    index = cuts.index[test_regions]
    values = evaluated.sigma_min[index, np.arange(len(masses))]
    for row, value, cut in zip(table["masses"], values, cuts.cut[test_regions]):
        row.update(sigma_min_bdt_best_cut=float(value), cut_bdt=float(cut))
    table["bdt_regions"] = [float(e) for e in edges]
    advance(1)


def _region_grid(part: _Part, signal_scores, background_scores, window_region, luminosity, fom_options) -> FomGrid:
    return region_fom_grid(signal_scores, part.signal_membership, part.n_generated, background_scores,
                           part.background_weights, part.background_membership, window_region, CUT_GRID, luminosity,
                           **fom_options)  # fmt: skip


def _feature_importance(test: _Part, net: PunziNet, seed: int) -> dict:
    """Permutation importance of each feature for the Punzi-net: the drop of the weighted ROC AUC
    (signal against the luminosity-weighted background) on the test events."""
    features = np.concatenate([test.signal_features, test.background_features])
    labels = np.r_[np.ones(len(test.signal_features)), np.zeros(len(test.background_features))]
    signal_weight = test.background_weights.sum() / max(len(test.signal_features), 1)  # both classes weigh alike
    weights = np.r_[np.full(len(test.signal_features), signal_weight), test.background_weights]
    importance = permutation_importance(net.score, features, labels, weights, n_repeats=2, seed=seed)
    return {FEATURES[i]: {"auc_drop": value.mean, "std": value.std} for i, value in importance.items()}


def _write_friends(layout: OutputLayout, settings: dict, beams: Beams, network: PunziNet | str,
                   working_point: float, pool: Executor, bar, samples) -> list[Path]:  # fmt: skip
    """``select/<sample>.root`` for the kinematic-fit ntuple of every sample (data too): score and
    decision per event, the chunks of events scored by ``pool`` (in process with ``network`` a
    :class:`PunziNet`; on Dask workers with ``network`` the folder it is saved in)."""
    paths = layout.existing_ntuples("kinfit", samples)
    advance = bar.add("score events", sum(num_entries(p) for p in paths))
    needed = sorted(set(FEATURE_BRANCHES) | {"event_id"} | branches_used(settings["preselection"]))
    written = []
    for path in paths:
        target = layout.ntuple("select", path.stem)
        tasks = (ScoringTask(chunk, network, working_point, settings["preselection"], beams)
                 for chunk in iterate_ntuple(path, needed, step_size=CHUNK))  # fmt: skip
        with NtupleWriter(target, FRIEND_BRANCHES) as writer:
            for columns in ordered_map(pool, score_chunk, tasks, max_in_flight=SCORING_IN_FLIGHT):
                writer.extend(columns)
                advance(len(columns["event_id"]))
            writer.metadata = {
                "sample": path.stem, "friend_of": friend_fingerprint(path), "working_point": working_point,
                "preselection": settings["preselection"],
            }  # fmt: skip
        written.append(target)
    return written


#: Chunks of events (up to :data:`CHUNK` each) being scored on a Dask cluster at once: bounds
#: the memory of the chunks read here and not yet written.
SCORING_IN_FLIGHT = 4


@dataclass(frozen=True)
class ScoringTask:
    """A chunk of a sample's events to score: the branches of the features and of the
    pre-selection, and the network (or the folder it is saved in, read once per worker)."""

    chunk: dict[str, np.ndarray]
    network: PunziNet | str
    working_point: float
    preselection: str
    beams: Beams


def score_chunk(task: ScoringTask) -> dict[str, np.ndarray]:
    """The friend-ntuple branches of a chunk (:data:`FRIEND_BRANCHES`): the Punzi-net score (NaN
    where a feature is not finite) and the decision, pre-selection and score >= working point."""
    net = load_network(task.network) if isinstance(task.network, str) else task.network
    chunk = task.chunk
    n = len(chunk["event_id"])
    table = compute_features({k: chunk[k] for k in FEATURE_BRANCHES}, task.beams)
    score = np.full(n, np.nan)
    valid = ~table.invalid
    score[valid] = net.score(table.values[valid])
    passed = evaluate_cut(task.preselection, chunk, n) & (score >= task.working_point)
    return {"event_id": chunk["event_id"], "punzi_score": score.astype(np.float32),
            "punzi_selected": passed.astype(np.int32)}  # fmt: skip


def load_network(folder: str) -> PunziNet:
    """The Punzi-net saved in ``folder``, read once per process and again when its weights change."""
    try:
        status = (Path(folder) / WEIGHTS_FILE).stat()
    except OSError:
        return PunziNet.load(folder, feature_names=FEATURES)  # its error names the folder
    return _load_network(folder, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=2)
def _load_network(folder: str, mtime_ns: int, size: int) -> PunziNet:
    return PunziNet.load(folder, feature_names=FEATURES)


#: The variables of the data/MC comparison: name, branch, axis label, unit, bins, range.
DATA_MC_VARIABLES = (
    ("m_gg", None, r"$M_{\gamma\gamma}$", "GeV", 100, None),
    ("photon_E", "photon_E", r"$E_\gamma$", "GeV", 60, (0.0, 7.0)),
    ("photon_theta", "photon_theta", r"$\theta_\gamma$", "rad", 60, (0.25, 2.7)),
    ("punzi_score", "punzi_score", "Punzi-net score", "", 50, (0.0, 1.0)),
)


def data_mc_plots(config: dict, layout: OutputLayout) -> list[Path]:
    """``select/datamc_<variable>.png``: the pre-selected data against the stacked background
    samples, for the variables an analyst validates before unblinding (none without a data
    sample).

    While blinded, the data of the scan's mass range are never shown: the diphoton mass has
    that range masked, and the other variables show only the events whose three diphoton masses
    all lie outside it (the sidebands), for data and MC alike.
    """
    data_name = data_sample(config)
    if data_name is None or not layout.ntuple("kinfit", data_name).is_file():
        return []
    settings = config["select"]
    mass_variable = settings["mass_variable"]
    region = (config["scan"]["start"], config["scan"]["stop"])
    is_blinded = blinded(config)
    branches = [mass_variable, "photon_E", "photon_theta", "punzi_score"]

    def events(name):
        path = layout.ntuple("kinfit", name)
        friends = layout.friends(name, ["punzi_score"])
        wanted = branches + ([] if name == data_name else ["weight"])
        values = read_selected(path, wanted, settings["preselection"], friends=friends, luminosity=config["luminosity"])
        masses = np.asarray(values[mass_variable], dtype=np.float64).reshape(len(values["photon_E"]), -1)
        sideband = np.all(blind_mask(masses, region), axis=1)
        return values, masses, sideband

    mc = {name: events(name) for name in sample_names(config, "background") if layout.ntuple("kinfit", name).is_file()}
    data = events(data_name)
    plots = []
    for name, branch, label, unit, bins, span in DATA_MC_VARIABLES:
        if branch is None:  # the mass, every pair; its blinded region masked
            processes = {p: (m.ravel(), np.repeat(v["weight"], m.shape[1])) for p, (v, m, _) in mc.items()}
            shown, options = data[1].ravel(), {"blinded_region": region}
            span = (0.0, float(config["scan"]["stop"]) + 0.5)
        else:  # one value per event or photon: the sidebands only while blinded
            def pick(values, keep, column=branch):
                array = np.asarray(values[column], dtype=np.float64)
                return array[keep] if is_blinded else array

            processes = {}
            for process, (values, _, sideband) in mc.items():
                array = pick(values, sideband)
                weights = pick(values, sideband, "weight")
                processes[process] = (array.ravel(), np.repeat(weights, array.size // max(len(weights), 1)))
            shown, options = pick(data[0], data[2]).ravel(), {"blinded_region": []}
        title = f"{data_name} / simulation" + (", sidebands" if is_blinded and branch else "")
        figure = plot_data_mc(processes, shown, bins=bins, range=span, label=label, unit=unit, blinded=is_blinded,
                              logy=True, title=title, **options)  # fmt: skip
        plots.append(save_figure(figure, layout.select_plot(f"datamc_{name}")))
    return plots


def _jsonable(settings: dict) -> dict:
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in settings.items()}


def _csv(table: dict) -> str:
    rows = table["masses"]
    columns = list(rows[0]) if rows else []
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join(f"{row[c]:.9g}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    return "\n".join(lines) + "\n"
