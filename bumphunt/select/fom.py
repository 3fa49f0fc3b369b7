"""The Punzi figure of merit of a cut on a network output, for every cut and mass window at once.

The minimum cross-section a search of significance ``a`` (one-sided Gaussian sigmas) detects
with probability given by ``b`` (b = 1.28: 90 %), for a signal efficiency eps, B expected
background events and an integrated luminosity L, is (Punzi, arXiv:physics/0308063, eq. 7)

    sigma_min = [C + a sqrt(B) + (b/2) sqrt(b^2 + 4 a sqrt(B) + 4 B)] / (eps L),
    C = a^2/8 + 9 b^2/13                                                     (form "full"),

or, from Punzi's simpler figure of merit eps / (a/2 + sqrt(B)),

    sigma_min = (a/2 + sqrt(B)) / (eps L)                                     (form "a/2").

The reference Punzi-net code (feichtip/punzinet) uses "full" with a = 3, b = 1.28155; the
Belle II ALP talk and poster use a = 5, b = 1.28 and C = b^2/2 (``constant=b**2/2``). The
defaults here are a = 5, b = 1.28 and Punzi's C. With L in pb^-1, sigma_min is in pb.

A signal event counts only in the window of its own generated mass, a background event in
every window one of its diphoton candidates falls into (:func:`window_membership`,
:func:`own_window`). :func:`hard_cut_yields` sums the selected weights for every cut and
window with one histogram; :func:`fom_grid` turns them into efficiencies, backgrounds and
sigma_min. The differentiable version for training lives in :mod:`bumphunt.select.loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The forms of the Punzi sensitivity: "full" (Punzi's eq. 7) and "a/2" (eps / (a/2 + sqrt B) inverted).
PUNZI_FORMS = ("full", "a/2")
#: Default significance (sigmas) and power (b = 1.28: 90 %) of the Belle II ALP search.
DEFAULT_A = 5.0
DEFAULT_B = 1.28


def punzi_constant(a: float, b: float) -> float:
    """Punzi's constant term C = a^2/8 + 9 b^2/13 of the "full" form (arXiv:physics/0308063, eq. 7)."""
    return a * a / 8.0 + 9.0 * b * b / 13.0


def check_form(form: str, constant: float | None) -> None:
    """Raise ValueError for an unknown form, or a constant given with the "a/2" form."""
    if form not in PUNZI_FORMS:
        raise ValueError(f"unknown Punzi form {form!r}; choose one of {', '.join(map(repr, PUNZI_FORMS))}")
    if constant is not None and form != "full":
        raise ValueError(f"constant applies to the 'full' form only, not to {form!r}")


def punzi_numerator(
    sqrt_background, *, a: float, b: float, form: str, constant: float | None = None, sqrt: Callable = np.sqrt
):
    """sigma_min x eps x L as a function of sqrt(B), for numpy arrays or TensorFlow tensors.

    Parameters
    ----------
    sqrt_background : array or tensor
        Square root of the expected background (events).
    a, b : float
        Significance and power (sigmas).
    form : {"full", "a/2"}
        See :data:`PUNZI_FORMS`.
    constant : float, optional
        Replaces C = a^2/8 + 9 b^2/13 of the "full" form (e.g. b^2/2).
    sqrt : callable
        The square root of the array library (``np.sqrt``, ``tf.sqrt``).
    """
    check_form(form, constant)
    if form == "a/2":
        return 0.5 * a + sqrt_background
    c = punzi_constant(a, b) if constant is None else constant
    inner = b * b + 4.0 * a * sqrt_background + 4.0 * sqrt_background * sqrt_background
    return c + a * sqrt_background + 0.5 * b * sqrt(inner)


