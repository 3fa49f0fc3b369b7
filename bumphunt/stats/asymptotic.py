"""Asymptotic formulas of the profile-likelihood test statistics, and the root finding of limits.

Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554 (q~_mu and its asymptotic
distribution); CLs = p_mu / (1 - p_b), Read, J. Phys. G 28 (2002) 2693.
"""

from __future__ import annotations

import math

from scipy import optimize, stats


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


def solve_increasing(function, scale: float, *, start: float = 0.0, guess: float | None = None) -> float:
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
