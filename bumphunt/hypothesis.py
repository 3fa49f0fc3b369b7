"""Signal + polynomial-background fit at one mass hypothesis, and its asymptotic statistics.

In the window [lower, upper] around the mass m the extended likelihood of the candidate
masses x_i (with weights w_i, 1 for data, expected counts for binned Asimov data) is

    -log L = n_sig + n_bkg - sum_i w_i log(n_sig s(x_i) + n_bkg b(x_i; c)),

with s the signal shape at m, fixed (:class:`bumphunt.shapes.SignalShape`), and b a
Chebyshev series 1 + sum_k c_k T_k(x') normalised in the window (x' in [-1, 1]). n_sig may be
negative as long as the total density stays positive. The test statistics follow Cowan,
Cranmer, Gross, Vitells, EPJC 71 (2011) 1554: q0 for discovery, q~_mu for upper limits with
CLs = p_mu / (1 - p_b) (Read, J. Phys. G 28 (2002) 2693); sigma(mu) comes from the Asimov
data set at each mu, as CMS Combine does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy import optimize, stats

_jit = nb.njit(cache=True, error_model="numpy")


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


@_jit
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


@dataclass(frozen=True)
class HypothesisData:
    """Candidates in the window of one mass hypothesis, with the fixed signal density."""

    mass: float  # the mass hypothesis (GeV); the shape's peak may sit slightly off it
    shape: object  # SignalShape at the hypothesis; its window is the fit range
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
        from iminuit import Minuit

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
        scaled = 2.0 * (centres - data.lower) / self._width - 1.0
        coefficients = fit.values[2:]
        polynomial = 1.0 + chebyshev_basis(scaled, data.order) @ coefficients
        background = polynomial / (self._width * (1.0 + self._means @ coefficients))
        expected = (fit.values[1] * background + n_sig * data.shape.pdf(centres)) * (edges[1] - edges[0])
        return HypothesisLikelihood(
            hypothesis_data(centres, data.shape, order=data.order, weights=expected, mass=data.mass)
        )


#: Expected-limit bands, in standard deviations of the background-only distribution.
BANDS = (-2, -1, 0, 1, 2)


@dataclass(frozen=True)
class HypothesisResult:
    """Signal yield, local significance and CLs upper limits at one mass hypothesis.

    Upper limits are on the number of signal events (candidates in the window).
    ``expected`` maps the band (-2, -1, 0, 1, 2 standard deviations) to the expected limit.
    """

    mass: float
    n_events: float
    n_sig: float
    n_sig_error: float
    q0: float
    z_local: float
    p0_local: float
    upper_limit: float
    expected: dict[int, float]
    confidence_level: float
    status: str

    def to_dict(self) -> dict:
        return {
            "mass": self.mass,
            "n_events": self.n_events,
            "n_sig": self.n_sig,
            "n_sig_err": self.n_sig_error,
            "q0": self.q0,
            "z_local": self.z_local,
            "p0_local": self.p0_local,
            "ul_obs": self.upper_limit,
            "ul_exp_m2": self.expected[-2],
            "ul_exp_m1": self.expected[-1],
            "ul_exp": self.expected[0],
            "ul_exp_p1": self.expected[1],
            "ul_exp_p2": self.expected[2],
            "fit_status": self.status,
        }


def _discovery_fits(likelihood: HypothesisLikelihood) -> tuple[HypothesisFit, HypothesisFit, float, bool]:
    """The free fit, the fit with n_sig = 0, q0 (one-sided) and whether both fits are valid."""
    free = likelihood.fit(errors=True)
    null = likelihood.fit(n_sig=0.0, start=free.values, steps=free.errors)
    q0 = max(2.0 * (null.nll - free.nll), 0.0) if free.n_sig > 0 else 0.0
    return free, null, q0, free.valid and null.valid


def fit_discovery(data: HypothesisData) -> dict:
    """Signal yield and local significance only (no limits): the look-elsewhere toys."""
    free, _, q0, valid = _discovery_fits(HypothesisLikelihood(data))
    if not valid:
        nan = float("nan")
        return {"n_sig": nan, "n_sig_err": nan, "q0": nan, "z_local": nan, "p0_local": nan, "fit_status": "fit failed"}
    return {
        "n_sig": free.n_sig,
        "n_sig_err": float(free.errors[0]),
        "q0": q0,
        "z_local": math.sqrt(q0),
        "p0_local": float(stats.norm.sf(math.sqrt(q0))),
        "fit_status": "ok",
    }


def cls_from_q(q_mu: float, q_mu_asimov: float) -> float:
    """Asymptotic CLs = p_mu / (1 - p_b) for the statistic q~_mu, given q~_mu,A = mu^2/sigma^2
    (Cowan et al. 2011, eqs. 65-66)."""
    sqrt_qa = math.sqrt(max(q_mu_asimov, 1e-300))
    if q_mu <= q_mu_asimov:
        sqrt_q = math.sqrt(max(q_mu, 0.0))
        cls_b = stats.norm.sf(sqrt_q)
        cl_b = stats.norm.sf(sqrt_q - sqrt_qa)
    else:
        cls_b = stats.norm.sf((q_mu + q_mu_asimov) / (2.0 * sqrt_qa))
        cl_b = stats.norm.sf((q_mu - q_mu_asimov) / (2.0 * sqrt_qa))
    return float(cls_b / cl_b) if cl_b > 0 else 0.0


def evaluate_hypothesis(data: HypothesisData, *, confidence_level: float = 0.95) -> HypothesisResult:
    """Fit signal + background, compute q0 and the observed and expected CLs upper limits.

    The observed limit solves CLs(mu) = 1 - CL by root finding; each expected band N solves
    sqrt(q~_mu,A(mu)) = Phi^-1(1 - alpha Phi(N)) + N on the background-only Asimov data set
    (nuisance parameters from the fit with n_sig = 0), evaluating the Asimov likelihood at
    each band's own mu.
    """
    alpha = 1.0 - confidence_level
    likelihood = HypothesisLikelihood(data)
    free, null, q0, valid = _discovery_fits(likelihood)
    mass = data.mass
    if not valid:
        nan = float("nan")
        return HypothesisResult(mass, data.n_events, nan, nan, nan, nan, nan, nan, dict.fromkeys(BANDS, nan),
                                confidence_level, "fit failed")  # fmt: skip
    z_local = math.sqrt(q0)

    asimov = likelihood.asimov(null)
    # the Asimov data are the expectation of the null fit: its minimum is at null.values
    asimov_best_nll = asimov.nll(null.values)

    def q_asimov(mu: float) -> float:
        return max(2.0 * (asimov.fit(n_sig=mu, start=null.values, steps=free.errors).nll - asimov_best_nll), 0.0)

    reference = free if free.n_sig >= 0 else null

    def q_tilde(mu: float) -> float:
        if free.n_sig > mu:
            return 0.0
        return max(2.0 * (likelihood.fit(n_sig=mu, start=free.values, steps=free.errors).nll - reference.nll), 0.0)

    def cls(mu: float) -> float:
        return cls_from_q(q_tilde(mu), q_asimov(mu))

    sigma = max(free.errors[0], 1e-3)
    expected = {}
    for band in BANDS:
        target = stats.norm.ppf(1.0 - alpha * stats.norm.cdf(band)) + band
        expected[band] = _solve_increasing(
            lambda mu, t=target: math.sqrt(q_asimov(mu)) - t, sigma, guess=sigma * target
        )
    # asymptotic closed form with sigma from the fit: mu_hat + sigma Phi^-1(1 - alpha Phi(mu_hat / sigma))
    guess = free.n_sig + sigma * stats.norm.ppf(1.0 - alpha * stats.norm.cdf(free.n_sig / sigma))
    upper_limit = _solve_increasing(lambda mu: alpha - cls(mu), sigma, start=max(free.n_sig, 0.0), guess=guess)
    status = "ok" if all(np.isfinite([upper_limit, *expected.values()])) else "limit not found"
    return HypothesisResult(
        mass, data.n_events, free.n_sig, float(free.errors[0]), q0, z_local, float(stats.norm.sf(z_local)),
        upper_limit, expected, confidence_level, status,
    )  # fmt: skip


def _solve_increasing(function, scale: float, *, start: float = 0.0, guess: float | None = None) -> float:
    """Root above ``start`` of a function increasing in mu.

    Secant steps from ``guess`` (the asymptotic closed form, usually within a few per cent)
    converge in two or three evaluations; a bracket grown by doubling steps and Brent's
    method take over when they do not. The bracket starts 0.05 ``scale`` above ``start``:
    closer to mu = 0 both q~_mu and q~_mu,A vanish and their ratio is minimiser noise.
    """
    floor = start + 0.05 * scale
    tolerance = 1e-4 * scale
    if guess is not None and guess > floor:
        x0, x1 = guess, guess * 1.02 + 0.01 * scale
        f0, f1 = function(x0), function(x1)
        for _ in range(8):
            if f1 == f0:
                break
            x2 = x1 - f1 * (x1 - x0) / (f1 - f0)
            if not floor < x2 < 100 * (abs(guess) + scale):
                break
            x0, f0, x1, f1 = x1, f1, x2, function(x2)
            if abs(x1 - x0) < tolerance:
                return float(x1)
    low = floor
    if function(low) >= 0.0:
        tiny = start + 1e-3 * scale
        if function(tiny) >= 0.0:
            return low
        return float(optimize.brentq(function, tiny, low, xtol=tolerance))
    step = scale
    high = start + step
    for _ in range(40):
        if function(high) > 0.0:
            return float(optimize.brentq(function, low, high, xtol=tolerance, rtol=1e-8))
        low, step = high, 2.0 * step
        high = start + step
    return float("nan")
