"""Baselines for the Punzi-net: boosted decision trees per mass region, one cut per region, and
the permutation importance of the inputs (as in the Belle II ALP analysis).

Arrays in, arrays out; nothing here reads files.

- :func:`mass_regions` splits the generated masses into contiguous regions with equal numbers
  of masses, :func:`region_of` maps masses to regions.
- :func:`train_region_bdts` trains one XGBoost classifier per region with k-fold cross
  validation: every training event gets an out-of-fold score from the model that did not see
  it (an unbiased choice of the cut), and new events the mean of the k fold models
  (:meth:`RegionBDTs.score`). XGBoost is the optional extra ``bumphunt[bdt]``.
- :func:`region_fom_grid` builds the hard-cut figure of merit with each window scored by its
  region's BDT; :func:`best_cut_per_region` picks the one cut per region of smallest mean
  sigma_min over its windows.
- :func:`weighted_auc` and :func:`permutation_importance`: the drop of the weighted ROC AUC
  when one feature column is shuffled, for any scoring function (the BDT, ``PunziNet.score``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import BumphuntError
from .fom import FomGrid, Membership, fom_grid

__all__ = [
    "BDT_DEFAULTS",
    "Importance",
    "RegionBDTs",
    "RegionCuts",
    "best_cut_per_region",
    "mass_regions",
    "permutation_importance",
    "region_fom_grid",
    "region_of",
    "train_region_bdts",
    "weighted_auc",
]

log = logging.getLogger(__name__)

#: XGBoost booster parameters of :func:`train_region_bdts`; ``params`` updates them.
BDT_DEFAULTS = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.1,
    "nthread": 2,
}

_MISSING_XGBOOST = "the BDT baseline needs xgboost: pip install 'bumphunt[bdt]'"


def _xgboost():
    """The xgboost module, or a one-line BumphuntError when the optional extra is missing.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` unless already set, before XGBoost loads its OpenMP
    runtime: with busy-waiting threads, training with 2 threads on 2 cores shared with other
    processes was measured 50-300x slower (60 s instead of 0.2 s for a small training).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xgboost
    except ImportError:
        raise BumphuntError(_MISSING_XGBOOST) from None
    return xgboost


# --- mass regions -----------------------------------------------------------------------------


def mass_regions(masses, n_regions: int = 4) -> np.ndarray:
    """Edges of ``n_regions`` contiguous mass regions holding equal numbers of generated masses.

    Parameters
    ----------
    masses : array_like
        Generated masses (GeV); repeated values count once.
    n_regions : int
        Number of regions, 1 <= n_regions <= number of distinct masses.

    Returns
    -------
    ndarray (n_regions + 1,)
        Increasing edges: the smallest mass, the midpoints between the last mass of a region and
        the first of the next, the largest mass. Region sizes differ by at most one mass.
    """
    masses = np.unique(np.asarray(masses, dtype=np.float64).reshape(-1))
    if not np.all(np.isfinite(masses)):
        raise ValueError("masses must be finite")
    if not 1 <= n_regions <= len(masses):
        raise ValueError(f"n_regions must lie in [1, {len(masses)}] (the number of distinct masses), got {n_regions}")
    parts = np.array_split(masses, n_regions)
    inner = [0.5 * (left[-1] + right[0]) for left, right in zip(parts[:-1], parts[1:], strict=True)]
    return np.array([masses[0], *inner, masses[-1]])


def region_of(mass_array, edges) -> np.ndarray:
    """Region index (int64) of each mass: k where edges[k] <= m < edges[k + 1].

    The first and last regions are open below and above, so every finite mass has a region.
    """
    mass_array = np.asarray(mass_array, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("edges must be increasing, at least two of them")
    if not np.all(np.isfinite(mass_array)):
        raise ValueError("masses must be finite")
    return np.searchsorted(edges[1:-1], mass_array, side="right").astype(np.int64)


# --- region BDTs ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RegionBDTs:
    """One XGBoost classifier per mass region and fold, with the out-of-fold training scores.

    Attributes
    ----------
    edges : array (n_regions + 1,)
        Region edges (:func:`mass_regions`).
    models : tuple of tuples of xgboost.Booster
        ``models[region][fold]``, trained without the events of that fold and cut to its
        best number of trees.
    signal_fold, background_fold : int arrays (n_signal,), (n_background,)
        Fold of each training event.
    oof_signal, oof_background : float arrays (n_signal, n_regions), (n_background, n_regions)
        Out-of-fold scores: column r of event i is ``models[r][fold_i]``'s output, a model that
        never saw event i.
    n_trees : int array (n_regions, n_folds)
        Trees kept by early stopping.
    n_train : int array (n_regions, 2)
        Signal and background events a region's models learnt from (all folds, after subsampling).
    """

    edges: np.ndarray
    models: tuple
    signal_fold: np.ndarray
    background_fold: np.ndarray
    oof_signal: np.ndarray
    oof_background: np.ndarray
    n_trees: np.ndarray
    n_train: np.ndarray

    @property
    def n_regions(self) -> int:
        return len(self.models)

    @property
    def n_folds(self) -> int:
        return len(self.models[0])

    def score(self, features, region: int) -> np.ndarray:
        """Mean output of the fold models of ``region`` (for events none of them saw).

        Parameters
        ----------
        features : array (n, n_features)
            NaN is a missing value (XGBoost's default direction).
        region : int
            Region index.

        Returns
        -------
        ndarray (n,)
            Scores in [0, 1].
        """
        if not 0 <= region < self.n_regions:
            raise ValueError(f"region must lie in [0, {self.n_regions - 1}], got {region}")
        x = _features(features, "features")
        out = np.zeros(len(x))
        for model in self.models[region]:
            out += _predict(model, x)
        return out / self.n_folds


def _features(values, name: str, n_features: int | None = None) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or (n_features is not None and x.shape[1] != n_features):
        raise ValueError(f"{name} must have shape (n_events, {n_features or 'n_features'}), got {x.shape}")
    return x


def _weights(values, n: int, name: str) -> np.ndarray:
    weight = np.ones(n) if values is None else np.asarray(values, dtype=np.float64).reshape(-1)
    if weight.shape != (n,) or not np.all(np.isfinite(weight) & (weight >= 0.0)):
        raise ValueError(f"{name} must be {n} finite numbers >= 0")
    return weight


def _predict(model, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    return np.asarray(model.inplace_predict(x), dtype=np.float64)


def _balanced(signal_weight: np.ndarray, background_weight: np.ndarray) -> np.ndarray:
    """Weights with equal signal and background sums, each n/2 (mean weight 1, XGBoost's hessian scale)."""
    sums = signal_weight.sum(), background_weight.sum()
    if not (sums[0] > 0.0 and sums[1] > 0.0):
        raise ValueError("a region has no signal or no background weight to train on")
    half = 0.5 * (len(signal_weight) + len(background_weight))
    return np.concatenate([signal_weight * (half / sums[0]), background_weight * (half / sums[1])])


def _at_most(events: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(events) <= limit:
        return events
    return np.sort(rng.choice(events, limit, replace=False))


def train_region_bdts(
    signal_features,
    signal_gen_mass,
    signal_weight,
    background_features,
    background_weight,
    background_region_mask,
    edges,
    *,
    n_folds: int = 3,
    seed: int,
    params: Mapping | None = None,
    n_rounds: int = 200,
    early_stopping_rounds: int | None = 20,
    max_events: int | None = 200_000,
) -> RegionBDTs:
    """Train one BDT per mass region with k-fold cross validation.

    The models of region r learn signal = the training signal events generated in r against
    background = the events with a candidate in a window of r (``background_region_mask``), the
    weights rescaled so that both classes sum to half the number of events. Every event is put
    in one of ``n_folds`` folds (a seeded permutation of each class); the model of fold f
    learns from the other folds and stops early on the logloss of fold f (which so chooses one
    number, the number of trees, on the events it scores: a negligible bias for large folds).

    Parameters
    ----------
    signal_features : array (n_signal, n_features)
        NaN is a missing value.
    signal_gen_mass : array (n_signal,)
        Generated mass (GeV) of each signal event; its region is :func:`region_of`.
    signal_weight, background_weight : array (n,) or None
        Event weights (None: 1); background in expected events.
    background_features : array (n_background, n_features)
    background_region_mask : bool array (n_background, n_regions)
        True where a candidate of the event falls in a window of the region.
    edges : array (n_regions + 1,)
        From :func:`mass_regions`.
    n_folds : int
        Folds, >= 2.
    seed : int
        Seeds the folds, the subsampling and XGBoost: the same inputs and seed give identical models.
    params : mapping, optional
        Updates :data:`BDT_DEFAULTS` (XGBoost booster parameters).
    n_rounds : int
        Maximum number of boosting rounds.
    early_stopping_rounds : int or None
        Stop after this many rounds without a better held-out logloss; None trains ``n_rounds``.
    max_events : int or None
        At most this many signal and this many background events per region (a uniform seeded
        subsample, weights kept) share the folds' training; None uses all. The out-of-fold scores
        are computed for all events. 4 regions x 3 folds on 300k signal + 500k background
        events x 9 features take ~20-30 s on 2 cores.

    Returns
    -------
    RegionBDTs
        The models and the out-of-fold scores of all training events in every region.

    Raises
    ------
    BumphuntError
        xgboost is not installed.
    """
    xgb = _xgboost()
    edges = np.asarray(edges, dtype=np.float64)
    n_regions = len(edges) - 1
    x_signal = _features(signal_features, "signal_features")
    n_features = x_signal.shape[1]
    x_background = _features(background_features, "background_features", n_features)
    n_signal, n_background = len(x_signal), len(x_background)
    w_signal = _weights(signal_weight, n_signal, "signal_weight")
    w_background = _weights(background_weight, n_background, "background_weight")
    signal_region = region_of(np.asarray(signal_gen_mass, dtype=np.float64).reshape(-1), edges)
    if signal_region.shape != (n_signal,):
        raise ValueError(f"signal_gen_mass must hold {n_signal} masses, got {signal_region.shape}")
    mask = np.asarray(background_region_mask)
    if mask.dtype != bool or mask.shape != (n_background, n_regions):
        raise ValueError(f"background_region_mask must be bool with shape ({n_background}, {n_regions})")
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    booster_params = {**BDT_DEFAULTS, **(params or {}), "seed": int(seed)}

    rng = np.random.default_rng(seed)
    signal_fold = rng.permutation(n_signal) % n_folds
    background_fold = rng.permutation(n_background) % n_folds
    models, n_trees, n_train = [], np.zeros((n_regions, n_folds), np.int64), np.zeros((n_regions, 2), np.int64)
    oof_signal, oof_background = np.empty((n_signal, n_regions)), np.empty((n_background, n_regions))
    for region in range(n_regions):
        start = time.perf_counter()
        signal_events = _at_most(np.flatnonzero(signal_region == region), max_events, rng)
        background_events = _at_most(np.flatnonzero(mask[:, region]), max_events, rng)
        n_train[region] = len(signal_events), len(background_events)
        region_models = []
        for fold in range(n_folds):
            parts = []
            for held_out in (False, True):
                s = signal_events[(signal_fold[signal_events] == fold) == held_out]
                b = background_events[(background_fold[background_events] == fold) == held_out]
                x = np.concatenate([x_signal[s], x_background[b]])
                y = np.r_[np.ones(len(s)), np.zeros(len(b))]
                parts.append((x, y, _balanced(w_signal[s], w_background[b])))
            (x, y, w), (x_val, y_val, w_val) = parts
            train = xgb.QuantileDMatrix(x, label=y, weight=w)
            validation = xgb.QuantileDMatrix(x_val, label=y_val, weight=w_val, ref=train)
            booster = xgb.train(
                booster_params, train, n_rounds, evals=[(validation, "held_out")],
                early_stopping_rounds=early_stopping_rounds, verbose_eval=False,
            )  # fmt: skip
            if early_stopping_rounds is not None:
                booster = booster[: booster.best_iteration + 1]
            n_trees[region, fold] = booster.num_boosted_rounds()
            region_models.append(booster)
            in_fold_s, in_fold_b = signal_fold == fold, background_fold == fold
            oof_signal[in_fold_s, region] = _predict(booster, x_signal[in_fold_s])
            oof_background[in_fold_b, region] = _predict(booster, x_background[in_fold_b])
        models.append(tuple(region_models))
        log.info("region %d: BDTs on %d signal + %d background events, %s trees, %.1f s",
                 region, *n_train[region], n_trees[region].tolist(), time.perf_counter() - start)  # fmt: skip
    return RegionBDTs(edges, tuple(models), signal_fold, background_fold, oof_signal, oof_background, n_trees, n_train)


# --- one cut per region -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RegionCuts:
    """The one cut per mass region of smallest mean sigma_min over the region's windows.

    Attributes
    ----------
    index : int array (n_regions,)
        Index into :attr:`FomGrid.cuts`.
    cut : float array (n_regions,)
        The cut.
    mean_sigma_min : float array (n_regions,)
        Mean sigma_min (pb) over the region's windows with signal at that cut.
    """

    index: np.ndarray
    cut: np.ndarray
    mean_sigma_min: np.ndarray

    def per_window(self, window_region) -> np.ndarray:
        """The cut of each window (its region's cut)."""
        return self.cut[np.asarray(window_region, dtype=np.int64)]


def _window_region(window_region, n_windows: int) -> np.ndarray:
    window_region = np.asarray(window_region)
    if window_region.shape != (n_windows,) or not np.issubdtype(window_region.dtype, np.integer):
        raise ValueError(f"window_region must hold {n_windows} integer region indices, one per window")
    if n_windows and window_region.min() < 0:
        raise ValueError("window_region holds a negative region index")
    return window_region.astype(np.int64)


def best_cut_per_region(grid: FomGrid, window_region) -> RegionCuts:
    """The single cut per region minimising the mean sigma_min over the region's windows.

    Windows whose sigma_min is infinite at every cut (no signal) are left out of the mean; a
    cut where another window of the region loses all its signal has mean +inf. Ties: the
    loosest cut, as :meth:`FomGrid.best_per_window`.

    Parameters
    ----------
    grid : FomGrid
        sigma_min per cut and window (for BDTs, each window scored by its region's model:
        :func:`region_fom_grid`).
    window_region : int array (n_windows,)
        Region of each window; regions are 0 .. max(window_region), each with a window.
    """
    n_windows = grid.sigma_min.shape[1]
    window_region = _window_region(window_region, n_windows)
    n_regions = int(window_region.max()) + 1 if n_windows else 0
    counts = np.bincount(window_region, minlength=n_regions)
    if np.any(counts == 0):
        raise ValueError(f"region(s) {np.flatnonzero(counts == 0).tolist()} have no window")
    informative = np.any(np.isfinite(grid.sigma_min), axis=0)
    order = np.argsort(grid.cuts, kind="stable")
    index, mean = np.empty(n_regions, np.int64), np.empty(n_regions)
    for region in range(n_regions):
        columns = (window_region == region) & informative
        if not columns.any():
            index[region], mean[region] = order[0], np.inf
            continue
        values = grid.sigma_min[order][:, columns].mean(axis=1)
        best = int(np.argmin(values))  # first minimum = loosest cut
        index[region], mean[region] = order[best], values[best]
    return RegionCuts(index, grid.cuts[index], mean)


def region_fom_grid(
    signal_scores,
    signal_membership: Membership,
    n_generated,
    background_scores,
    background_weights,
    background_membership: Membership,
    window_region,
    cuts,
    luminosity: float,
    **options,
) -> FomGrid:
    """:func:`~bumphunt.select.fom.fom_grid` with the windows of region r scored by column r.

    Parameters
    ----------
    signal_scores, background_scores : arrays (n_signal, n_regions), (n_background, n_regions)
        Scores of every event by each region's model (e.g. :attr:`RegionBDTs.oof_signal`).
    window_region : int array (n_windows,)
        Region of each window.
    signal_membership, n_generated, background_weights, background_membership, cuts, luminosity, options
        As in :func:`~bumphunt.select.fom.fom_grid`.
    """
    window_region = _window_region(window_region, signal_membership.n_windows)
    signal_scores, background_scores = np.asarray(signal_scores), np.asarray(background_scores)
    n_regions = int(window_region.max()) + 1 if len(window_region) else 0
    for name, scores in (("signal_scores", signal_scores), ("background_scores", background_scores)):
        if scores.ndim != 2 or scores.shape[1] < n_regions:
            raise ValueError(f"{name} must have one column per region ({n_regions}), got shape {scores.shape}")
    parts = []
    for region in range(n_regions):
        grid = fom_grid(
            signal_scores[:, region],
            signal_membership.restrict(window_region[signal_membership.window] == region),
            n_generated,
            background_scores[:, region],
            background_weights,
            background_membership.restrict(window_region[background_membership.window] == region),
            cuts, luminosity, **options,
        )  # fmt: skip
        parts.append(grid)
    if not parts:
        raise ValueError("no windows")
    columns = window_region[None, :]
    pick = [np.take_along_axis(np.stack([getattr(g, name) for g in parts]), columns[None], axis=0)[0]
            for name in ("efficiency", "background", "sigma_min")]  # fmt: skip
    return FomGrid(parts[0].cuts, *pick)


# --- feature importance -----------------------------------------------------------------------


def weighted_auc(scores, labels, weights=None) -> float:
    """Weighted area under the ROC curve: P(score_signal > score_background), ties counted 1/2.

    Sorts the scores once, sums the signal and background weights of each distinct score and
    integrates the ROC curve with the trapezoid rule (which counts ties 1/2).

    Parameters
    ----------
    scores : array (n,)
    labels : array (n,)
        1 / True for signal, 0 / False for background.
    weights : array (n,), optional
        Event weights >= 0 (None: 1).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    n = len(scores)
    if labels.shape != (n,) or not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"labels must be {n} values 0 (background) or 1 (signal)")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    weights = _weights(weights, n, "weights")
    signal = labels == 1
    _, group = np.unique(scores, return_inverse=True)  # ascending distinct scores
    n_groups = int(group.max()) + 1 if n else 0
    w_s = np.bincount(group, weights=np.where(signal, weights, 0.0), minlength=n_groups)
    w_b = np.bincount(group, weights=np.where(signal, 0.0, weights), minlength=n_groups)
    total_s, total_b = w_s.sum(), w_b.sum()
    if not (total_s > 0.0 and total_b > 0.0):
        raise ValueError("the AUC needs a positive signal and a positive background weight")
    signal_below = np.cumsum(w_s) - w_s  # signal weight with a strictly lower score
    return float(np.sum(w_b * (total_s - signal_below - 0.5 * w_s)) / (total_s * total_b))


class Importance(NamedTuple):
    """Drop of the weighted AUC when a feature is shuffled: mean and standard deviation over repeats."""

    mean: float
    std: float


def permutation_importance(
    score_function: Callable[[np.ndarray], np.ndarray],
    features,
    labels,
    weights=None,
    *,
    n_repeats: int = 3,
    seed: int,
) -> dict[int, Importance]:
    """Permutation importance: the drop of the weighted ROC AUC when one feature column is shuffled.

    Parameters
    ----------
    score_function : callable
        Maps a features array (n, n_features) to scores (n,): ``PunziNet.score``,
        ``functools.partial(bdts.score, region=r)``.
    features : array (n, n_features)
        Events not used in training (else the importances reflect overfitting).
    labels, weights : arrays (n,)
        As in :func:`weighted_auc`.
    n_repeats : int
        Shuffles per feature.
    seed : int
        Seeds the shuffles.

    Returns
    -------
    dict
        Feature column -> :class:`Importance` (mean and standard deviation, ddof=0, of
        AUC(original) - AUC(shuffled)); near 0 for a feature the scores do not use.
    """
    x = np.array(features, dtype=np.float64)  # a copy: columns are shuffled in place
    if x.ndim != 2:
        raise ValueError(f"features must have shape (n_events, n_features), got {x.shape}")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    reference = weighted_auc(score_function(x), labels, weights)
    rng = np.random.default_rng(seed)
    out = {}
    for column in range(x.shape[1]):
        original = x[:, column].copy()
        drops = []
        for _ in range(n_repeats):
            x[:, column] = original[rng.permutation(len(x))]
            drops.append(reference - weighted_auc(score_function(x), labels, weights))
        x[:, column] = original
        out[column] = Importance(float(np.mean(drops)), float(np.std(drops)))
    return out
