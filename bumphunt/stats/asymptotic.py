"""Asymptotic formulas of the profile-likelihood test statistics, and the root finding of limits.

Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554 (q~_mu and its asymptotic
distribution); CLs = p_mu / (1 - p_b), Read, J. Phys. G 28 (2002) 2693.
"""

from __future__ import annotations

import math

from scipy import optimize, stats

#: Expected-limit bands, in standard deviations of the background-only distribution.
BANDS = (-2, -1, 0, 1, 2)

#: Limits are found to this fraction of their ``scale`` (the signal estimate's sigma).
LIMIT_TOLERANCE = 1e-4


def pvalues_from_q(q_mu: float, q_mu_asimov: float) -> tuple[float, float]:
    """Asymptotic p_mu (= CLs+b) and 1 - p_b (= CLb) for the statistic q~_mu, given
    q~_mu,A = mu^2/sigma^2 (Cowan et al. 2011, eqs. 65-66)."""
    sqrt_qa = math.sqrt(max(q_mu_asimov, 1e-300))
    if q_mu <= q_mu_asimov:
        sqrt_q = math.sqrt(max(q_mu, 0.0))
        return float(stats.norm.sf(sqrt_q)), float(stats.norm.sf(sqrt_q - sqrt_qa))
    return (
        float(stats.norm.sf((q_mu + q_mu_asimov) / (2.0 * sqrt_qa))),
        float(stats.norm.sf((q_mu - q_mu_asimov) / (2.0 * sqrt_qa))),
    )


def cls_from_q(q_mu: float, q_mu_asimov: float) -> float:
    """Asymptotic CLs = p_mu / (1 - p_b) for the statistic q~_mu, given q~_mu,A = mu^2/sigma^2
    (Cowan et al. 2011, eqs. 65-66)."""
    cls_b, cl_b = pvalues_from_q(q_mu, q_mu_asimov)
    return cls_b / cl_b if cl_b > 0 else 0.0


def gaussian_limit(mu_hat: float, sigma: float, alpha: float) -> float:
    """The asymptotic CLs limit of a Gaussian estimate: mu_hat + sigma Phi^-1(1 - alpha
    Phi(mu_hat / sigma)) (Cowan et al. 2011); where root finding of limits starts."""
    return float(mu_hat + sigma * stats.norm.ppf(1.0 - alpha * stats.norm.cdf(mu_hat / sigma)))


def band_target(band: float, alpha: float, *, cls: bool = True) -> float:
    """sqrt(q~_mu,A) at the expected limit of ``band`` (standard deviations of the
    background-only distribution): Phi^-1(1 - alpha Phi(N)) + N for CLs, Phi^-1(1 - alpha) + N
    for CLs+b (Cowan et al. 2011, eq. 89 and its CLs form)."""
    if cls:
        return float(stats.norm.ppf(1.0 - alpha * stats.norm.cdf(band)) + band)
    return float(stats.norm.isf(alpha) + band)


def expected_limits(q_asimov, alpha: float, scale: float, *, cls: bool = True, bands=BANDS) -> dict[int, float]:
    """Asymptotic expected upper limits: each band N solves sqrt(q~_mu,A(mu)) = :func:`band_target`.

    ``q_asimov(mu)`` is q~_mu on the background-only Asimov data set; ``scale`` the rough
    size of the limit (sigma of the signal estimate). A band whose target is not positive
    (CLs+b below the median by more than Phi^-1(1 - alpha) sigma) has the limit 0.
    """
    limits = {}
    for band in bands:
        target = band_target(band, alpha, cls=cls)
        if target <= 0.0:
            limits[band] = 0.0
            continue
        limits[band] = solve_increasing(lambda mu, t=target: math.sqrt(q_asimov(mu)) - t, scale, guess=scale * target)
    return limits


def solve_increasing(function, scale: float, *, start: float = 0.0, guess: float | None = None) -> float:
    """Root above ``start`` of a function increasing in mu.

    Secant steps from ``guess`` (the asymptotic closed form, usually within a few per cent)
    converge in two or three evaluations; a bracket grown by doubling steps and Brent's
    method take over when they do not. The bracket starts 0.05 ``scale`` above ``start``:
    closer to mu = 0 both q~_mu and q~_mu,A vanish and their ratio is minimiser noise.
    """
    floor = start + 0.05 * scale
    tolerance = LIMIT_TOLERANCE * scale
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
