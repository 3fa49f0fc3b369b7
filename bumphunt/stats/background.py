"""The background model of a mass hypothesis: its polynomial order chosen by a likelihood-ratio
rule, and its shape fixed from the sidebands.

Order rule (``scan.background_order: auto``): fits of the background alone (n_sig = 0) to the
window with Chebyshev orders 0, 1, ..., :data:`AUTO_MAX_ORDER`; the order is the lowest k that
no higher order j improves in -2 ln L by more than the 95 % quantile of a chi2 with j - k
degrees of freedom: nested likelihood-ratio tests with Wilks' theorem, the F-test of the
diphoton resonance searches (e.g. CMS, Eur. Phys. J. C 74 (2014) 3076, sec. 5). An order whose
fit fails is skipped, and an order no converged higher one can test is not chosen.

Sidebands (``scan.background_from_sidebands``): the background shape is fitted to the window
without +-``sideband_veto_sigmas`` resolutions around the mass (the density normalised on the
sidebands alone) and fixed in every fit of the hypothesis; only its yield floats, as the
Belle II ALP analysis plans.
"""

from __future__ import annotations

import math

import numpy as np
from iminuit import Minuit
from scipy import stats

from .likelihood import HypothesisData, HypothesisLikelihood, chebyshev_basis, chebyshev_means

#: Highest order the rule tries.
AUTO_MAX_ORDER = 6
#: Size of the likelihood-ratio test between consecutive orders.
ORDER_TEST_SIZE = 0.05


def choose_order(data_of_order, *, max_order: int = AUTO_MAX_ORDER, size: float = ORDER_TEST_SIZE) -> int | str:
    """The lowest order that no higher order improves significantly in the background-only fit.

    ``data_of_order(k)`` returns the :class:`HypothesisData` of the window with order k. Every
    order up to ``max_order`` is fitted, each starting from the last converged lower order's
    minimum (its coefficients and a zero for each new one), so that a higher order never ends
    above it. Order k is chosen when no converged higher order j improves -2 ln L by more
    than the chi2 quantile of size ``size`` with j - k degrees of freedom: testing only the
    next order stops at a spectrum whose slope is small but whose curvature is not (order 1
    no better than 0, order 2 better by 180 in -2 ln L, seen at Run 1). When no converged
    order lies above the chosen one, it cannot be tested, and a string says so (a steep edge
    in the window, say, that no polynomial follows).
    """
    fits = {}  # order -> -ln L of the converged fits
    failed = []
    previous = None  # (order, fitted values) of the last converged order
    for order in range(max_order + 1):
        data = data_of_order(order)
        start = None
        if previous is not None:
            lower, values = previous
            start = np.concatenate([values[: 2 + lower], np.zeros(order - lower), values[2 + lower :]])
        fit = HypothesisLikelihood(data).fit(n_sig=0.0, start=start)
        if not fit.valid:
            failed.append(order)
            continue
        fits[order] = fit.nll
        previous = (order, fit.values)
    if not fits:
        return f"background fits of every order 0-{max_order} failed"

    def improved_upon(k):
        return any(2.0 * (fits[k] - fits[j]) >= stats.chi2.isf(size, j - k) for j in fits if j > k)

    chosen = next(k for k in fits if not improved_upon(k))  # the highest converged order always qualifies
    if chosen < max_order and chosen == max(fits):
        above = ", ".join(str(k) for k in failed if k > chosen)
        return f"background order not chosen: the fits of order {above} fail, so order {chosen} cannot be tested"
    return chosen


def _chebyshev_integrals(lower: float, upper: float, order: int) -> np.ndarray:
    """Integrals of T_1..T_order over [lower, upper] in the scaled variable (within [-1, 1])."""
    values = []
    for k in range(1, order + 1):
        if k == 1:
            values.append(0.5 * (upper**2 - lower**2))
            continue

        def antiderivative(t, k=k):
            # int T_k = T_{k+1} / (2 (k + 1)) - T_{k-1} / (2 (k - 1))
            theta = math.acos(max(-1.0, min(1.0, t)))
            return math.cos((k + 1) * theta) / (2 * (k + 1)) - math.cos((k - 1) * theta) / (2 * (k - 1))

        values.append(antiderivative(upper) - antiderivative(lower))
    return np.array(values)


def sideband_shape(data: HypothesisData, veto_sigmas: float, resolution: float) -> np.ndarray | None:
    """Chebyshev coefficients of the background fitted to the sidebands of ``data``'s window
    (everything farther than ``veto_sigmas`` resolutions from the signal peak); None when the
    sidebands hold fewer candidates than coefficients or the fit fails."""
    order = data.order
    width = data.upper - data.lower
    centre = data.shape.mu
    low, high = centre - veto_sigmas * resolution, centre + veto_sigmas * resolution
    outside = (data.x < low) | (data.x > high)
    if order == 0:
        return np.zeros(0)
    weights = data.weights[outside]
    if weights.sum() <= order:
        return None
    basis = data.basis[outside]
    scaled_low = max(-1.0, 2.0 * (low - data.lower) / width - 1.0)
    scaled_high = min(1.0, 2.0 * (high - data.lower) / width - 1.0)
    vetoed_length = max(scaled_high - scaled_low, 0.0)
    # the sidebands' share of the polynomial: 2 (1 + sum c_k <T_k>) - (veto length + sum c_k int_veto T_k)
    full = 2.0 * chebyshev_means(order)
    inside = _chebyshev_integrals(scaled_low, scaled_high, order) if vetoed_length > 0 else np.zeros(order)
    grid = chebyshev_basis(np.linspace(-1.0, 1.0, 65), order)

    def nll(coefficients):
        if np.any(1.0 + grid @ coefficients < 0.0):
            return math.inf
        polynomial = 1.0 + basis @ coefficients
        if np.any(polynomial <= 0.0):
            return math.inf
        norm = 2.0 - vetoed_length + (full - inside) @ coefficients
        if norm <= 0.0:
            return math.inf
        return float(-(weights @ np.log(polynomial)) + weights.sum() * math.log(norm))

    minuit = Minuit(nll, np.zeros(order))
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.errors = 0.05
    minuit.migrad()
    return np.array(minuit.values) if minuit.valid else None
