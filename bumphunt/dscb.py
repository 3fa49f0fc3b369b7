"""The double-sided Crystal Ball and first-order Chebyshev densities, normalised in a window.

The double-sided Crystal Ball (DSCB) with t = (x - mu) / sigma_l for x < mu and
(x - mu) / sigma_r otherwise is

    exp(-t^2 / 2)                                 for -alpha_l <= t <= alpha_r,
    A_l (B_l - t)^(-n_l),  A_l = (n_l / alpha_l)^n_l exp(-alpha_l^2 / 2),  B_l = n_l / alpha_l - alpha_l,  t < -alpha_l,
    A_r (B_r + t)^(-n_r),  likewise,                                                                    t > alpha_r,

the definition of RooCrystalBall and of zfit's DoubleCB (sigma_l = sigma_r) and
GeneralizedCB. Its integral over any window is computed in closed form. The Chebyshev
density of first order on [lower, upper] is (1 + c1 x') / (upper - lower) with
x' = 2 (x - lower) / (upper - lower) - 1, like zfit's Chebyshev with coeff0 = 1.

The kernels are numba-compiled, because the signal-shape fits and the mass scan evaluate
them millions of times; :func:`bumphunt.shapes.zfit_signal_pdf` builds the same model in zfit.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_jit = nb.njit(cache=True, error_model="numpy")


@_jit
def _tail_integral(a, b, n, t1, t2):
    """Integral of a (b + t)^(-n) dt from t1 to t2 (b + t > 0)."""
    if abs(n - 1.0) < 1e-12:
        return a * (math.log(b + t2) - math.log(b + t1))
    return a / (1.0 - n) * ((b + t2) ** (1.0 - n) - (b + t1) ** (1.0 - n))


@_jit
def _gauss_integral(t1, t2):
    """Integral of exp(-t^2 / 2) dt from t1 to t2."""
    return math.sqrt(math.pi / 2.0) * (math.erf(t2 / math.sqrt(2.0)) - math.erf(t1 / math.sqrt(2.0)))


@_jit
def _side_integral(t1, t2, alpha, n):
    """Integral over [t1, t2] (t >= 0 side, in units of that side's sigma) of the core and
    the tail beyond alpha."""
    total = 0.0
    if t1 < alpha:
        total += _gauss_integral(t1, min(t2, alpha))
    if t2 > alpha:
        a = (n / alpha) ** n * math.exp(-0.5 * alpha * alpha)
        b = n / alpha - alpha
        total += _tail_integral(a, b, n, max(t1, alpha), t2)
    return total


@_jit
def dscb_integral(lower, upper, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r):
    """Closed-form integral of the unnormalised DSCB over [lower, upper]."""
    total = 0.0
    if lower < mu:  # left side, mirrored to positive t
        t_far = (mu - lower) / sigma_l
        t_near = (mu - min(upper, mu)) / sigma_l
        total += sigma_l * _side_integral(t_near, t_far, alpha_l, n_l)
    if upper > mu:
        t_near = (max(lower, mu) - mu) / sigma_r
        t_far = (upper - mu) / sigma_r
        total += sigma_r * _side_integral(t_near, t_far, alpha_r, n_r)
    return total


@_jit
def _dscb_log_unnormalised(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r):
    if x < mu:
        t = (mu - x) / sigma_l
        alpha, n = alpha_l, n_l
    else:
        t = (x - mu) / sigma_r
        alpha, n = alpha_r, n_r
    if t <= alpha:
        return -0.5 * t * t
    return n * math.log(n / alpha) - 0.5 * alpha * alpha - n * math.log(n / alpha - alpha + t)


@_jit
def dscb_logpdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper):
    """log of the DSCB normalised on [lower, upper], for an array x."""
    log_norm = math.log(dscb_integral(lower, upper, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r))
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = _dscb_log_unnormalised(x[i], mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r) - log_norm
    return out


@_jit
def dscb_nll(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper):
    """Negative log-likelihood of the DSCB normalised on [lower, upper]."""
    log_norm = math.log(dscb_integral(lower, upper, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r))
    total = 0.0
    for i in range(x.shape[0]):
        total -= _dscb_log_unnormalised(x[i], mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r)
    return total + x.shape[0] * log_norm


@_jit
def signal_nll(x, fraction, c1, peak_density, lower, upper):
    """Negative log-likelihood of fraction * peak + (1 - fraction) * Chebyshev(c1), with the
    normalised peak density precomputed at every x."""
    width = upper - lower
    total = 0.0
    for i in range(x.shape[0]):
        scaled = 2.0 * (x[i] - lower) / width - 1.0
        density = fraction * peak_density[i] + (1.0 - fraction) * (1.0 + c1 * scaled) / width
        if density <= 0.0:
            return np.inf
        total -= math.log(density)
    return total


def dscb_pdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper) -> np.ndarray:
    """The DSCB normalised on [lower, upper]; zero outside the window."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    values = np.exp(dscb_logpdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper))
    return np.where((x >= lower) & (x <= upper), values, 0.0)


def chebyshev1_pdf(x, c1, lower, upper) -> np.ndarray:
    """First-order Chebyshev density normalised on [lower, upper]; zero outside."""
    x = np.asarray(x, dtype=np.float64)
    scaled = 2.0 * (x - lower) / (upper - lower) - 1.0
    return np.where((x >= lower) & (x <= upper), (1.0 + c1 * scaled) / (upper - lower), 0.0)
