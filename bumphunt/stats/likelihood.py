"""The likelihood of one mass hypothesis: fixed signal shape + Chebyshev background.

In the window [lower, upper] around the mass m the extended likelihood of the candidate
masses x_i (with weights w_i, 1 for data, expected counts for binned Asimov data) is

    -log L = n_sig + n_bkg - sum_i w_i log(n_sig s(x_i) + n_bkg b(x_i; c)),

with s the signal shape at m, fixed (:class:`bumphunt.models.SignalShape`), and b a
Chebyshev series 1 + sum_k c_k T_k(x') normalised in the window (x' in [-1, 1]). n_sig may be
negative as long as the total density stays positive. The test statistics built on it live
in :mod:`bumphunt.stats.hypotest`.

Systematic uncertainties (:class:`Nuisances`, built by :mod:`bumphunt.stats.systematics`)
add nuisance parameters theta_j, each with the constraint term (theta_j - g_j)^2 / 2 (global
observable g_j = 0 for data): normalisation sources scale the signal yield, n_sig ->
n_sig prod_j kappa_j(theta_j), with kappa = (1 + delta)^theta (log-normal) or
1 + delta theta (Gaussian); shape sources morph the signal density between the shapes at
theta = -1 and +1 (each normalised in the window), quadratically inside and linearly
outside, as HistFactory's interpolation: s(x; theta) = s_0 + theta L + q(theta) Q with
L = (s_+ - s_-)/2, Q = (s_+ + s_- - 2 s_0)/2, q = theta^2 for |theta| <= 1 and
2|theta| - 1 beyond (continuous with its slope). n_sig stays the parameter of interest: the
signal yield at the nominal efficiency and shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from iminuit import Minuit

from .._jit import jit

#: MIGRAD's tolerance in every hypothesis fit: it stops at EDM < 0.002 tol errordef (iminuit's
#: ``Minuit.tol``), within :func:`convergence_sigmas` standard deviations of the minimum, so
#: fitted yields are known to ~0.005 sigma and limits to ~1%.
MIGRAD_TOLERANCE = 0.01


def convergence_sigmas(tolerance: float = MIGRAD_TOLERANCE) -> float:
    """How far, in standard deviations, MIGRAD may stop from the true minimum.

    With errordef ``u``, -log L = u (x - x0)^2 / sigma^2 near the minimum, and Minuit's
    EDM = g^T V g / 2 equals u (x - x0)^2 / sigma^2; stopping at EDM < 0.002 ``tolerance`` u
    leaves |x - x0| < sqrt(0.002 ``tolerance``) sigma (0.0045 sigma at the default 0.01).
    Two fits of the same data on different machines (other BLAS kernels, other SIMD paths)
    may stop on either side: they agree to twice this, not bit for bit.
    """
    return math.sqrt(0.002 * tolerance)


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
def _nll_and_gradient(params, signal, basis, weights, means, width, grid_basis, norm_kinds, norm_sizes, linear,
                      quadratic, global_observables):  # fmt: skip
    """-log L and its gradient; params = (n_sig, n_bkg, c_1..c_k, theta_norm.., theta_shape..).

    A background that turns negative anywhere on ``grid_basis`` (the Chebyshev basis on a
    grid across the window) is unphysical: -log L is infinite there. ``norm_kinds`` is 0 for
    a log-normal, 1 for a Gaussian normalisation source.
    """
    n_sig, n_bkg = params[0], params[1]
    order = basis.shape[1]
    n_norm, n_shape = norm_sizes.shape[0], linear.shape[1]
    first_norm, first_shape = 2 + order, 2 + order + n_norm
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
    factor = 1.0
    log_slopes = np.zeros(n_norm)
    for j in range(n_norm):
        theta = params[first_norm + j]
        if norm_kinds[j] == 0:
            log_slopes[j] = math.log1p(norm_sizes[j])
            factor *= math.exp(theta * log_slopes[j])
        else:
            kappa = 1.0 + norm_sizes[j] * theta
            if kappa <= 0.0:
                return np.inf, gradient
            log_slopes[j] = norm_sizes[j] / kappa
            factor *= kappa
    q = np.zeros(n_shape)
    dq = np.zeros(n_shape)
    for j in range(n_shape):
        theta = params[first_shape + j]
        if theta > 1.0:
            q[j], dq[j] = 2.0 * theta - 1.0, 2.0
        elif theta < -1.0:
            q[j], dq[j] = -2.0 * theta - 1.0, -2.0
        else:
            q[j], dq[j] = theta * theta, 2.0 * theta
    yield_sig = n_sig * factor
    total = yield_sig + n_bkg
    for j in range(n_norm + n_shape):
        pull = params[first_norm + j] - global_observables[j]
        total += 0.5 * pull * pull
    gradient[0] = factor
    gradient[1] = 1.0
    sum_shape = np.zeros(order)
    sum_signal = 0.0
    sum_linear = np.zeros(n_shape)
    sum_quadratic = np.zeros(n_shape)
    for i in range(signal.shape[0]):
        polynomial = 1.0
        for k in range(order):
            polynomial += params[2 + k] * basis[i, k]
        background = polynomial / (width * norm)
        shape = signal[i]
        for j in range(n_shape):
            shape += params[first_shape + j] * linear[i, j] + q[j] * quadratic[i, j]
        density = yield_sig * shape + n_bkg * background
        if density <= 0.0:
            return np.inf, gradient
        w = weights[i] / density
        total -= weights[i] * math.log(density)
        gradient[0] -= w * factor * shape
        gradient[1] -= w * background
        sum_signal += w * shape
        for k in range(order):
            # d background / d c_k = (T_k - background * width * means_k) / (width * norm)
            sum_shape[k] += w * (basis[i, k] - polynomial * means[k] / norm)
        for j in range(n_shape):
            sum_linear[j] += w * linear[i, j]
            sum_quadratic[j] += w * quadratic[i, j]
    for k in range(order):
        gradient[2 + k] = -n_bkg * sum_shape[k] / (width * norm)
    for j in range(n_norm):
        pull = params[first_norm + j] - global_observables[j]
        gradient[first_norm + j] = yield_sig * log_slopes[j] * (1.0 - sum_signal) + pull
    for j in range(n_shape):
        pull = params[first_shape + j] - global_observables[n_norm + j]
        gradient[first_shape + j] = -yield_sig * (sum_linear[j] + dq[j] * sum_quadratic[j]) + pull
    return total, gradient


def background_density(x: np.ndarray, coefficients: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """The Chebyshev background 1 + sum_k c_k T_k(x') normalised in [lower, upper] (GeV^-1)."""
    width = upper - lower
    scaled = 2.0 * (np.asarray(x, dtype=np.float64) - lower) / width - 1.0
    order = len(coefficients)
    polynomial = 1.0 + chebyshev_basis(scaled, order) @ coefficients
    return polynomial / (width * (1.0 + chebyshev_means(order) @ coefficients))


LOGNORMAL, GAUSSIAN = 0, 1  # kinds of normalisation source


@dataclass(frozen=True)
class Nuisances:
    """The nuisance parameters of one mass hypothesis (see the module docstring).

    ``names`` lists the normalisation sources first, then the shape sources;
    ``shape_templates`` holds each shape source's (theta = -1, theta = +1) signal shapes, in
    the hypothesis' window; ``global_observables`` the centres of the constraints (0 for data,
    the conditional estimates for an Asimov data set).
    """

    names: tuple[str, ...]
    norm_kinds: np.ndarray
    norm_sizes: np.ndarray
    shape_templates: tuple = ()
    global_observables: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "norm_kinds", np.ascontiguousarray(self.norm_kinds, dtype=np.int64))
        object.__setattr__(self, "norm_sizes", np.ascontiguousarray(self.norm_sizes, dtype=np.float64))
        if len(self.names) != len(self.norm_sizes) + len(self.shape_templates):
            raise ValueError("one name per normalisation and shape source")
        observables = np.zeros(len(self.names)) if self.global_observables is None else self.global_observables
        object.__setattr__(self, "global_observables", np.ascontiguousarray(observables, dtype=np.float64))

    @property
    def n_norm(self) -> int:
        return len(self.norm_sizes)

    @property
    def n_shape(self) -> int:
        return len(self.shape_templates)

    def __len__(self) -> int:
        return len(self.names)

    def with_global_observables(self, values) -> Nuisances:
        return Nuisances(self.names, self.norm_kinds, self.norm_sizes, self.shape_templates, np.asarray(values))

    def morphing(self, x: np.ndarray, nominal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """L and Q of every shape source at ``x``: arrays (len(x), n_shape)."""
        linear, quadratic = np.zeros((len(x), self.n_shape)), np.zeros((len(x), self.n_shape))
        for j, (down, up) in enumerate(self.shape_templates):
            low, high = down.pdf(x), up.pdf(x)
            linear[:, j] = 0.5 * (high - low)
            quadratic[:, j] = 0.5 * (high + low) - nominal
        return linear, quadratic

    def signal_factor(self, thetas: np.ndarray) -> float:
        """prod_j kappa_j(theta_j) of the normalisation sources."""
        thetas = np.asarray(thetas[: self.n_norm], dtype=float)
        lognormal = self.norm_kinds == LOGNORMAL
        factor = np.exp(np.sum(thetas[lognormal] * np.log1p(self.norm_sizes[lognormal])))
        return float(factor * np.prod(1.0 + self.norm_sizes[~lognormal] * thetas[~lognormal]))

    def signal_density(self, x: np.ndarray, nominal: np.ndarray, thetas: np.ndarray) -> np.ndarray:
        """The morphed signal density at the shape sources' values in ``thetas`` (all sources)."""
        linear, quadratic = self.morphing(x, nominal)
        shape_thetas = np.asarray(thetas[self.n_norm :], dtype=float)
        q = np.where(np.abs(shape_thetas) <= 1.0, shape_thetas**2, 2.0 * np.abs(shape_thetas) - 1.0)
        return nominal + linear @ shape_thetas + quadratic @ q


NO_NUISANCES = Nuisances((), np.zeros(0), np.zeros(0))


@dataclass(frozen=True)
class HypothesisData:
    """Candidates in the window of one mass hypothesis, with the fixed signal density and the
    nuisance parameters of the systematic uncertainties (none by default)."""

    mass: float  # the mass hypothesis (GeV); the shape's peak may sit slightly off it
    shape: object  # SignalShape at the hypothesis; its window is the fit range
    x: np.ndarray  # candidate masses, or bin centres (GeV)
    signal: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    nuisances: Nuisances = NO_NUISANCES
    linear: np.ndarray | None = None  # the shape sources' morphing at x, (n, n_shape)
    quadratic: np.ndarray | None = None
    fixed_background: np.ndarray | None = None  # Chebyshev coefficients held fixed (e.g. from sidebands)

    def __post_init__(self):
        if self.linear is None:
            linear, quadratic = self.nuisances.morphing(self.x, self.signal)
            object.__setattr__(self, "linear", np.ascontiguousarray(linear))
            object.__setattr__(self, "quadratic", np.ascontiguousarray(quadratic))

    @property
    def n_parameters(self) -> int:
        return 2 + self.order + len(self.nuisances)

    def with_fixed_background(self, coefficients) -> HypothesisData:
        """The same candidates with the background shape fixed to ``coefficients`` (only its
        yield floats)."""
        return replace(self, fixed_background=np.asarray(coefficients, dtype=np.float64))

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
    nuisances: Nuisances = NO_NUISANCES,
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
    nuisances : Nuisances, optional
        Nuisance parameters of the systematic uncertainties (:func:`bumphunt.stats.systematics.nuisances_at`).
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
        nuisances=nuisances,
    )


