"""The background model of a mass hypothesis: its polynomial order chosen by a likelihood-ratio
rule, and its shape fixed from the sidebands.

Order rule (``scan.background_order: auto``): fits of the background alone (n_sig = 0) to the
window with Chebyshev orders 0, 1, 2, ...; the order is the lowest k whose next order does not
improve -2 ln L by more than the 95 % quantile of a chi2 with one degree of freedom (3.84): a
nested likelihood-ratio test with Wilks' theorem, the F-test of the diphoton resonance searches
(e.g. CMS, Eur. Phys. J. C 74 (2014) 3076, sec. 5), capped at :data:`AUTO_MAX_ORDER`; an order
whose fit fails is skipped, and an order no converged higher one can test is not chosen.

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
    """The lowest order whose next one does not improve the background-only fit significantly.

    ``data_of_order(k)`` returns the :class:`HypothesisData` of the window with order k. An
    order whose fit fails is skipped: the next one that converges is compared with the last
    that did (with as many degrees of freedom as orders between them). When every order above
    the last converged one fails, that order cannot be tested, and a string says so (a steep
    edge in the window, say, that no polynomial follows).
    """
    previous = None
    failed = []
    for order in range(max_order + 1):
        fit = HypothesisLikelihood(data_of_order(order)).fit(n_sig=0.0)
        if not fit.valid:
            failed.append(order)
            continue
        if previous is not None:
            threshold = stats.chi2.isf(size, order - previous[0])
            if 2.0 * (previous[1] - fit.nll) < threshold:
                return previous[0]
        previous = (order, fit.nll)
    if previous is None:
        return f"background fits of every order 0-{max_order} failed"
    if previous[0] < max_order:
        above = ", ".join(str(k) for k in failed if k > previous[0])
        return f"background order not chosen: the fits of order {above} fail, so order {previous[0]} cannot be tested"
    return max_order


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
