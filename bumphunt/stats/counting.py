"""Counting experiments: events in one signal window, the background constrained by an off count.

The likelihood of Cousins, Linnemann and Tucker (NIM A 595 (2008) 480) for on/off problems,

    L(s, b, k) = Pois(n | k s + b) x Pois(m | tau b) [x Pois(m_s | tau_s k)],

with s the signal events (the parameter of interest), b the background in the window, m the
off count of a control sample tau times larger (or of the simulation: tau = b / sigma_b^2),
and, with a relative signal-efficiency uncertainty r, a scale k of the signal constrained by
an auxiliary count m_s = tau_s = 1 / r^2. This is pyhf's ``shapesys`` (a Poisson-constrained
factor) on the background and on the signal. Given s, the maximum over (b, k) has a closed
form (a quadratic), so the test statistics need no minimiser and run on arrays of
pseudo-experiments at once.

Upper limits use q~_mu of Cowan, Cranmer, Gross, Vitells (EPJC 71 (2011) 1554), with CLs
(Read, J. Phys. G 28 (2002) 2693) or CLs+b; the p-values come from pseudo-experiments
(toys, the default: the nuisance parameters at their conditional fits to the data, as the
LHC experiments do) or from the asymptotic formulas of :mod:`bumphunt.stats.asymptotic`.
Toys are drawn by inverting the Poisson distribution at scrambled Sobol points (randomised
quasi-Monte Carlo, seeded): every tested s reuses the same points, so CLs(s) is a
deterministic function that root finding can solve, and the p-values are several times more
precise than with as many pseudo-random toys.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from scipy import special, stats
from scipy.stats import qmc

from ..errors import BumphuntError
from .asymptotic import BANDS, expected_limits, gaussian_limit, pvalues_from_q, solve_increasing
from .hypotest import HypothesisResult

#: How p-values are computed: pseudo-experiments or the asymptotic formulas.
METHODS = ("toys", "asymptotic")
#: Upper-limit constructions: CLs = p_mu / (1 - p_b), or CLs+b = p_mu.
STATISTICS = ("cls", "clsb")
#: Pseudo-experiments per hypothesis test (a power of two stratifies the Sobol points best;
#: 4096 Sobol points give p-values about as precise as 10^5 pseudo-random toys).
DEFAULT_TOYS = 4096
#: Background-only experiments behind expected limits from toys, when no counts are given.
DEFAULT_EXPERIMENTS = 100
#: Tails of the Poisson distribution left out of the inverse-CDF tables of the toys.
_TAIL = 1e-15
#: Largest Poisson mean the toys draw from a table of its CDF (about 16 sqrt(mean) entries).
_TABLE_MEAN = 1e6


class CountingData(NamedTuple):
    """Observed counts (floats or arrays of pseudo-experiments): n in the window, m the off
    count, m_s the auxiliary count of the signal efficiency (unused ones are 0)."""

    n: np.ndarray | float
    m: np.ndarray | float
    m_s: np.ndarray | float


def _check_number(name: str, value: float, *, minimum: float = 0.0, infinite: bool = False) -> float:
    value = float(value)
    if math.isnan(value) or value < minimum or (math.isinf(value) and not infinite):
        bound = f">= {minimum:g}" + ("" if infinite else ", finite")
        raise BumphuntError(f"counting model: {name} must be a number {bound}, got {value}")
    return value


@dataclass(frozen=True)
class CountingModel:
    """One signal window: n observed events, background b constrained by an off count.

    Parameters
    ----------
    n_observed : float
        Events observed in the window.
    background : float
        Background estimate in the window (events).
    tau : float
        Ratio of the off (control or simulated) sample to the window: the off count is
        m = tau b. ``inf`` (the default) takes b as known.
    efficiency_uncertainty : float
        Relative uncertainty of the signal efficiency (0: none).
    """

    n_observed: float
    background: float
    tau: float = math.inf
    efficiency_uncertainty: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "n_observed", _check_number("n_observed", self.n_observed))
        object.__setattr__(self, "background", _check_number("background", self.background))
        object.__setattr__(self, "tau", _check_number("tau", self.tau, minimum=1e-300, infinite=True))
        uncertainty = _check_number("efficiency_uncertainty", self.efficiency_uncertainty)
        object.__setattr__(self, "efficiency_uncertainty", uncertainty)

    @classmethod
    def with_uncertainty(cls, n_observed: float, background: float, uncertainty: float, *,
                         efficiency_uncertainty: float = 0.0) -> CountingModel:  # fmt: skip
        """The model whose off count gives b the relative uncertainty ``uncertainty``:
        tau = 1 / (uncertainty^2 b) (pyhf's ``shapesys``: m = (b / sigma_b)^2). A zero
        uncertainty or background makes b known."""
        uncertainty = _check_number("background uncertainty", uncertainty)
        background = _check_number("background", background)
        tau = math.inf if uncertainty == 0.0 or background == 0.0 else 1.0 / (uncertainty**2 * background)
        return cls(n_observed, background, tau, efficiency_uncertainty)

    @classmethod
    def on_off(cls, n_on: float, n_off: float, tau: float, *, efficiency_uncertainty: float = 0.0) -> CountingModel:
        """The model of an on/off measurement: ``n_off`` events in a control sample ``tau``
        times the window's (b = n_off / tau)."""
        tau = _check_number("tau", tau, minimum=1e-300)
        return cls(n_on, _check_number("n_off", n_off) / tau, tau, efficiency_uncertainty)

    @property
    def background_known(self) -> bool:
        return math.isinf(self.tau)

    @property
    def efficiency_known(self) -> bool:
        return self.efficiency_uncertainty == 0.0

    @property
    def tau_efficiency(self) -> float:
        """tau_s = 1 / r^2 of the signal-efficiency constraint (inf without one)."""
        return math.inf if self.efficiency_known else 1.0 / self.efficiency_uncertainty**2

    @property
    def observed(self) -> CountingData:
        m = 0.0 if self.background_known else self.tau * self.background
        m_s = 0.0 if self.efficiency_known else self.tau_efficiency
        return CountingData(self.n_observed, m, m_s)

    @property
    def background_error(self) -> float:
        """sigma_b = sqrt(b / tau) (0 when b is known)."""
        return 0.0 if self.background_known else math.sqrt(self.background / self.tau)

    # -- likelihood -----------------------------------------------------------------------

    def profile(self, mu: float, data: CountingData | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The conditional maximum-likelihood (b, k) at signal ``mu`` (closed form)."""
        n, m, m_s = (np.asarray(x, dtype=np.float64) for x in (data or self.observed))
        tau, tau_s = self.tau, self.tau_efficiency
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.background_known and self.efficiency_known:
                return np.full_like(n, self.background), np.ones_like(n)
            if self.efficiency_known:
                return _background_given_signal(mu, n, m, tau), np.ones_like(n)
            if self.background_known:
                return np.full_like(n, self.background), _scale_given_background(mu, self.background, n, m_s, tau_s)
            return _joint_profile(mu, n, m, m_s, tau, tau_s)

    def log_likelihood(self, mu: float, b, k, data: CountingData | None = None) -> np.ndarray:
        """ln L(mu, b, k) - ln L of the saturated model (every count equal to its expectation):
        0 at the best fit, a sum of O(1) terms near it even for off counts of 10^12."""
        n, m, m_s = data or self.observed
        value = _poisson_log_ratio(n, mu * k + b)
        if not self.background_known:
            value = value + _poisson_log_ratio(m, self.tau * b)
        if not self.efficiency_known:
            value = value + _poisson_log_ratio(m_s, self.tau_efficiency * k)
        return value

    def signal_estimate(self, data: CountingData | None = None) -> np.ndarray:
        """The maximum-likelihood signal s^ = (n - m / tau) / (m_s / tau_s), +-inf where the
        efficiency scale is fitted to 0."""
        n, m, m_s = (np.asarray(x, dtype=np.float64) for x in (data or self.observed))
        excess = n - (self.background if self.background_known else m / self.tau)
        if self.efficiency_known:
            return excess
        scale = m_s / self.tau_efficiency
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(scale > 0, excess / scale, np.sign(excess) * np.inf)

    def _log_likelihood_at(self, mu: float, data: CountingData | None) -> np.ndarray:
        return self.log_likelihood(mu, *self.profile(mu, data), data)

    def q_tilde(self, mu: float, data: CountingData | None = None) -> np.ndarray:
        """q~_mu = -2 ln [L(mu, b^^, k^^) / L(s^, b^, k^)] with s^ clipped at 0; 0 where s^ > mu.

        At s^ >= 0 every count equals its expectation (the supremum when k^ = 0), where
        :meth:`log_likelihood` is 0; below, the reference is the fit at s = 0.
        """
        s_hat = self.signal_estimate(data)
        best = np.where(s_hat >= 0, 0.0, self._log_likelihood_at(0.0, data))
        value = 2.0 * (best - self._log_likelihood_at(mu, data))
        return np.where(s_hat > mu, 0.0, np.maximum(value, 0.0))

    def q0(self, data: CountingData | None = None) -> np.ndarray:
        """q0 = -2 ln [L(0, b^^, k^^) / L(s^, b^, k^)] for s^ > 0, else 0 (discovery)."""
        value = -2.0 * self._log_likelihood_at(0.0, data)
        return np.where(self.signal_estimate(data) > 0, np.maximum(value, 0.0), 0.0)

    def asimov(self, mu: float = 0.0) -> CountingData:
        """The Asimov data set of signal ``mu`` with the nuisance parameters fitted to the
        data at that signal (pyhf and Combine's convention)."""
        b, k = (float(x) for x in self.profile(mu))
        return CountingData(mu * k + b, 0.0 if self.background_known else self.tau * b,
                            0.0 if self.efficiency_known else self.tau_efficiency * k)  # fmt: skip

    def signal_error(self) -> float:
        """sigma of s^ (Poisson n, the off count's b, the efficiency), at least 1e-3."""
        n, _, m_s = self.observed
        scale = 1.0 if self.efficiency_known else m_s / self.tau_efficiency
        s_hat = float(self.signal_estimate())
        variance = (n + self.background_error**2) / scale**2 + (s_hat * self.efficiency_uncertainty) ** 2
        return max(math.sqrt(variance), 1e-3)


def _poisson_log_ratio(count, expected):
    """ln Pois(count | expected) - ln Pois(count | count) = count ln(expected / count) - (expected - count),
    written with log1p so that large counts near their expectation lose no precision."""
    count, expected = np.asarray(count, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    excess = expected - count
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, count * np.log1p(excess / np.where(count > 0, count, 1.0)) - excess, -expected)


def _stable_positive_root(a, b, c):
    """The non-negative root of a x^2 - b x - c = 0 with a, c >= 0, without cancellation."""
    root = np.sqrt(np.maximum(b * b + 4.0 * a * c, 0.0))
    return np.where(b > 0, (b + root) / (2.0 * a), np.where(root - b > 0, 2.0 * c / (root - b), 0.0))


def _background_given_signal(signal, n, m, tau):
    """b^^ maximising Pois(n | signal + b) Pois(m | tau b): the root of
    (1 + tau) b^2 + ((1 + tau) signal - n - m) b - m signal = 0 (0 when m = 0 and n is small)."""
    a = 1.0 + tau
    return _stable_positive_root(a, n + m - a * signal, m * signal)


def _scale_given_background(mu, background, n, m_s, tau_s):
    """k^^ maximising Pois(n | mu k + b) Pois(m_s | tau_s k) at known b: the root of
    mu (mu + tau_s) k^2 - (mu (n - b + m_s) - tau_s b) k - m_s b = 0."""
    a = mu * (mu + tau_s)
    linear = mu * (n - background + m_s) - tau_s * background
    scale = _stable_positive_root(a, linear, m_s * background)
    # mu = 0 and b = 0: n does not depend on k; the constraint alone fixes it
    return np.where((a == 0) & (background == 0), m_s / tau_s, scale)


def _joint_profile(mu, n, m, m_s, tau, tau_s):
    """(b^^, k^^) with both free. With r = n / (mu k + b) the conditions read b = m / (1 + tau - r),
    k = m_s / (tau_s + mu (1 - r)), a quadratic in r whose smaller root is the maximum; b (or, when
    m = 0, k) follows from r and the other from its own closed form, exact at the boundaries."""
    one_tau = 1.0 + tau
    a = mu * (m_s + m + n)
    linear = mu * m_s * one_tau + (m + n) * (tau_s + mu) + n * mu * one_tau
    constant = n * (tau_s + mu) * one_tau
    root = np.sqrt(np.maximum(linear * linear - 4.0 * a * constant, 0.0))
    r = np.where(constant > 0, 2.0 * constant / (linear + root), 0.0)
    k_from_r = m_s / (tau_s + mu * (1.0 - r))
    b = np.where(m > 0, m / (one_tau - r), _background_given_signal(mu * k_from_r, n, m, tau))
    k = np.where(m > 0, _scale_given_background(mu, b, n, m_s, tau_s), k_from_r)
    # no off counts at all: the expected n is bought where it costs least, 1 + tau per unit
    # of background or (mu + tau_s) / mu per unit of signal
    neither = (m == 0) & (m_s == 0)
    background_cheaper = one_tau * mu <= mu + tau_s
    b = np.where(neither, np.where(background_cheaper, n / one_tau, 0.0), b)
    k = np.where(neither, np.where(background_cheaper, 0.0, n / (mu + tau_s)), k)
    return b, k


# -- p-values ---------------------------------------------------------------------------------


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise BumphuntError(f"unknown {name} {value!r}; choose {' or '.join(choices)}")
    return value


def _poisson_quantiles(mean: float, uniforms: np.ndarray) -> np.ndarray:
    """Poisson(mean) counts at the given uniform numbers: the inverse CDF, from a table of it
    (above a mean of 10^6, from the Cornish-Fisher expansion, whose error is O(1/mean))."""
    if not mean > 0:
        return np.zeros(len(uniforms))
    if mean > _TABLE_MEAN:
        z = special.ndtri(uniforms)
        return np.floor(mean + math.sqrt(mean) * (z + (z * z - 1.0) / (6.0 * math.sqrt(mean))) + 0.5)
    low = int(stats.poisson.ppf(_TAIL, mean))
    high = int(stats.poisson.isf(_TAIL, mean)) + 1
    cdf = stats.poisson.cdf(np.arange(low, high + 1), mean)
    return (low + np.minimum(np.searchsorted(cdf, uniforms), high - low)).astype(np.float64)


def sobol_uniforms(toys: int, dimensions: int, seed) -> np.ndarray:
    """``toys`` scrambled Sobol points in the unit cube of ``dimensions`` (seeded by an int or a
    SeedSequence, which is left as it was: scipy spawns from the generator it is given)."""
    if isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key)
    sampler = qmc.Sobol(dimensions, scramble=True, seed=np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*balance properties of Sobol", category=UserWarning)
        return sampler.random(toys)


def toy_dimensions(model: CountingModel) -> int:
    """Counts drawn per pseudo-experiment: n, and the off counts of what is not known."""
    return 1 + (not model.background_known) + (not model.efficiency_known)


class ToyCalculator:
    """p-values of a counting model from pseudo-experiments, vectorised.

    The pseudo-experiments of the signal + background hypothesis are drawn with the nuisance
    parameters at their fit to the data at the tested signal, those of the background-only
    hypothesis at their fit with s = 0; n, m and m_s are Poisson quantiles at scrambled Sobol
    points drawn once (``seed``; or ``points``, (toys, 2 :func:`toy_dimensions`)), so that every
    tested signal sees the same points.
    """

    def __init__(self, model: CountingModel, toys: int = DEFAULT_TOYS, seed=0, *, points: np.ndarray | None = None):
        if int(toys) < 1:
            raise BumphuntError(f"toys must be a positive number of pseudo-experiments, got {toys}")
        self.model, self.toys = model, int(toys)
        dimensions = toy_dimensions(model)
        points = sobol_uniforms(self.toys, 2 * dimensions, seed) if points is None else points
        self._signal_points, self._background_points = points[:, :dimensions], points[:, dimensions:]
        self._background_only = self._draw(self._background_points, 0.0)

    def _draw(self, points: np.ndarray, mu: float) -> CountingData:
        model = self.model
        b, k = (float(x) for x in model.profile(mu))
        columns = iter(points.T)
        n = _poisson_quantiles(mu * k + b, next(columns))
        zeros = np.zeros(self.toys)
        m = zeros if model.background_known else _poisson_quantiles(model.tau * b, next(columns))
        m_s = zeros if model.efficiency_known else _poisson_quantiles(model.tau_efficiency * k, next(columns))
        return CountingData(n, m, m_s)

    def pvalues(self, mu: float) -> tuple[float, float]:
        """(p_mu, 1 - p_b): the fractions of signal + background and of background-only
        pseudo-experiments with q~_mu at least the observed one."""
        observed = float(self.model.q_tilde(mu))
        signal = self.model.q_tilde(mu, self._draw(self._signal_points, mu))
        background = self.model.q_tilde(mu, self._background_only)
        return _fraction_at_least(signal, observed), _fraction_at_least(background, observed)

    def discovery_pvalue(self) -> float:
        """p0: the fraction of background-only pseudo-experiments with q0 at least the observed."""
        return _fraction_at_least(self.model.q0(self._background_only), float(self.model.q0()))


def _fraction_at_least(values: np.ndarray, threshold: float) -> float:
    """Fraction of ``values`` >= ``threshold``, ties within rounding included."""
    return float(np.mean(values >= threshold - 1e-9 * (1.0 + abs(threshold))))


class AsymptoticCalculator:
    """p-values of a counting model from the asymptotic distributions of q~_mu and q0, with
    sigma from the background-only Asimov data set (pyhf's and Combine's convention)."""

    def __init__(self, model: CountingModel):
        self.model = model
        self.asimov_data = model.asimov(0.0)

    def q_asimov(self, mu: float) -> float:
        return float(self.model.q_tilde(mu, self.asimov_data))

    def pvalues(self, mu: float) -> tuple[float, float]:
        return pvalues_from_q(float(self.model.q_tilde(mu)), self.q_asimov(mu))

    def discovery_pvalue(self) -> float:
        return float(stats.norm.sf(math.sqrt(float(self.model.q0()))))


def calculator(model: CountingModel, method: str = "toys", *, toys: int = DEFAULT_TOYS, seed=0, points=None):
    """The :class:`ToyCalculator` or :class:`AsymptoticCalculator` of ``model``."""
    if _check_choice("method", method, METHODS) == "toys":
        return ToyCalculator(model, toys, seed, points=points)
    return AsymptoticCalculator(model)


@dataclass(frozen=True)
class CountingPValues:
    """The p-values of one tested signal: ``clsb`` = p_mu, ``clb`` = 1 - p_b, ``cls``."""

    clsb: float
    clb: float

    @property
    def cls(self) -> float:
        return self.clsb / self.clb if self.clb > 0 else 0.0

    def of(self, statistic: str) -> float:
        return self.cls if statistic == "cls" else self.clsb


def counting_pvalues(model: CountingModel, mu: float, *, method: str = "toys", toys: int = DEFAULT_TOYS,
                     seed=0) -> CountingPValues:  # fmt: skip
    """CLs+b, CLb and CLs of signal ``mu`` (events) for a counting model."""
    return CountingPValues(*calculator(model, method, toys=toys, seed=seed).pvalues(mu))


# -- limits -------------------------------------------------------------------------------------


def _upper_limit(model: CountingModel, pvalues, alpha: float, statistic: str) -> float:
    """Root of CLs (or CLs+b) = alpha above s^, from the asymptotic closed form; the root
    finding's scale is sigma of s^, at least one event."""
    start, scale = max(float(model.signal_estimate()), 0.0), max(model.signal_error(), 1.0)
    return solve_increasing(lambda mu: alpha - CountingPValues(*pvalues(mu)).of(statistic), scale, start=start,
                            guess=gaussian_limit(start, scale, alpha))  # fmt: skip


def counting_upper_limit(model: CountingModel, *, confidence_level: float = 0.95, statistic: str = "cls",
                         method: str = "toys", toys: int = DEFAULT_TOYS, seed=0) -> float:  # fmt: skip
    """The upper limit on the signal events: the s where CLs (or CLs+b) falls to 1 - CL.

    Parameters
    ----------
    model : CountingModel
    confidence_level : float
        E.g. 0.95 or 0.90.
    statistic : {"cls", "clsb"}
    method : {"toys", "asymptotic"}
    toys : int
        Pseudo-experiments per hypothesis (each of s + b and of b alone).
    seed : int or numpy SeedSequence
        Seed of the pseudo-experiments.
    """
    _check_choice("statistic", statistic, STATISTICS)
    engine = calculator(model, method, toys=toys, seed=seed)
    return _upper_limit(model, engine.pvalues, 1.0 - confidence_level, statistic)


def _for_counts(model: CountingModel, counts, method: str, toys: int, seed, compute) -> np.ndarray:
    """``compute(model with n = count, calculator)`` for each of ``counts``, once per distinct
    count, the toys of all at the same Sobol points."""
    counts = np.asarray(counts, dtype=np.float64)
    distinct, index = np.unique(counts, return_inverse=True)
    points = sobol_uniforms(toys, 2 * toy_dimensions(model), seed) if method == "toys" else None
    values = []
    for n in distinct:
        observed = replace(model, n_observed=n)
        values.append(compute(observed, calculator(observed, method, toys=toys, seed=seed, points=points)))
    return np.array(values, dtype=np.float64)[index].reshape(counts.shape)


def counting_limits(model: CountingModel, counts, *, confidence_level: float = 0.95, statistic: str = "cls",
                    method: str = "toys", toys: int = DEFAULT_TOYS, seed=0) -> np.ndarray:  # fmt: skip
    """The upper limit of ``model`` with each of ``counts`` observed instead of its n; options
    as :func:`counting_upper_limit`."""
    _check_choice("statistic", statistic, STATISTICS)
    alpha = 1.0 - confidence_level
    return _for_counts(model, counts, method, toys, seed,
                       lambda observed, engine: _upper_limit(observed, engine.pvalues, alpha, statistic))  # fmt: skip


def discovery_pvalues(model: CountingModel, counts, *, method: str = "toys", toys: int = DEFAULT_TOYS,
                      seed=0) -> np.ndarray:  # fmt: skip
    """The discovery p0 of ``model`` with each of ``counts`` observed instead of its n."""
    return _for_counts(model, counts, method, toys, seed, lambda observed, engine: engine.discovery_pvalue())


def expected_bands(model: CountingModel, counts, **options) -> dict[int, float]:
    """Median and +-1, +-2 sigma expected limits (:data:`BANDS`) over background-only counts.

    Each band is the limit at the Phi(N) quantile of the counts (the smallest count whose
    empirical CDF reaches it): the limit grows with the count, so this is the same quantile
    of the limits of all the counts, at the price of five limits. ``options`` as
    :func:`counting_upper_limit`.
    """
    quantiles = np.quantile(np.asarray(counts, dtype=np.float64), stats.norm.cdf(BANDS), method="inverted_cdf")
    return dict(zip(BANDS, (float(limit) for limit in counting_limits(model, quantiles, **options))))


def significance(p0) -> np.ndarray:
    """Z = Phi^-1(1 - p0), 0 for p0 >= 1/2."""
    return np.maximum(stats.norm.isf(p0), 0.0)


def counting_result(model: CountingModel, *, upper_limit: float, p0: float, expected: dict[int, float],
                    confidence_level: float, mass: float = math.nan) -> HypothesisResult:  # fmt: skip
    """The row of a scan's table for a counting model and its limits (signal events)."""
    status = "ok" if all(np.isfinite([upper_limit, *expected.values()])) else "limit not found"
    return HypothesisResult(
        mass, model.n_observed, float(model.signal_estimate()), model.signal_error(), float(model.q0()),
        float(significance(p0)), float(p0), float(upper_limit), expected, confidence_level, status,
    )  # fmt: skip


def evaluate_counting(
    model: CountingModel,
    *,
    mass: float = math.nan,
    confidence_level: float = 0.95,
    statistic: str = "cls",
    method: str = "toys",
    toys: int = DEFAULT_TOYS,
    seed=0,
    background_counts=None,
    experiments: int = DEFAULT_EXPERIMENTS,
) -> HypothesisResult:
    """Signal estimate, discovery significance and observed and expected upper limits of a
    counting model, as a :class:`~bumphunt.stats.HypothesisResult` (a row of a scan's table).

    Expected limits are the median and quantiles of the limits for ``background_counts``
    (counts of background-only data sets, e.g. bootstrapped from the simulation) or, without
    them, for ``experiments`` counts drawn from Poisson(b^^(0)) (toys), or the asymptotic
    bands of the Asimov data set (asymptotic). Other parameters as :func:`counting_upper_limit`.
    """
    _check_choice("statistic", statistic, STATISTICS)
    options = dict(confidence_level=confidence_level, statistic=statistic, method=method, toys=toys, seed=seed)
    if background_counts is None and _check_choice("method", method, METHODS) == "toys":
        rng = np.random.default_rng(child_seed(seed, 1))
        background_counts = rng.poisson(float(model.profile(0.0)[0]), size=experiments)
    if background_counts is not None:
        expected = expected_bands(model, background_counts, **options)
    else:
        expected = expected_limits(AsymptoticCalculator(model).q_asimov, 1.0 - confidence_level,
                                   model.signal_error(), cls=statistic == "cls")  # fmt: skip
    engine = calculator(model, method, toys=toys, seed=seed)
    return counting_result(model, upper_limit=_upper_limit(model, engine.pvalues, 1.0 - confidence_level, statistic),
                           p0=engine.discovery_pvalue(), expected=expected, confidence_level=confidence_level,
                           mass=mass)  # fmt: skip


def child_seed(seed, key: int) -> np.random.SeedSequence:
    """An independent seed derived from ``seed`` (an int or a SeedSequence) and ``key``."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, key))
    return np.random.SeedSequence(seed, spawn_key=(key,))
