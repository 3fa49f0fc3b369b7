"""The signal densities, normalised in a window: the double-sided Crystal Ball (with an
optional Gaussian sharing its mean) and the first-order Chebyshev (with an optional endpoint).

The double-sided Crystal Ball (DSCB) with t = (x - mu) / sigma_l for x < mu and
(x - mu) / sigma_r otherwise is

    exp(-t^2 / 2)                                 for -alpha_l <= t <= alpha_r,
    A_l (B_l - t)^(-n_l),  A_l = (n_l / alpha_l)^n_l exp(-alpha_l^2 / 2),  B_l = n_l / alpha_l - alpha_l,  t < -alpha_l,
    A_r (B_r + t)^(-n_r),  likewise,                                                                    t > alpha_r,

the definition of RooCrystalBall and of zfit's DoubleCB (sigma_l = sigma_r) and
GeneralizedCB. Its integral over any window is computed in closed form. The Chebyshev
density of first order on [lower, upper] is (1 + c1 x') / (upper - lower) with
x' = 2 (x - lower) / (upper - lower) - 1, like zfit's Chebyshev with coeff0 = 1.

The peak may add a Gaussian of the same mean, (1 - g) DSCB + g Gauss(mu, sigma_g), each part
normalised in the window. The wrong-pairing density may end at a kinematic endpoint E,
smeared over a width w: (1 + c1 x') erfc((x - E) / (sqrt(2) w)) / 2, also normalised in
closed form (:func:`edge_integrals`).

The kernels are numba-compiled, because the signal-shape fits and the mass scan evaluate
them millions of times; :func:`bumphunt.models.zfit_pdfs.zfit_signal_pdf` builds the same model in zfit.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc

from .._jit import jit


@jit
def _tail_integral(a, b, n, t1, t2):
    """Integral of a (b + t)^(-n) dt from t1 to t2 (b + t > 0)."""
    if abs(n - 1.0) < 1e-12:
        return a * (math.log(b + t2) - math.log(b + t1))
    return a / (1.0 - n) * ((b + t2) ** (1.0 - n) - (b + t1) ** (1.0 - n))


@jit
def _gauss_integral(t1, t2):
    """Integral of exp(-t^2 / 2) dt from t1 to t2."""
    return math.sqrt(math.pi / 2.0) * (math.erf(t2 / math.sqrt(2.0)) - math.erf(t1 / math.sqrt(2.0)))


@jit
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


@jit
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


@jit
def dscb_log_unnormalised(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r):
    if x < mu:
        t = (mu - x) / sigma_l
        alpha, n = alpha_l, n_l
    else:
        t = (x - mu) / sigma_r
        alpha, n = alpha_r, n_r
    if t <= alpha:
        return -0.5 * t * t
    return n * math.log(n / alpha) - 0.5 * alpha * alpha - n * math.log(n / alpha - alpha + t)


@jit
def dscb_logpdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper):
    """log of the DSCB normalised on [lower, upper], for an array x."""
    log_norm = math.log(dscb_integral(lower, upper, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r))
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = dscb_log_unnormalised(x[i], mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r) - log_norm
    return out


@jit
def dscb_nll(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper):
    """Negative log-likelihood of the DSCB normalised on [lower, upper]."""
    log_norm = math.log(dscb_integral(lower, upper, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r))
    total = 0.0
    for i in range(x.shape[0]):
        total -= dscb_log_unnormalised(x[i], mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r)
    return total + x.shape[0] * log_norm


@jit
def gaussian_integral(lower, upper, mu, sigma):
    """Integral of exp(-(x - mu)^2 / (2 sigma^2)) over [lower, upper]."""
    return sigma * _gauss_integral((lower - mu) / sigma, (upper - mu) / sigma)


@jit
def _erfc_antiderivatives(z):
    """F0, F1 with F0' = erfc(z) and F1' = z erfc(z)."""
    gauss = math.exp(-z * z) / math.sqrt(math.pi)
    erfc = math.erfc(z)
    return z * erfc - gauss, 0.5 * z * z * erfc - 0.5 * z * gauss + 0.25 * math.erf(z)


@jit
def edge_integrals(lower, upper, edge, width):
    """Integrals K0 of e(x) and K1 of x' e(x) over [lower, upper], with
    e(x) = erfc((x - edge) / (sqrt(2) width)) / 2 and x' the Chebyshev variable.

    The wrong-pairing density (1 + c1 x') e(x) then integrates to K0 + c1 K1. Without an
    endpoint (edge = +inf) e = 1: K0 = upper - lower, K1 = 0.
    """
    if not math.isfinite(edge):
        return upper - lower, 0.0
    scale = math.sqrt(2.0) * width
    z_low, z_high = (lower - edge) / scale, (upper - edge) / scale
    f0_low, f1_low = _erfc_antiderivatives(z_low)
    f0_high, f1_high = _erfc_antiderivatives(z_high)
    # x' = a + b z on the window
    a = 2.0 * (edge - lower) / (upper - lower) - 1.0
    b = 2.0 * scale / (upper - lower)
    k0 = 0.5 * scale * (f0_high - f0_low)
    k1 = 0.5 * scale * (a * (f0_high - f0_low) + b * (f1_high - f1_low))
    return k0, k1


def edge_factor(x, edge, width) -> np.ndarray:
    """e(x) = erfc((x - edge) / (sqrt(2) width)) / 2; 1 without an endpoint (edge = +inf)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(edge):
        return np.ones_like(x)
    return 0.5 * erfc((x - edge) / (math.sqrt(2.0) * width))


@jit
def signal_nll(x, fraction, c1, peak_density, edge_density, k0, k1, lower, upper):
    """Negative log-likelihood of fraction * peak + (1 - fraction) * wrong pairings, with the
    normalised peak density and the endpoint factor e(x) precomputed at every x and the
    integrals of :func:`edge_integrals`."""
    width = upper - lower
    norm = k0 + c1 * k1
    if norm <= 0.0:
        return np.inf
    total = 0.0
    for i in range(x.shape[0]):
        scaled = 2.0 * (x[i] - lower) / width - 1.0
        density = fraction * peak_density[i] + (1.0 - fraction) * (1.0 + c1 * scaled) * edge_density[i] / norm
        if density <= 0.0:
            return np.inf
        total -= math.log(density)
    return total


def dscb_pdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper) -> np.ndarray:
    """The DSCB normalised on [lower, upper]; zero outside the window."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    values = np.exp(dscb_logpdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper))
    return np.where((x >= lower) & (x <= upper), values, 0.0)


def peak_pdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, gauss_fraction, gauss_sigma, lower, upper):
    """(1 - g) DSCB + g Gauss(mu, gauss_sigma), each normalised on [lower, upper]; zero outside."""
    pdf = dscb_pdf(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper)
    if gauss_fraction == 0.0:
        return pdf
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    gauss = np.exp(-0.5 * ((x - mu) / gauss_sigma) ** 2) / gaussian_integral(lower, upper, mu, gauss_sigma)
    gauss = np.where((x >= lower) & (x <= upper), gauss, 0.0)
    return (1.0 - gauss_fraction) * pdf + gauss_fraction * gauss


def chebyshev1_pdf(x, c1, lower, upper, edge=math.inf, edge_width=math.nan) -> np.ndarray:
    """First-order Chebyshev density normalised on [lower, upper], optionally ending at ``edge``
    smeared over ``edge_width``; zero outside the window."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    scaled = 2.0 * (x - lower) / (upper - lower) - 1.0
    k0, k1 = edge_integrals(lower, upper, edge, edge_width)
    density = (1.0 + c1 * scaled) * edge_factor(x, edge, edge_width) / (k0 + c1 * k1)
    return np.where((x >= lower) & (x <= upper), density, 0.0)