@dataclass(frozen=True)
class HypothesisFit:
    """Result of one fit: parameter values and errors, -log L, validity."""

    values: np.ndarray
    errors: np.ndarray
    nll: float
    valid: bool
    problem: str = ""  # why it is not valid

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
        data = self.data
        value, gradient = _nll_and_gradient(
            params, data.signal, data.basis, data.weights, self._means, self._width, self._grid_basis,
            data.nuisances.norm_kinds, data.nuisances.norm_sizes, data.linear, data.quadratic,
            data.nuisances.global_observables,
        )  # fmt: skip
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
            start = np.zeros(self.data.n_parameters)
            start[1] = n
            start[2 + self.data.order :] = self.data.nuisances.global_observables
        start = np.array(start, dtype=np.float64)
        if n_sig is not None:
            start[0] = n_sig
        minuit = Minuit(self.nll, start, grad=self.gradient)
        minuit.errordef = Minuit.LIKELIHOOD
        minuit.limits[1] = (0.0, None)
        default_steps = np.array([math.sqrt(n)] * 2 + [0.05] * self.data.order + [0.5] * len(self.data.nuisances))
        if steps is not None:
            steps = np.where(np.isfinite(steps) & (np.asarray(steps) > 0), steps, default_steps)
        minuit.errors = default_steps if steps is None else 0.5 * steps
        if n_sig is not None:
            minuit.fixed[0] = True
        fixed = self.data.fixed_background
        if fixed is not None and len(fixed):
            order = self.data.order
            minuit.values[2 : 2 + order] = fixed
            minuit.fixed[2 : 2 + order] = True
        minuit.strategy = 0
        minuit.tol = MIGRAD_TOLERANCE
        minuit.migrad()
        if not minuit.valid:
            minuit.strategy = 1
            minuit.migrad()
        problem = "" if minuit.valid else "no minimum found (MIGRAD)"
        if errors and minuit.valid:
            minuit.hesse()
            if not minuit.valid:  # strategy 0's quick second derivatives; more careful ones
                minuit.strategy = 2
                minuit.hesse()
            if not minuit.valid:
                fmin = minuit.fmin
                problem = (
                    "second derivatives not positive definite at the minimum (HESSE)"
                    if fmin.hesse_failed or not fmin.has_posdef_covar
                    else "not converged by HESSE's second derivatives (EDM above tolerance)"
                )
        values, fit_errors = np.array(minuit.values), np.array(minuit.errors)
        return HypothesisFit(values, fit_errors, float(minuit.fval), bool(minuit.valid), problem)

    def asimov(self, fit: HypothesisFit, *, n_sig: float = 0.0, bins: int = 500) -> HypothesisLikelihood:
        """Likelihood of the Asimov data set: the expected counts of ``fit``'s background
        plus ``n_sig`` signal events, in fine bins, with the nuisance parameters and the global
        observables at ``fit``'s values (Cowan et al. 2011, sec. 5)."""
        data = self.data
        order, nuisances = data.order, data.nuisances
        thetas = fit.values[2 + order :]
        edges = np.linspace(data.lower, data.upper, bins + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        background = background_density(centres, fit.values[2 : 2 + order], data.lower, data.upper)
        expected = fit.values[1] * background
        if n_sig:
            signal = nuisances.signal_density(centres, data.shape.pdf(centres), thetas)
            expected = expected + n_sig * nuisances.signal_factor(thetas) * signal
        expected = expected * (edges[1] - edges[0])
        asimov_nuisances = nuisances.with_global_observables(thetas) if len(nuisances) else nuisances
        asimov = hypothesis_data(centres, data.shape, order=order, weights=expected, mass=data.mass,
                                 nuisances=asimov_nuisances)  # fmt: skip
        if data.fixed_background is not None:
            asimov = asimov.with_fixed_background(data.fixed_background)
        return HypothesisLikelihood(asimov)