def sigma_min(
    efficiency,
    background,
    luminosity,
    *,
    a: float = DEFAULT_A,
    b: float = DEFAULT_B,
    form: str = "full",
    constant: float | None = None,
) -> np.ndarray:
    """Minimum detectable cross-section (pb), elementwise with broadcasting.

    Parameters
    ----------
    efficiency : array_like
        Signal efficiency in [0, 1]; 0 gives +inf.
    background : array_like
        Expected background events (>= 0) at ``luminosity``.
    luminosity : float
        Integrated luminosity (pb^-1).
    a, b : float
        Significance and power (sigmas).
    form : {"full", "a/2"}
        See :data:`PUNZI_FORMS`.
    constant : float, optional
        Replaces Punzi's C of the "full" form (e.g. ``b**2 / 2`` as the Belle II ALP talk).

    Returns
    -------
    ndarray
        sigma_min (pb), the broadcast shape of ``efficiency`` and ``background``.
    """
    check_form(form, constant)
    efficiency = np.asarray(efficiency, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    if not np.all((efficiency >= 0.0) & (efficiency <= 1.0)):
        raise ValueError("efficiency must lie in [0, 1] (NaN is not allowed)")
    if not np.all(background >= 0.0):
        raise ValueError("background must be >= 0 expected events (NaN is not allowed)")
    if not luminosity > 0.0:
        raise ValueError(f"luminosity must be > 0 pb^-1, got {luminosity}")
    numerator = punzi_numerator(np.sqrt(background), a=a, b=b, form=form, constant=constant)
    numerator, denominator = np.broadcast_arrays(numerator, efficiency * luminosity)
    out = np.full(numerator.shape, np.inf)
    np.divide(numerator, denominator, out=out, where=denominator > 0.0)
    return out


@dataclass(frozen=True)
class Membership:
    """Which events lie in which mass windows: the (event, window) pairs of a sparse 0/1 matrix.

    Attributes
    ----------
    event, window : int64 arrays
        The pairs, each once, sorted by window then event.
    n_events, n_windows : int
        Shape of the matrix.
    """

    event: np.ndarray
    window: np.ndarray
    n_events: int
    n_windows: int

    def __len__(self) -> int:
        return len(self.event)

    def restrict(self, keep_pairs) -> Membership:
        """The pairs where the boolean array ``keep_pairs`` (one per pair) is true."""
        keep_pairs = np.asarray(keep_pairs, dtype=bool)
        if keep_pairs.shape != self.event.shape:
            raise ValueError(f"keep_pairs has shape {keep_pairs.shape}, expected ({len(self)},)")
        return Membership(self.event[keep_pairs], self.window[keep_pairs], self.n_events, self.n_windows)

    def take(self, events) -> Membership:
        """Membership of the sub-sample ``events`` (indices, e.g. a minibatch), renumbered 0..len-1."""
        events = np.asarray(events, dtype=np.int64)
        position = np.full(self.n_events, -1, dtype=np.int64)
        position[events] = np.arange(len(events))
        new_event = position[self.event]
        keep = new_event >= 0
        order = np.lexsort((new_event[keep], self.window[keep]))
        return Membership(new_event[keep][order], self.window[keep][order], len(events), self.n_windows)


def window_membership(candidates, lower, upper) -> Membership:
    """The events with at least one candidate mass inside each window [lower_j, upper_j].

    Parameters
    ----------
    candidates : array_like, shape (n_events, n_candidates) or (n_events,)
        Diphoton masses (GeV) of each event's candidates; NaN is never inside.
    lower, upper : array_like, shape (n_windows,)
        Window edges (GeV), both included.

    Returns
    -------
    Membership
        Each (event, window) pair once, however many candidates fall inside.

    Notes
    -----
    One sort of all candidate masses; each window's candidates are a slice found by
    ``searchsorted``, and the pairs are sorted and de-duplicated on the key
    window x n_events + event (a sort and a comparison of neighbours: ``np.unique`` is ~100x
    slower on 10^7 int64 with numpy 2.4).
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    if candidates.ndim == 1:
        candidates = candidates[:, None]
    if candidates.ndim != 2:
        raise ValueError(f"candidates must have shape (n_events, n_candidates), got {candidates.shape}")
    lower, upper = np.atleast_1d(np.asarray(lower, dtype=np.float64)), np.atleast_1d(np.asarray(upper, np.float64))
    if lower.ndim != 1 or lower.shape != upper.shape:
        raise ValueError(f"lower and upper must be 1-d of one length, got {lower.shape} and {upper.shape}")
    if not np.all(np.isfinite(lower) & np.isfinite(upper) & (lower <= upper)):
        raise ValueError("window edges must be finite with lower <= upper")
    n_events, n_candidates = candidates.shape
    n_windows = len(lower)
    values = candidates.ravel()
    finite = np.flatnonzero(~np.isnan(values))
    order = finite[np.argsort(values[finite])]
    sorted_values = values[order]
    sorted_events = order // n_candidates
    start = np.searchsorted(sorted_values, lower, side="left")
    stop = np.searchsorted(sorted_values, upper, side="right")
    counts = stop - start
    window = np.repeat(np.arange(n_windows, dtype=np.int64), counts)
    offsets = np.repeat(start - (np.cumsum(counts) - counts), counts)
    event = sorted_events[np.arange(len(window)) + offsets]
    key = np.sort(window * n_events + event)
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key
    return Membership(key % max(n_events, 1), key // max(n_events, 1), n_events, n_windows)


def own_window(membership: Membership, event_window) -> Membership:
    """Keep only the pairs of a signal event with the window of its own mass.

    Parameters
    ----------
    membership : Membership
        From :func:`window_membership` on the signal candidates.
    event_window : array_like of int, shape (n_events,)
        Index of each event's window (its generated mass), -1 for none.
    """
    event_window = np.asarray(event_window, dtype=np.int64)
    if event_window.shape != (membership.n_events,):
        raise ValueError(f"event_window has shape {event_window.shape}, expected ({membership.n_events},)")
    return membership.restrict(event_window[membership.event] == membership.window)


def _check_scores(scores, weights, membership: Membership) -> tuple[np.ndarray, np.ndarray | None]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != membership.n_events:
        raise ValueError(f"{len(scores)} scores for a membership of {membership.n_events} events")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(weights) != membership.n_events:
            raise ValueError(f"{len(weights)} weights for a membership of {membership.n_events} events")
        if not np.all(np.isfinite(weights)):
            raise ValueError("weights must be finite")
    return scores, weights


def hard_cut_yields(scores, weights, membership: Membership, cuts) -> np.ndarray:
    """Sum of the weights of the member events with score >= cut, for every cut and window.

    Parameters
    ----------
    scores : array_like, shape (n_events,)
        Network outputs (any real values, no NaN).
    weights : array_like, shape (n_events,), or None
        Event weights (None: 1 each).
    membership : Membership
        The (event, window) pairs.
    cuts : array_like, shape (n_cuts,)
        Cut values, in any order; an event with score == cut is selected.

    Returns
    -------
    ndarray, shape (n_cuts, n_windows)

    Notes
    -----
    The cuts are sorted once; ``searchsorted`` gives each pair the number k of cuts it passes,
    ``np.bincount`` sums the weights per (window, k), and a cumulative sum from the tightest cut
    down gives every yield. No loop, O(pairs + cuts x windows), and each yield is a sum within
    its own window (no difference of large running sums, so no cancellation).
    """
    scores, weights = _check_scores(scores, weights, membership)
    cuts = np.atleast_1d(np.asarray(cuts, dtype=np.float64))
    if cuts.ndim != 1 or np.isnan(cuts).any():
        raise ValueError("cuts must be a 1-d array without NaN")
    n_cuts, n_windows = len(cuts), membership.n_windows
    cut_order = np.argsort(cuts, kind="stable")
    passed = np.searchsorted(cuts[cut_order], scores, side="right")  # cuts <= score, per event
    key = membership.window * (n_cuts + 1) + passed[membership.event]
    pair_weights = None if weights is None else weights[membership.event]
    counts = np.bincount(key, weights=pair_weights, minlength=n_windows * (n_cuts + 1))
    counts = counts.astype(np.float64).reshape(n_windows, n_cuts + 1)
    # yield at the j-th smallest cut = sum over k > j (events passing more than j cuts)
    passing = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:]
    yields = np.empty((n_cuts, n_windows))
    yields[cut_order] = passing.T
    return yields


@dataclass(frozen=True)
class BestCuts:
    """The cut of smallest sigma_min in each window (ties: the loosest of them).

    Attributes
    ----------
    index : int array (n_windows,)
        Index into :attr:`FomGrid.cuts`.
    cut, sigma_min, efficiency, background : float arrays (n_windows,)
        The cut, its sigma_min (pb), signal efficiency and expected background.
    """

    index: np.ndarray
    cut: np.ndarray
    sigma_min: np.ndarray
    efficiency: np.ndarray
    background: np.ndarray


@dataclass(frozen=True)
class FomGrid:
    """Efficiency, background and sigma_min for every cut (rows) and mass window (columns).

    Attributes
    ----------
    cuts : array (n_cuts,)
        The cut values, in the order given.
    efficiency, background, sigma_min : arrays (n_cuts, n_windows)
        Signal efficiency, expected background events, minimum cross-section (pb).
    """

    cuts: np.ndarray
    efficiency: np.ndarray
    background: np.ndarray
    sigma_min: np.ndarray

    def best_per_window(self) -> BestCuts:
        """The cut of smallest sigma_min in each window (a window without signal: +inf)."""
        order = np.argsort(self.cuts, kind="stable")
        index = order[np.argmin(self.sigma_min[order], axis=0)]  # first minimum = loosest cut
        columns = np.arange(self.sigma_min.shape[1])
        return BestCuts(
            index, self.cuts[index], self.sigma_min[index, columns],
            self.efficiency[index, columns], self.background[index, columns],
        )  # fmt: skip

    def at_cut(self, cut: float) -> np.ndarray:
        """sigma_min (pb) per window for one fixed cut.

        Uses the largest grid cut <= ``cut`` (exact when ``cut`` is on the grid; otherwise a
        slightly looser cut). ValueError when ``cut`` is below every grid cut.
        """
        below = np.flatnonzero(self.cuts <= cut)
        if len(below) == 0:
            raise ValueError(f"cut {cut} is below the grid (smallest cut {self.cuts.min()})")
        return self.sigma_min[below[np.argmax(self.cuts[below])]].copy()


def fom_grid(
    signal_scores,
    signal_membership: Membership,
    n_generated,
    background_scores,
    background_weights,
    background_membership: Membership,
    cuts,
    luminosity: float,
    *,
    a: float = DEFAULT_A,
    b: float = DEFAULT_B,
    form: str = "full",
    constant: float | None = None,
    scale: float = 1.0,
) -> FomGrid:
    """Hard-cut efficiency, background and sigma_min for every cut and mass window.

    Parameters
    ----------
    signal_scores : array_like (n_signal,)
        Network outputs of the signal events of all masses, concatenated.
    signal_membership : Membership
        Each signal event in its own mass's window only (:func:`own_window`).
    n_generated : array_like (n_windows,)
        Signal events generated at each window's mass (the efficiency's denominator, > 0).
    background_scores : array_like (n_background,)
        Network outputs of the background events (all samples concatenated).
    background_weights : array_like (n_background,)
        Expected events at ``luminosity`` that each background event stands for
        (cross-section x L / events generated, in events).
    background_membership : Membership
        Every window each background event falls into (:func:`window_membership`).
    cuts : array_like (n_cuts,)
        Cut values; score >= cut is selected.
    luminosity : float
        Integrated luminosity (pb^-1): efficiency x L x sigma (pb) is signal events.
    a, b, form, constant
        As in :func:`sigma_min`.
    scale : float
        Overall factor on both efficiency and background (e.g. a trigger efficiency).
    """
    n_generated = np.asarray(n_generated, dtype=np.float64).reshape(-1)
    if n_generated.shape != (signal_membership.n_windows,) or not np.all(n_generated > 0):
        raise ValueError(f"n_generated must hold {signal_membership.n_windows} positive counts, one per window")
    if background_membership.n_windows != signal_membership.n_windows:
        raise ValueError("signal and background memberships have different numbers of windows")
    if background_weights is None:
        raise ValueError("background_weights are required (expected events per background event)")
    cuts = np.atleast_1d(np.asarray(cuts, dtype=np.float64))
    efficiency = scale * hard_cut_yields(signal_scores, None, signal_membership, cuts) / n_generated
    background = scale * hard_cut_yields(background_scores, background_weights, background_membership, cuts)
    sigma = sigma_min(efficiency, background, luminosity, a=a, b=b, form=form, constant=constant)
    return FomGrid(cuts, efficiency, background, sigma)


@dataclass(frozen=True)
class Selection:
    """A selection to compare: network outputs and the cut of each mass window.

    Attributes
    ----------
    signal_scores, background_scores : arrays
        Outputs for the events of the memberships handed to :func:`bootstrap_mean_sigma_min`.
    cuts : array (n_windows,) or float
        Cut per window (score >= cut is selected); one float: the same cut everywhere.
    """

    signal_scores: np.ndarray
    background_scores: np.ndarray
    cuts: np.ndarray | float


def bootstrap_mean_sigma_min(
    selections,
    signal_membership: Membership,
    n_generated,
    background_weights,
    background_membership: Membership,
    luminosity: float,
    windows,
    *,
    replicas: int = 200,
    seed: int = 0,
    a: float = DEFAULT_A,
    b: float = DEFAULT_B,
    form: str = "full",
    constant: float | None = None,
) -> np.ndarray:
    """Mean sigma_min over ``windows`` of each selection, in Poisson-bootstrap replicas of the events.

    Every replica gives each event (signal and background) one weight drawn from Poisson(1),
    shared by all selections, so that differences and ratios between selections carry their
    correlation (the same events) and only the events where they differ add variance
    (Efron & Tibshirani, "An Introduction to the Bootstrap", ch. 6; the Poisson weights are the
    multinomial resampling at large samples). The efficiencies keep the fixed denominators
    ``n_generated`` (slightly conservative: a binomial varies less than a Poisson count).

    Parameters
    ----------
    selections : sequence of Selection
    signal_membership, n_generated, background_weights, background_membership, luminosity
        As in :func:`fom_grid`.
    windows : array_like of bool (n_windows,)
        The windows averaged over (e.g. the training masses).
    replicas : int
        Bootstrap replicas.
    seed : int
        Seeds the Poisson weights.
    a, b, form, constant
        As in :func:`sigma_min`.

    Returns
    -------
    ndarray, shape (replicas, len(selections))
        The mean sigma_min (pb) of each selection in each replica.
    """
    windows = np.asarray(windows, dtype=bool)
    n_windows = signal_membership.n_windows
    if windows.shape != (n_windows,) or not windows.any():
        raise ValueError(f"windows must be {n_windows} booleans with at least one true")
    if replicas < 2:
        raise ValueError(f"replicas must be >= 2, got {replicas}")
    n_generated = np.asarray(n_generated, dtype=np.float64)
    weights = np.asarray(background_weights, dtype=np.float64)
    # the pairs each selection keeps, once; a replica then only reweights them
    kept = []
    for selection in selections:
        cuts = np.broadcast_to(np.asarray(selection.cuts, dtype=np.float64), (n_windows,))
        pairs = []
        for scores, membership in ((selection.signal_scores, signal_membership),
                                   (selection.background_scores, background_membership)):  # fmt: skip
            scores, _ = _check_scores(scores, None, membership)
            passing = scores[membership.event] >= cuts[membership.window]
            pairs.append((membership.event[passing], membership.window[passing]))
        kept.append(pairs)
    rng = np.random.default_rng(seed)
    means = np.empty((replicas, len(kept)))
    for replica in range(replicas):
        signal_weight = rng.poisson(1.0, signal_membership.n_events).astype(np.float64)
        background_weight = rng.poisson(1.0, background_membership.n_events) * weights
        for k, ((s_event, s_window), (b_event, b_window)) in enumerate(kept):
            efficiency = np.bincount(s_window, signal_weight[s_event], minlength=n_windows) / n_generated
            background = np.bincount(b_window, background_weight[b_event], minlength=n_windows)
            values = sigma_min(np.minimum(efficiency, 1.0), background, luminosity, a=a, b=b, form=form,
                               constant=constant)  # fmt: skip
            means[replica, k] = values[windows].mean()
    return means
