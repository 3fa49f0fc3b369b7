"""The likelihood of one mass hypothesis: fixed signal shape + Chebyshev background.

In the window [lower, upper] around the mass m the extended likelihood of the candidate
masses x_i (with weights w_i, 1 for data, expected counts for binned Asimov data) is

    -log L = n_sig + n_bkg - sum_i w_i log(n_sig s(x_i) + n_bkg b(x_i; c)),

with s the signal shape at m, fixed (:class:`bumphunt.models.SignalShape`), and b a
Chebyshev series 1 + sum_k c_k T_k(x') normalised in the window (x' in [-1, 1]). n_sig may be
negative as long as the total density stays positive. The test statistics built on it live
in :mod:`bumphunt.stats.hypotest`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from iminuit import Minuit

from .._jit import jit


def chebyshev_basis(scaled: np.ndarray, order: int) -> np.ndarray:
    """T_1..T_order at points in [-1, 1], shape (n, order)."""
    basis = np.empty((len(scaled), order))
    previous, current = np.ones_like(scaled), scaled.copy()
    for k in range(order):
        basis[:, k] = current
        previous, current = current, 2.0 * scaled * current - previous
    return basis


def chebyshev_means(order: int) -> np.ndarray:
    """Mean of T_1..T_order over [-1, 1]: ((-1)^k + 1) / (2 (1 - k^2)), 0 for k = 1."""
    k = np.arange(1, order + 1, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(k == 1, 0.0, ((-1.0) ** k + 1.0) / (2.0 * (1.0 - k**2)))
    return means


@jit
def _nll_and_gradient(params, signal, basis, weights, means, width, grid_basis):
    """-log L and its gradient; params = (n_sig, n_bkg, c_1..c_k).

    A background that turns negative anywhere on ``grid_basis`` (the Chebyshev basis on a
    grid across the window) is unphysical: -log L is infinite there.
    """
    n_sig, n_bkg = params[0], params[1]
    order = basis.shape[1]
    norm = 1.0
    for k in range(order):
        norm += params[2 + k] * means[k]
    gradient = np.zeros(params.shape[0])
    if norm <= 0.0:
        return np.inf, gradient
    for j in range(grid_basis.shape[0]):
        polynomial = 1.0
        for k in range(order):
            polynomial += params[2 + k] * grid_basis[j, k]
        if polynomial < 0.0:
            return np.inf, gradient
    total = n_sig + n_bkg
    gradient[0] = 1.0
    gradient[1] = 1.0
    sum_shape = np.zeros(order)
    for i in range(signal.shape[0]):
        polynomial = 1.0
        for k in range(order):
            polynomial += params[2 + k] * basis[i, k]
        background = polynomial / (width * norm)
        density = n_sig * signal[i] + n_bkg * background
        if density <= 0.0:
            return np.inf, gradient
        w = weights[i] / density
        total -= weights[i] * math.log(density)
        gradient[0] -= w * signal[i]
        gradient[1] -= w * background
        for k in range(order):
            # d background / d c_k = (T_k - background * width * means_k) / (width * norm)
            sum_shape[k] += w * (basis[i, k] - polynomial * means[k] / norm)
    for k in range(order):
        gradient[2 + k] = -n_bkg * sum_shape[k] / (width * norm)
    return total, gradient


def background_density(x: np.ndarray, coefficients: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """The Chebyshev background 1 + sum_k c_k T_k(x') normalised in [lower, upper] (GeV^-1)."""
    width = upper - lower
    scaled = 2.0 * (np.asarray(x, dtype=np.float64) - lower) / width - 1.0
    order = len(coefficients)
    polynomial = 1.0 + chebyshev_basis(scaled, order) @ coefficients
    return polynomial / (width * (1.0 + chebyshev_means(order) @ coefficients))


@dataclass(frozen=True)
class HypothesisData:
    """Candidates in the window of one mass hypothesis, with the fixed signal density."""

    mass: float  # the mass hypothesis (GeV); the shape's peak may sit slightly off it
    shape: object  # SignalShape at the hypothesis; its window is the fit range
    x: np.ndarray  # candidate masses, or bin centres (GeV)
    signal: np.ndarray
    basis: np.ndarray
    weights: np.ndarray

    @property
    def lower(self) -> float:
        return self.shape.lower

    @property
    def upper(self) -> float:
        return self.shape.upper

    @property
    def n_events(self) -> float:
        return float(self.weights.sum())

    @property
    def order(self) -> int:
        return self.basis.shape[1]


def hypothesis_data(
    x: np.ndarray,
    shape,
    *,
    order: int = 3,
    weights: np.ndarray | None = None,
    bins: int | None = None,
    mass: float | None = None,
) -> HypothesisData:
    """Prepare candidate masses for the fits at one hypothesis.

    Parameters
    ----------
    x : array
        Candidate masses (GeV); those outside the shape's window and NaN are dropped.
    shape : SignalShape
        Signal shape at the hypothesis, whose window defines the fit range.
    order : int
        Order of the Chebyshev background.
    weights : array, optional
        Weights of the candidates; 1 by default.
    bins : int, optional
        Bin the candidates in this many equal bins of the window (a binned likelihood, whose
        cost does not grow with the number of candidates); unbinned when None.
    mass : float, optional
        The mass hypothesis (GeV) the results are reported at; the shape's peak by default.
    """
    x = np.asarray(x, dtype=np.float64)
    weights = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(x) & (x >= shape.lower) & (x <= shape.upper)
    x, weights = x[keep], weights[keep]
    if bins is not None:
        weights, edges = np.histogram(x, bins=bins, range=(shape.lower, shape.upper), weights=weights)
        x = 0.5 * (edges[1:] + edges[:-1])
        x, weights = x[weights > 0], weights[weights > 0]
    scaled = 2.0 * (x - shape.lower) / (shape.upper - shape.lower) - 1.0
    return HypothesisData(
        mass=float(shape.mu if mass is None else mass),
        shape=shape,
        x=x,
        signal=np.ascontiguousarray(shape.pdf(x)),
        basis=np.ascontiguousarray(chebyshev_basis(scaled, order)),
        weights=np.ascontiguousarray(weights),
    )


@dataclass(frozen=True)
class HypothesisFit:
    """Result of one fit: parameter values and errors, -log L, validity."""

    values: np.ndarray
    errors: np.ndarray
    nll: float
    valid: bool

    @property
    def n_sig(self) -> float:
        return float(self.values[0])


class HypothesisLikelihood:
    """The extended likelihood of :class:`HypothesisData`, minimised with iminuit."""

    def __init__(self, data: HypothesisData):
        self.data = data
        self._means = chebyshev_means(data.order)
        self._width = data.upper - data.lower
        self._grid_basis = np.ascontiguousarray(chebyshev_basis(np.linspace(-1.0, 1.0, 65), data.order))
        self._last = None

    def _evaluate(self, params) -> tuple[float, np.ndarray]:
        """-log L and its gradient, computed together; Minuit asks for the gradient at the
        point it has just evaluated, so the last evaluation is kept."""
        params = np.asarray(params, dtype=np.float64)
        if self._last is not None and np.array_equal(params, self._last[0]):
            return self._last[1], self._last[2]
        value, gradient = _nll_and_gradient(
            params, self.data.signal, self.data.basis, self.data.weights, self._means, self._width, self._grid_basis
        )
        self._last = (params.copy(), value, gradient)
        return value, gradient

    def nll(self, params) -> float:
        return self._evaluate(params)[0]

    def gradient(self, params) -> np.ndarray:
        return self._evaluate(params)[1]

    def fit(
        self,
        *,
        n_sig: float | None = None,
        start: np.ndarray | None = None,
        steps: np.ndarray | None = None,
        errors: bool = False,
    ) -> HypothesisFit:
        """Minimise -log L; with ``n_sig`` given, the signal yield is fixed to it (profile).

        ``start`` and ``steps`` (initial step sizes, e.g. the errors of an earlier fit) keep
        MIGRAD's first steps away from where the background density turns negative.
        """
        n = max(self.data.n_events, 1.0)
        if start is None:
            start = np.zeros(2 + self.data.order)
            start[1] = n
        start = np.array(start, dtype=np.float64)
        if n_sig is not None:
            start[0] = n_sig
        minuit = Minuit(self.nll, start, grad=self.gradient)
        minuit.errordef = Minuit.LIKELIHOOD
        minuit.limits[1] = (0.0, None)
        default_steps = np.array([math.sqrt(n)] * 2 + [0.05] * self.data.order)
        if steps is not None:
            steps = np.where(np.isfinite(steps) & (np.asarray(steps) > 0), steps, default_steps)
        minuit.errors = default_steps if steps is None else 0.5 * steps
        if n_sig is not None:
            minuit.fixed[0] = True
        minuit.strategy = 0
        minuit.tol = 0.01  # EDM < 2e-5: yields to ~0.006 standard deviations, for 1% limits
        minuit.migrad()
        if not minuit.valid:
            minuit.strategy = 1
            minuit.migrad()
        if errors and minuit.valid:
            minuit.hesse()
        return HypothesisFit(np.array(minuit.values), np.array(minuit.errors), float(minuit.fval), bool(minuit.valid))

    def asimov(self, fit: HypothesisFit, *, n_sig: float = 0.0, bins: int = 500) -> HypothesisLikelihood:
        """Likelihood of the Asimov data set: the expected counts of ``fit``'s background
        plus ``n_sig`` signal events, in fine bins."""
        data = self.data
        edges = np.linspace(data.lower, data.upper, bins + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        background = background_density(centres, fit.values[2:], data.lower, data.upper)
        expected = (fit.values[1] * background + n_sig * data.shape.pdf(centres)) * (edges[1] - edges[0])
        return HypothesisLikelihood(
            hypothesis_data(centres, data.shape, order=data.order, weights=expected, mass=data.mass)
        )
