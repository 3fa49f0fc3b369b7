"""The two engines of the per-mass shape fits: iminuit on numba likelihoods, or zfit.

Each engine is a pair of functions (the peak fit to the truth-matched candidates, and the
fit of the truth-matched fraction f and the wrong-pairing slope c1 with the peak fixed),
picked in one place, :data:`ENGINES`. Both minimise the same model and agree within 0.05
standard errors (tests/test_shapes.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from iminuit import Minuit

from ..models import dscb
from ..models.zfit_pdfs import peak_constants, zfit_combinatorial, zfit_peak
from .splinefit import PeakData, peak_nll_all

PEAK_BINS = 4000  # of the per-mass peak fit in its window (0.01 core widths)
PEAK_PARAMETERS = ("mu", "sigma", "sigma_l", "sigma_r", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio")


def run_minuit(fcn, start: dict, limits: dict, fixed: tuple[str, ...] = ()):
    """MIGRAD (then HESSE when valid) on a negative log-likelihood ``fcn``."""
    minuit = Minuit(fcn, *start.values(), name=list(start))
    minuit.errordef = Minuit.LIKELIHOOD
    for name, limit in limits.items():
        minuit.limits[name] = limit
    for name in fixed:
        minuit.fixed[name] = True
    minuit.migrad()
    if minuit.valid:
        minuit.hesse()
    return minuit


class PeakFitOutcome(NamedTuple):
    """What a peak fit returns: values, errors and covariance (in the order of ``values``)."""

    values: dict
    errors: dict
    covariance: np.ndarray
    edm: float
    valid: bool
    nll: float


def _fit_peak_numba(x, start, lower, upper, n_l, n_r, sigma_guess, fixed=()):
    binned = PeakData.from_candidates({0.0: x}, {0.0: (lower, upper)}, bins=PEAK_BINS)
    one_width = "sigma" in start
    with_gauss = "gauss_fraction" in start
    row = np.empty((1, 7))

    def nll(*p):
        named = dict(zip(parameters, p))
        sigma_l = named["sigma"] if one_width else named["sigma_l"]
        sigma_r = named["sigma"] if one_width else named["sigma_r"]
        gauss_fraction = named["gauss_fraction"] if with_gauss else 0.0
        gauss_sigma = named["gauss_ratio"] * 0.5 * (sigma_l + sigma_r) if with_gauss else 1.0
        row[0] = (named["mu"], sigma_l, sigma_r, named["alpha_l"], named["alpha_r"], gauss_fraction, gauss_sigma)
        return peak_nll_all(row, binned.lower, binned.upper, binned.offsets, binned.centres, binned.counts, n_l, n_r)

    parameters = [name for name in PEAK_PARAMETERS if name in start]
    limits = _peak_limits(start, lower, upper, sigma_guess)
    minuit = run_minuit(nll, {name: start[name] for name in parameters}, limits, fixed=tuple(fixed))
    values, errors, edm, valid = minuit_output(minuit, limits)
    errors.update({name: math.nan for name in fixed})
    covariance = np.array(minuit.covariance) if minuit.covariance is not None else np.full((len(values),) * 2, np.nan)
    return PeakFitOutcome(values, errors, covariance, edm, valid, float(minuit.fval))


def _peak_limits(start, lower, upper, sigma_guess):
    limits = {"mu": (lower, upper), "alpha_l": (0.2, 10.0), "alpha_r": (0.2, 10.0)}
    for name in ("sigma", "sigma_l", "sigma_r"):
        if name in start:
            limits[name] = (0.05 * sigma_guess, 10.0 * sigma_guess)
    if "gauss_fraction" in start:
        # the Gaussian is the wider part: r > 1 keeps the two cores from swapping roles
        limits.update(gauss_fraction=(0.0, 1.0), gauss_ratio=(1.0, 10.0))
    return limits


def minuit_output(minuit, limits, *, boundary_ok=("alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio")):
    """Values, errors, EDM and validity; a parameter at a limit invalidates the fit unless
    the limit is a physical boundary (``boundary_ok``)."""
    values = {p.name: float(p.value) for p in minuit.params}
    errors = {p.name: float(p.error) for p in minuit.params}
    valid = bool(minuit.valid) and minuit.fmin.has_accurate_covar
    for p in minuit.params:
        if p.name in boundary_ok or p.is_fixed:
            continue
        low, high = limits.get(p.name, (-np.inf, np.inf))
        span = high - low
        if p.value - low < 1e-6 * span or high - p.value < 1e-6 * span:
            valid = False
    return values, errors, float(minuit.fmin.edm), valid


def _fit_fraction_numba(x, peak_density, shape, fraction_start, c1_floating):
    x = np.ascontiguousarray(x)
    peak_density = np.ascontiguousarray(peak_density)
    edge_density = dscb.edge_factor(x, shape.edge, shape.edge_width)
    k0, k1 = dscb.edge_integrals(shape.lower, shape.upper, shape.edge, shape.edge_width)

    def nll(fraction, c1):
        return dscb.signal_nll(x, fraction, c1, peak_density, edge_density, k0, k1, shape.lower, shape.upper)

    limits = {"fraction": (0.0, 1.0), "c1": (-1.0, 1.0)}
    start = {"fraction": min(max(fraction_start, 0.01), 0.99), "c1": 0.0}
    minuit = run_minuit(nll, start, limits, fixed=() if c1_floating else ("c1",))
    # f and c1 are bounded by physics (a fraction; a positive density), not by the fit
    values, errors, _, valid = minuit_output(minuit, limits, boundary_ok=("fraction", "c1"))
    if not c1_floating:
        errors["c1"] = math.nan
    return values, errors, valid


def _fit_peak_zfit(x, start, lower, upper, n_l, n_r, sigma_guess, fixed=()):
    import zfit

    obs = zfit.Space("m_gg", lower, upper)
    limits = _peak_limits(start, lower, upper, sigma_guess)
    params = {name: zfit.Parameter(f"{name}_{id(obs)}", value, *limits[name], floating=name not in fixed)
              for name, value in start.items()}  # fmt: skip
    pdf = zfit_peak(obs, params, n_l, n_r)
    loss = zfit.loss.UnbinnedNLL(model=pdf, data=zfit.Data.from_numpy(obs=obs, array=x))
    result = zfit.minimize.Minuit().minimize(loss)
    result.hesse(name="hesse")
    values = {name: float(p.value()) for name, p in params.items()}
    floating = [name for name in params if name not in fixed]
    errors = {name: float(result.params[params[name]]["hesse"]["error"]) if name in floating else math.nan
              for name in params}  # fmt: skip
    covariance = np.zeros((len(params), len(params)))
    index = [list(params).index(name) for name in floating]
    covariance[np.ix_(index, index)] = np.array(result.covariance([params[n] for n in floating], method="minuit_hesse"))
    return PeakFitOutcome(values, errors, covariance, float(result.edm), bool(result.valid), float(result.fmin))


def _fit_fraction_zfit(x, peak_density, shape, fraction_start, c1_floating):
    import zfit

    obs = zfit.Space("m_gg", shape.lower, shape.upper)
    c1 = zfit.Parameter(f"c1_{id(obs)}", 0.0, -1.0, 1.0, floating=c1_floating)
    fraction = zfit.Parameter(f"fraction_{id(obs)}", min(max(fraction_start, 0.01), 0.99), 0.0, 1.0)
    model = zfit.pdf.SumPDF(
        [zfit_peak(obs, peak_constants(shape), shape.n_l, shape.n_r),
         zfit_combinatorial(obs, c1, shape.edge, shape.edge_width)],
        fracs=[fraction],
    )  # fmt: skip
    loss = zfit.loss.UnbinnedNLL(model=model, data=zfit.Data.from_numpy(obs=obs, array=x))
    result = zfit.minimize.Minuit().minimize(loss)
    result.hesse(name="hesse")
    values = {"fraction": float(fraction.value()), "c1": float(c1.value())}
    errors = {"fraction": float(result.params[fraction]["hesse"]["error"])}
    errors["c1"] = float(result.params[c1]["hesse"]["error"]) if c1_floating else math.nan
    return values, errors, bool(result.valid)


#: Engine name -> (peak fit, fraction fit).
ENGINES = {
    "numba": (_fit_peak_numba, _fit_fraction_numba),
    "zfit": (_fit_peak_zfit, _fit_fraction_zfit),
}


def engine_functions(engine: str):
    """The (peak fit, fraction fit) of an engine; ValueError naming the choices otherwise."""
    try:
        return ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown engine {engine!r}; choose {' or '.join(repr(e) for e in ENGINES)}") from None
