"""The truth-matched peak fitted at all generated masses at once, its parameters splines in mass.

Fitted one mass at a time, the DSCB + Gaussian peak has near-degenerate parameters: a DSCB
whose tails start early, or one with later tails plus a wide Gaussian, or two Gaussians of
similar width describe the same candidates equally well, and neighbouring masses land on
different ones. Smoothing such values parameter by parameter mixes solutions that do not
belong together. Here every peak parameter is instead a cubic B-spline in mass (on the
scales of :data:`bumphunt.models.splines.TRANSFORMS`), and the spline coefficients are
fitted to the truth-matched candidates of all training masses together (binned in
0.1-resolution bins, multinomial likelihood, iminuit), with a penalty on the second
differences of the coefficients (P-splines, Eilers & Marx 1996) so that a parameter the data
do not constrain somewhere stays smooth there. The per-mass fits give the starting values
(:func:`fit_peak_splines`).

Also here: counts whose rate varies with mass as a penalised Poisson regression on a
log-rate B-spline (:func:`fit_rate_spline`, for the density of wrong pairings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from iminuit import Minuit

from .._jit import jit_parallel, prange
from ..models import dscb
from ..models.signal import peak_width, peak_width_derivatives
from ..models.splines import TRANSFORMS, basis_matrix, forward, inverse, inverse_derivative, knot_vector

PRIOR_WIDTH = 10.0  # of every coefficient around its start, spline scale (mu_offset in MeV)
# bounds of the transformed start values: keeps a start off a degenerate boundary
_START_RANGE = {"logit": (-4.0, 4.0), "log_minus_one": (-3.0, 2.5), "log": (-12.0, 2.5), "none": (-np.inf, np.inf)}


@dataclass
class PeakData:
    """Truth-matched candidates of several masses, binned in their windows."""

    masses: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    offsets: np.ndarray  # bins of mass i: offsets[i]:offsets[i + 1]
    centres: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_candidates(cls, samples: dict, windows: dict, bins: int = 400) -> PeakData:
        """``samples``: mass -> truth-matched candidates; ``windows``: mass -> (lower, upper)."""
        masses = np.array(sorted(samples))
        centres, counts, offsets = [], [], [0]
        for mass in masses:
            lower, upper = windows[mass]
            histogram, edges = np.histogram(samples[mass], bins=bins, range=(lower, upper))
            filled = histogram > 0  # empty bins add nothing to a multinomial likelihood
            centres.append(0.5 * (edges[1:] + edges[:-1])[filled])
            counts.append(histogram[filled].astype(np.float64))
            offsets.append(offsets[-1] + int(filled.sum()))
        return cls(
            masses,
            np.array([windows[m][0] for m in masses]),
            np.array([windows[m][1] for m in masses]),
            np.array(offsets),
            np.concatenate(centres),
            np.concatenate(counts),
        )


@jit_parallel
def peak_nll_all(params, lower, upper, offsets, centres, counts, n_l, n_r):
    """Sum over masses of the binned multinomial NLL of (1 - g) DSCB + g Gauss.

    params: (n_masses, 7) of mu, sigma_l, sigma_r, alpha_l, alpha_r, g, gauss_sigma.
    """
    total = 0.0
    for i in prange(params.shape[0]):
        mu, sigma_l, sigma_r, alpha_l, alpha_r, g, gauss_sigma = params[i]
        dscb_norm = (1.0 - g) / dscb.dscb_integral(lower[i], upper[i], mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r)
        gauss_norm = g / dscb.gaussian_integral(lower[i], upper[i], mu, gauss_sigma)
        mass_total = 0.0
        for j in range(offsets[i], offsets[i + 1]):
            x = centres[j]
            t = (x - mu) / gauss_sigma
            density = dscb_norm * math.exp(
                dscb.dscb_log_unnormalised(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r)
            ) + gauss_norm * math.exp(-0.5 * t * t)
            if density <= 0.0:
                mass_total = np.inf
                break
            mass_total -= counts[j] * math.log(density)
        total += mass_total
    return total


@dataclass
class PeakSplineFit:
    """Result of :func:`fit_peak_splines`: knots, coefficients (spline scale) and covariance."""

    names: tuple[str, ...]
    knots: np.ndarray
    coefficients: dict  # name -> (n_basis,)
    covariance: np.ndarray  # of all coefficients, in the order of ``names``; NaN when HESSE failed
    valid: bool
    nll: float
    n_calls: int

    def value(self, name: str, mass):
        return inverse(TRANSFORMS[name], basis_matrix(self.knots, mass) @ self.coefficients[name])

    def _error(self, mass, derivatives: dict) -> np.ndarray:
        """Error of a function of the parameters at ``mass``, given its derivatives by parameter."""
        basis = basis_matrix(self.knots, mass)
        columns = []
        for name in self.names:
            slope = derivatives.get(name, 0.0) * inverse_derivative(TRANSFORMS[name], basis @ self.coefficients[name])
            columns.append(slope[:, None] * basis)
        gradient = np.concatenate(columns, axis=1)
        return np.sqrt(np.einsum("ij,jk,ik->i", gradient, self.covariance, gradient))

    def standard_error(self, name: str, mass) -> np.ndarray:
        """Error of one parameter at ``mass`` from the fit covariance (delta method)."""
        return self._error(mass, {name: 1.0})

    def resolution(self, mass, n_l: float = 10.0, n_r: float = 10.0) -> np.ndarray:
        """Resolution at ``mass``, see :func:`peak_width`."""
        return peak_width({name: self.value(name, mass) for name in self.names if name != "mu_offset"}, n_l, n_r)

    def resolution_error(self, mass: float, n_l: float = 10.0, n_r: float = 10.0) -> float:
        values = {name: float(self.value(name, mass)[0]) for name in self.names if name != "mu_offset"}
        return float(self._error(mass, peak_width_derivatives(values, n_l, n_r))[0])


def fit_peak_splines(
    data: PeakData,
    starts: dict,
    *,
    n_basis: int = 14,
    n_l: float = 10.0,
    n_r: float = 10.0,
    penalty: float = 1.0,
    knots: np.ndarray | None = None,
    initial: dict | None = None,
) -> PeakSplineFit:
    """Fit every peak parameter as a B-spline in mass to the candidates of all masses at once.

    Parameters
    ----------
    data : PeakData
    starts : dict
        Parameter name -> per-mass start values (aligned with ``data.masses``; NaN where a
        mass has none). The names choose the model: ``sigma`` or ``sigma_l``/``sigma_r``,
        and ``gauss_fraction``/``gauss_ratio`` for the second Gaussian.
    n_basis : int
        B-splines per parameter.
    penalty : float
        Weight of the squared second differences of the coefficients (spline scale; mu_offset
        in MeV) added to the negative log-likelihood.
    knots : array, optional
        Knot vector (:func:`knot_vector`); default ``n_basis`` B-splines evenly in mass.
    initial : dict, optional
        Name -> coefficients (spline scale) of an earlier fit with the same knots to start
        from instead of ``starts``.
    """
    names = tuple(name for name in TRANSFORMS if name in starts)
    if knots is None:
        knots = knot_vector(float(data.masses.min()), float(data.masses.max()), n_basis)
    n_basis = len(knots) - 4
    basis = basis_matrix(knots, data.masses)
    scale = {name: (1e-3 if name == "mu_offset" else 1.0) for name in names}  # mu_offset fitted in MeV

    start = []
    for name in names:
        if initial is not None:
            start.append(np.asarray(initial[name]) / scale[name])
            continue
        transform = TRANSFORMS[name]
        target = np.clip(forward(transform, np.asarray(starts[name], dtype=np.float64)), *_START_RANGE[transform])
        target = target / scale[name]
        good = np.isfinite(target)
        coefficients, *_ = np.linalg.lstsq(basis[good], target[good], rcond=None)
        start.append(coefficients)
    start = np.concatenate(start)
    second_difference = np.diff(np.eye(n_basis), n=2, axis=0)
    penalty_matrix = penalty * second_difference.T @ second_difference
    one_width = "sigma" in names
    masses = data.masses

    def unpack(theta):
        blocks = theta.reshape(len(names), n_basis)
        return {name: inverse(TRANSFORMS[name], basis @ (blocks[k] * scale[name])) for k, name in enumerate(names)}

    def parameters(theta):
        p = unpack(theta)
        sigma_l = p["sigma"] if one_width else p["sigma_l"]
        sigma_r = p["sigma"] if one_width else p["sigma_r"]
        g = p.get("gauss_fraction", np.zeros(len(masses)))
        ratio = p.get("gauss_ratio", np.ones(len(masses)))
        gauss_sigma = ratio * 0.5 * (sigma_l + sigma_r)
        columns = [masses + p["mu_offset"], sigma_l, sigma_r, p["alpha_l"], p["alpha_r"], g, gauss_sigma]
        return np.ascontiguousarray(np.column_stack(columns))

    def cost(theta):
        blocks = theta.reshape(len(names), n_basis)
        smoothness = sum(float(b @ penalty_matrix @ b) for b in blocks)
        # a parameter the data leave free (the width ratio of a Gaussian of zero fraction)
        # stays finite: a constraint far wider than anything the data determine
        smoothness += 0.5 * float(np.sum(((theta - start) / PRIOR_WIDTH) ** 2))
        nll = peak_nll_all(parameters(theta), data.lower, data.upper, data.offsets, data.centres, data.counts, n_l, n_r)
        return nll + smoothness

    minuit = Minuit(cost, start)
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.strategy = 0
    minuit.tol = 1.0  # EDM < 1e-3: far below what moves a shape parameter
    minuit.migrad(ncall=200_000)
    for _ in range(3):  # HESSE's exact second derivatives may show MIGRAD stopped early: go on
        if not minuit.valid:
            minuit.strategy = 1
            minuit.migrad(ncall=200_000)
        if minuit.valid:
            minuit.hesse()
        if minuit.valid:
            break
    theta = np.array(minuit.values)
    blocks = theta.reshape(len(names), n_basis)
    scales = np.repeat([scale[name] for name in names], n_basis)
    covariance = (
        np.array(minuit.covariance) * np.outer(scales, scales)
        if minuit.covariance is not None
        else np.full((len(theta), len(theta)), np.nan)
    )
    coefficients = {name: blocks[k] * scale[name] for k, name in enumerate(names)}
    return PeakSplineFit(names, knots, coefficients, covariance, bool(minuit.valid), float(minuit.fval), minuit.nfcn)


@dataclass
class RateSplineFit:
    """Result of :func:`fit_rate_spline`: log-rate B-spline coefficients and their covariance."""

    knots: np.ndarray
    coefficients: np.ndarray
    covariance: np.ndarray
    iterations: int
    penalty: float
    aic: float

    def value(self, mass):
        return np.exp(basis_matrix(self.knots, mass) @ self.coefficients)

    def standard_error(self, mass):
        basis = basis_matrix(self.knots, mass)
        return self.value(mass) * np.sqrt(np.einsum("ij,jk,ik->i", basis, self.covariance, basis))


def fit_rate_spline(
    masses: np.ndarray, counts: np.ndarray, exposures: np.ndarray, knots: np.ndarray, *, penalty: float | None = None
) -> RateSplineFit:
    """Poisson regression of counts on a log-rate B-spline in mass: counts_i ~ Poisson(exposure_i
    exp(spline(m_i))), with a penalty on the second differences of the coefficients (P-spline).

    Unlike smoothing the measured rates weighted by their errors, this stays unbiased where
    the counts are small (a downward fluctuation does not get a smaller error). Fitted by
    Newton iterations; without a given ``penalty`` the one of 10^-3 ... 10^3 with the lowest
    Akaike criterion (deviance + 2 effective degrees of freedom) is taken.
    """
    if penalty is None:
        fits = [fit_rate_spline(masses, counts, exposures, knots, penalty=p) for p in 10.0 ** np.arange(-3.0, 3.5, 0.5)]
        return min(fits, key=lambda fit: fit.aic)
    basis = basis_matrix(knots, masses)
    n_basis = basis.shape[1]
    second_difference = np.diff(np.eye(n_basis), n=2, axis=0)
    penalty_matrix = penalty * second_difference.T @ second_difference
    offset = np.log(exposures)
    rate = max(counts.sum(), 0.5) / exposures.sum()
    coefficients = np.full(n_basis, math.log(rate))

    def objective(c):
        eta = basis @ c + offset
        return float(np.sum(np.exp(eta) - counts * eta) + 0.5 * c @ penalty_matrix @ c)

    current, iterations = objective(coefficients), 0
    while iterations < 100:
        iterations += 1
        expected = np.exp(basis @ coefficients + offset)
        gradient = basis.T @ (expected - counts) + penalty_matrix @ coefficients
        hessian = basis.T @ (expected[:, None] * basis) + penalty_matrix
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6:
            trial = coefficients - scale * step
            value = objective(trial)
            if value <= current:
                break
            scale *= 0.5
        coefficients, improvement, current = trial, current - value, value
        if improvement < 1e-10 * max(1.0, abs(current)):
            break
    expected = np.exp(basis @ coefficients + offset)
    information = basis.T @ (expected[:, None] * basis)
    covariance = np.linalg.inv(information + penalty_matrix)
    deviance = 2.0 * float(np.sum(np.where(counts > 0, counts * np.log(np.maximum(counts, 1e-300) / expected), 0.0)
                                  - (counts - expected)))  # fmt: skip
    aic = deviance + 2.0 * float(np.trace(covariance @ information))
    return RateSplineFit(knots, coefficients, covariance, iterations, penalty, aic)
