"""Signal model: DSCB + Chebyshev at every generated mass, interpolated in mass.

The signal PDF is N_sig (f peak + (1 - f) wrong pairings). The peak of the truth-matched
photon pairs is a double-sided Crystal Ball (both n fixed), by default with a wider
Gaussian of the same mean added (``second_gaussian``): the fitted diphoton mass is a mixture
of events with different resolutions, whose core a single Gaussian does not follow at 20,000
events per mass. The wrong pairings are a first-order Chebyshev that ends at their kinematic
endpoint: the two wrong pairs of an event obey M^2(r, a1) + M^2(r, a2) = s - m^2, so no wrong
pair is heavier than E(m) = sqrt(s - m^2), which crosses the window near m = sqrt(s / 2)
(7.48 GeV at Belle II); the edge is smeared by the resolution (:mod:`bumphunt.dscb` has the
densities; :func:`zfit_signal_pdf` builds the same model in zfit for fits of one's own).

At each generated mass (:func:`fit_mass`) the three diphoton candidates of every event
enter: the peak is fitted to the truth-matched ones, then f and the Chebyshev slope to all
of them with the peak fixed; minimised with iminuit on a numba likelihood (``engine="zfit"``
runs the same fits in zfit). The smearing of the endpoint is measured once on the wrong
pairings of the masses whose endpoint lies in their window (:func:`fit_endpoint_edge`).
Every shape parameter, the density of wrong pairings and the efficiency are then smoothed
across the generated masses with penalised cubic splines (smoothing chosen by generalised
cross-validation, errors propagated linearly), with some masses held out to test the
interpolation (:func:`build_shape_model`). The truth-matched fraction f at any mass follows
from the interpolated density of wrong pairings and the part of the window below the
endpoint, so it drops to 1 where the endpoint leaves the window instead of being smoothed
through the step. :class:`ShapeModel` is what the mass scan loads.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import dscb
from ._version import __version__
from .peakfit import peak_width, peak_width_derivatives

FORMAT = "bumphunt-signal-shapes"
FORMAT_VERSION = 2
PEAK_MODELS = ("doublecb", "generalizedcb")
MIN_MATCHED_CANDIDATES = 200
MIN_EDGE_CANDIDATES = 200
RATE_BASIS = 30
# beyond this many edge widths above the endpoint the window holds no wrong pairings (e < 1e-5)
EDGE_CUTOFF = 3.0 * math.sqrt(2.0)


def wrong_pair_endpoint(mass, sqrt_s: float | None) -> float:
    """Largest mass of a wrong photon pair, sqrt(s - m^2) (GeV); +inf without sqrt(s)."""
    if sqrt_s is None:
        return math.inf
    return math.sqrt(max(sqrt_s**2 - mass**2, 0.0))


def wrong_pairings_in_window(lower: float, edge: float, edge_width: float) -> bool:
    """Whether the smeared endpoint leaves any wrong pairings in a window starting at ``lower``."""
    return not math.isfinite(edge) or (lower - edge) < EDGE_CUTOFF * edge_width


@dataclass(frozen=True)
class SignalShape:
    """The signal density at one mass, in a window [lower, upper] (GeV).

    ``gauss_fraction`` and ``gauss_sigma`` add a Gaussian of mean ``mu`` to the peak;
    ``edge`` and ``edge_width`` end the wrong pairings at a smeared endpoint (+inf: none).
    """

    mu: float
    sigma_l: float
    sigma_r: float
    alpha_l: float
    n_l: float
    alpha_r: float
    n_r: float
    fraction: float
    c1: float
    lower: float
    upper: float
    gauss_fraction: float = 0.0
    gauss_sigma: float = math.nan
    edge: float = math.inf
    edge_width: float = math.nan

    @property
    def peak_parameters(self) -> tuple[float, ...]:
        return (self.mu, self.sigma_l, self.sigma_r, self.alpha_l, self.n_l, self.alpha_r, self.n_r)

    def peak_pdf(self, x) -> np.ndarray:
        """The truth-matched peak alone, normalised in the window."""
        return dscb.peak_pdf(x, *self.peak_parameters, self.gauss_fraction, self.gauss_sigma, self.lower, self.upper)

    def combinatorial_pdf(self, x) -> np.ndarray:
        """The wrong pairings alone, normalised in the window."""
        return dscb.chebyshev1_pdf(x, self.c1, self.lower, self.upper, self.edge, self.edge_width)

    def pdf(self, x) -> np.ndarray:
        """f peak + (1 - f) wrong pairings, normalised in the window."""
        if self.fraction >= 1.0:
            return self.peak_pdf(x)
        return self.fraction * self.peak_pdf(x) + (1.0 - self.fraction) * self.combinatorial_pdf(x)

    def with_window(self, lower: float, upper: float) -> SignalShape:
        """The same shape normalised in another window."""
        return SignalShape(**{**asdict(self), "lower": lower, "upper": upper})


@dataclass
class MassFit:
    """Fits of the signal shape at one generated mass.

    ``values`` and ``errors`` hold mu, sigma (or sigma_l, sigma_r), alpha_l, alpha_r,
    gauss_fraction and gauss_ratio (with the second Gaussian), fraction, c1,
    combinatorial_density and efficiency; ``status`` is "ok", or why the mass is unusable.
    ``edge`` and ``edge_width`` are the smeared endpoint of the wrong pairings used in the
    fit; ``wrong_in_window`` says whether any reach the window.
    """

    mass: float
    status: str
    n_generated: int
    n_candidates: int = 0
    n_matched: int = 0
    lower: float = math.nan
    upper: float = math.nan
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    edm: float = math.nan
    chi2: float = math.nan
    ndf: int = 0
    chi2_pvalue: float = math.nan
    attempts: int = 0
    peak_nll: float = math.nan
    c1_floating: bool = True
    wrong_in_window: bool = True
    edge: float = math.inf
    edge_width: float = math.nan

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def shape(self, n_l: float, n_r: float) -> SignalShape:
        v = self.values
        sigma_l, sigma_r = v.get("sigma_l", v.get("sigma")), v.get("sigma_r", v.get("sigma"))
        gauss_fraction = v.get("gauss_fraction", 0.0)
        return SignalShape(
            mu=v["mu"],
            sigma_l=sigma_l,
            sigma_r=sigma_r,
            alpha_l=v["alpha_l"],
            n_l=n_l,
            alpha_r=v["alpha_r"],
            n_r=n_r,
            fraction=v.get("fraction", 1.0),
            c1=v.get("c1", 0.0),
            lower=self.lower,
            upper=self.upper,
            gauss_fraction=gauss_fraction,
            gauss_sigma=v.get("gauss_ratio", math.nan) * 0.5 * (sigma_l + sigma_r),
            edge=self.edge,
            edge_width=self.edge_width,
        )


def width_parameters(peak: str) -> tuple[str, ...]:
    """Names of the width parameters of a peak model."""
    if peak not in PEAK_MODELS:
        raise ValueError(f"unknown peak model {peak!r}; choose one of {PEAK_MODELS}")
    return ("sigma",) if peak == "doublecb" else ("sigma_l", "sigma_r")


def core_width(values: np.ndarray) -> float:
    """Half-width of the central 68.27% interval."""
    low, high = np.percentile(values, [15.865, 84.135])
    return float(0.5 * (high - low))


def fit_window(mass: float, truth: np.ndarray, window_sigmas: float) -> tuple[float, float, float]:
    """Core width of the truth-matched candidates and the window mass +- window_sigmas of it."""
    width = core_width(truth)
    return width, max(mass - window_sigmas * width, 0.0), mass + window_sigmas * width


def gaussian_core_width(values: np.ndarray, *, iterations: int = 10) -> float:
    """Sigma of a Gaussian matched to the +-2 sigma core of a peak, iterated from the median.

    Within +-2 sigma a Gaussian's standard deviation is 0.8796 sigma; the estimate ignores
    the tails, like the core width of a Crystal Ball.
    """
    values = np.asarray(values)[np.isfinite(values)]
    centre, sigma = float(np.median(values)), core_width(values)
    for _ in range(iterations):
        core = values[np.abs(values - centre) < 2.0 * sigma]
        centre, sigma = float(core.mean()), float(core.std()) / 0.8796
    return sigma


def fit_mass(
    mass: float,
    candidates: np.ndarray,
    matched: np.ndarray,
    n_generated: int,
    *,
    peak: str = "doublecb",
    n_l: float = 10.0,
    n_r: float = 10.0,
    second_gaussian: bool = False,
    window_sigmas: float = 20.0,
    sqrt_s: float | None = None,
    edge_shift: float = 0.0,
    edge_width: float | None = None,
    peak_starts: list[dict] | None = None,
    engine: str = "numba",
) -> MassFit:
    """Fit the signal shape at one generated mass.

    Parameters
    ----------
    mass : float
        Generated mass (GeV).
    candidates : array (n, 3)
        The three diphoton masses of every event (NaN for unusable ones).
    matched : array (n, 3) of bool
        Truth flag of each candidate: both photons from the ALP.
    n_generated : int
        Generated events at this mass (the efficiency's denominator).
    peak, n_l, n_r, second_gaussian, window_sigmas :
        Model settings: DSCB type, fixed tail exponents, a wider Gaussian added to the peak,
        window half-width in resolutions.
    sqrt_s : float, optional
        Centre-of-mass energy (GeV): the wrong pairings end at sqrt(s - m^2) + ``edge_shift``,
        smeared over ``edge_width`` (GeV; default the peak's resolution). Without it they
        are a plain Chebyshev.
    peak_starts : list of dict, optional
        Peak parameters to start from (of a neighbouring mass, or of the interpolation):
        each is tried and the best valid fit kept, ``mu`` moved to the data. The default
        starts are tried one by one only when none of these converges.
    engine : str
        ``"numba"`` (iminuit on a compiled likelihood) or ``"zfit"``.
    """
    widths = width_parameters(peak)
    if engine not in ("numba", "zfit"):
        raise ValueError(f"unknown engine {engine!r}; choose 'numba' or 'zfit'")
    candidates = np.asarray(candidates, dtype=np.float64)
    finite = np.isfinite(candidates)
    truth = candidates[finite & matched]
    if len(truth) < MIN_MATCHED_CANDIDATES:
        return MassFit(mass, f"too few truth-matched candidates ({len(truth)})", n_generated)
    sigma_guess, lower, upper = fit_window(mass, truth, window_sigmas)
    in_window = finite & (candidates >= lower) & (candidates <= upper)
    all_x = candidates[in_window]
    truth_x = candidates[in_window & matched]
    result = MassFit(mass, "ok", n_generated, len(all_x), len(truth_x), lower, upper)
    efficiency = len(all_x) / n_generated
    result.values["efficiency"] = efficiency
    result.errors["efficiency"] = math.sqrt(len(all_x)) / n_generated

    fit_peak = _fit_peak_zfit if engine == "zfit" else _fit_peak_numba
    fit_fraction = _fit_fraction_zfit if engine == "zfit" else _fit_fraction_numba
    median_offset = float(np.median(truth_x)) - mass
    given = [{**start, "mu": mass + median_offset} for start in peak_starts or ()]
    defaults = []
    for sigma_start, alpha_start, gauss_start in ((sigma_guess, 1.5, 0.3), (0.8 * sigma_guess, 1.0, 0.5),
                                                  (1.3 * sigma_guess, 2.5, 0.1), (sigma_guess, 0.7, 0.7)):  # fmt: skip
        start = {"mu": mass + median_offset, "alpha_l": alpha_start, "alpha_r": alpha_start}
        start.update({name: (0.8 if second_gaussian else 1.0) * sigma_start for name in widths})
        if second_gaussian:
            start.update(gauss_fraction=gauss_start, gauss_ratio=1.8)
        defaults.append(start)
    best = None
    for attempt, start in enumerate(given + defaults, start=1):
        outcome = fit_peak(truth_x, start, lower, upper, n_l, n_r, sigma_guess)
        result.attempts = attempt
        if outcome.valid and (best is None or outcome.nll < best.nll):
            best = outcome
        # every given start is tried and the best kept; the defaults only until one converges
        if best is not None and attempt >= len(given):
            break
    if best is None:
        result.status = f"peak fit did not converge after {result.attempts} starts"
        return result
    values = best.values
    result.values.update(values)
    result.errors.update(best.errors)
    result.edm, result.peak_nll = best.edm, best.nll

    derivatives = peak_width_derivatives(values, n_l, n_r)
    gradient = np.array([derivatives[name] for name in values])
    result.values["resolution"] = peak_width(values, n_l, n_r)
    result.errors["resolution"] = float(np.sqrt(gradient @ best.covariance @ gradient))
    result.edge_width = result.values["resolution"] if edge_width is None else edge_width
    result.edge = wrong_pair_endpoint(mass, sqrt_s) + edge_shift
    n_wrong = len(all_x) - len(truth_x)
    result.wrong_in_window = wrong_pairings_in_window(lower, result.edge, result.edge_width)
    result.c1_floating = result.wrong_in_window and n_wrong >= 20
    if not result.wrong_in_window:  # the endpoint lies below the window: no wrong pairings
        result.edge = math.inf
        result.values.update(fraction=1.0, c1=0.0, combinatorial_density=0.0)
        result.errors.update(fraction=math.nan, c1=math.nan, combinatorial_density=math.nan)
    else:
        shape = result.shape(n_l, n_r)
        fraction_start = len(truth_x) / len(all_x)
        frac_values, frac_errors, valid = fit_fraction(
            all_x, shape.peak_pdf(all_x), shape, fraction_start, result.c1_floating
        )
        if not valid:
            result.status = "fraction fit did not converge"
            return result
        result.values.update(frac_values)
        result.errors.update(frac_errors)
        # wrong pairings per GeV of (1 + c1 x') e(x) per truth-matched candidate: smooth in mass
        # where f is not (it steps to 1 as the endpoint leaves the window)
        k0, k1 = dscb.edge_integrals(lower, upper, result.edge, result.edge_width)
        integral = k0 + frac_values["c1"] * k1
        f, f_error = max(frac_values["fraction"], 1e-12), frac_errors["fraction"]
        result.values["combinatorial_density"] = (1.0 - f) / (f * integral)
        result.errors["combinatorial_density"] = f_error / (f * f * integral)
    n_fitted = len(values) + (2 if result.c1_floating else 1 if result.wrong_in_window else 0)
    result.chi2, result.ndf, result.chi2_pvalue = binned_chi2(all_x, result.shape(n_l, n_r), n_fitted=n_fitted)
    return result


def fit_endpoint_edge(wrong: np.ndarray, lower: float, upper: float, endpoint: float, resolution: float):
    """Fit the smeared endpoint of the wrong pairings at one mass.

    The density (1 + c1 x') erfc((x - endpoint - shift) / (sqrt(2) width)) / 2 is fitted to
    the wrong-pairing masses ``wrong`` in [lower, upper].

    Returns
    -------
    dict with shift, width and their errors (GeV), or None when the fit fails.
    """
    x = np.ascontiguousarray(wrong[(wrong >= lower) & (wrong <= upper)])
    no_peak = np.zeros(len(x))  # the wrong pairings alone: peak fraction 0

    def nll(c1, shift, width):
        edge = endpoint + shift
        k0, k1 = dscb.edge_integrals(lower, upper, edge, width)
        return dscb.signal_nll(x, 0.0, c1, no_peak, dscb.edge_factor(x, edge, width), k0, k1, lower, upper)

    limits = {
        "c1": (-1.0, 1.0),
        "shift": (-10 * resolution, 10 * resolution),
        "width": (0.1 * resolution, 10 * resolution),
    }
    minuit = _minuit(nll, {"c1": 0.0, "shift": 0.0, "width": resolution}, limits)
    values, errors, _, valid = _minuit_output(minuit, limits, boundary_ok=("c1",))
    if not valid:
        return None
    return {"shift": values["shift"], "shift_error": errors["shift"], "width": values["width"],
            "width_error": errors["width"]}  # fmt: skip


def measure_endpoint_edge(grouped: dict, sqrt_s: float, window_sigmas: float) -> dict:
    """The smearing of the wrong-pairing endpoint, from every mass whose endpoint lies in its window.

    Returns
    -------
    dict: shift and width (GeV; error-weighted means), their errors, and the masses used.
    Without such masses: shift 0 and the resolution at the mass closest to sqrt(s / 2).
    """
    rows = []
    for mass, (candidates, matched) in grouped.items():
        finite = np.isfinite(candidates)
        truth = candidates[finite & matched]
        if len(truth) < MIN_MATCHED_CANDIDATES:
            continue
        resolution, lower, upper = fit_window(mass, truth, window_sigmas)
        endpoint = wrong_pair_endpoint(mass, sqrt_s)
        wrong = candidates[finite & ~matched]
        n_in_window = np.count_nonzero((wrong >= lower) & (wrong <= upper))
        if not lower < endpoint < upper or n_in_window < MIN_EDGE_CANDIDATES:
            continue
        fit = fit_endpoint_edge(wrong, lower, upper, endpoint, resolution)
        if fit is not None:
            rows.append({"mass": float(mass), **fit})
    if not rows:
        usable = [m for m, (c, t) in grouped.items() if np.count_nonzero(np.isfinite(c) & t) >= MIN_MATCHED_CANDIDATES]
        if not usable:
            return {"shift": 0.0, "shift_error": math.nan, "width": math.nan, "width_error": math.nan, "masses": []}
        nearest = min(usable, key=lambda m: abs(m - sqrt_s / math.sqrt(2.0)))
        candidates, matched = grouped[nearest]
        width = core_width(candidates[np.isfinite(candidates) & matched])
        return {"shift": 0.0, "shift_error": math.nan, "width": width, "width_error": math.nan, "masses": []}
    summary = {"masses": rows}
    for name in ("shift", "width"):
        weights = np.array([1.0 / r[f"{name}_error"] ** 2 for r in rows])
        summary[name] = float(np.sum(weights * [r[name] for r in rows]) / np.sum(weights))
        summary[f"{name}_error"] = float(1.0 / math.sqrt(np.sum(weights)))
    return summary


def binned_chi2(x: np.ndarray, shape: SignalShape, *, n_fitted: int = 0, bins: int = 80, min_expected: float = 5.0):
    """Pearson chi2 of the candidates against ``len(x) * shape.pdf`` in the window.

    Adjacent bins are merged until each expects at least ``min_expected`` candidates.

    Returns
    -------
    chi2, ndf, p-value
    """
    from scipy import integrate, stats

    edges = np.linspace(shape.lower, shape.upper, bins + 1)
    counts, _ = np.histogram(x, bins=edges)
    fine = np.linspace(shape.lower, shape.upper, 20 * bins + 1)
    cumulative = integrate.cumulative_trapezoid(shape.pdf(fine), fine, initial=0.0)
    expected = np.diff(np.interp(edges, fine, cumulative)) * len(x) / cumulative[-1]
    merged_counts, merged_expected = [], []
    count_sum = expected_sum = 0.0
    for c, e in zip(counts, expected):
        count_sum += c
        expected_sum += e
        if expected_sum >= min_expected:
            merged_counts.append(count_sum)
            merged_expected.append(expected_sum)
            count_sum = expected_sum = 0.0
    if merged_expected and expected_sum > 0:
        merged_counts[-1] += count_sum
        merged_expected[-1] += expected_sum
    merged_counts, merged_expected = np.array(merged_counts), np.array(merged_expected)
    chi2 = float(np.sum((merged_counts - merged_expected) ** 2 / merged_expected))
    ndf = max(len(merged_counts) - 1 - n_fitted, 1)
    return chi2, ndf, float(stats.chi2.sf(chi2, ndf))


def _minuit(fcn, start: dict, limits: dict, fixed: tuple[str, ...] = ()):
    """MIGRAD (then HESSE when valid) on a negative log-likelihood ``fcn``."""
    from iminuit import Minuit

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


def _fit_peak_numba(x, start, lower, upper, n_l, n_r, sigma_guess):
    from .peakfit import PeakData, _peak_nll_all

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
        return _peak_nll_all(row, binned.lower, binned.upper, binned.offsets, binned.centres, binned.counts, n_l, n_r)

    parameters = [name for name in PEAK_PARAMETERS if name in start]
    limits = _peak_limits(start, lower, upper, sigma_guess)
    minuit = _minuit(nll, {name: start[name] for name in parameters}, limits)
    values, errors, edm, valid = _minuit_output(minuit, limits)
    covariance = np.array(minuit.covariance) if minuit.covariance is not None else np.full((len(values),) * 2, np.nan)
    return PeakFitOutcome(values, errors, covariance, edm, valid, float(minuit.fval))


PEAK_BINS = 4000  # of the per-mass peak fit in its window (0.01 core widths)
PEAK_PARAMETERS = ("mu", "sigma", "sigma_l", "sigma_r", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio")


def _peak_limits(start, lower, upper, sigma_guess):
    limits = {"mu": (lower, upper), "alpha_l": (0.2, 10.0), "alpha_r": (0.2, 10.0)}
    for name in ("sigma", "sigma_l", "sigma_r"):
        if name in start:
            limits[name] = (0.05 * sigma_guess, 10.0 * sigma_guess)
    if "gauss_fraction" in start:
        # the Gaussian is the wider part: r > 1 keeps the two cores from swapping roles
        limits.update(gauss_fraction=(0.0, 1.0), gauss_ratio=(1.0, 10.0))
    return limits


def _minuit_output(minuit, limits, *, boundary_ok=("alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio")):
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
    minuit = _minuit(nll, start, limits, fixed=() if c1_floating else ("c1",))
    # f and c1 are bounded by physics (a fraction; a positive density), not by the fit
    values, errors, _, valid = _minuit_output(minuit, limits, boundary_ok=("fraction", "c1"))
    if not c1_floating:
        errors["c1"] = math.nan
    return values, errors, valid


def _zfit_peak(obs, params, n_l, n_r):
    """DSCB (+ Gaussian) of zfit from a dict of zfit parameters (or numbers)."""
    import zfit

    if "sigma" in params:
        pdf = zfit.pdf.DoubleCB(
            mu=params["mu"], sigma=params["sigma"], alphal=params["alpha_l"], nl=n_l,
            alphar=params["alpha_r"], nr=n_r, obs=obs,
        )  # fmt: skip
        sigma = params["sigma"]
    else:
        pdf = zfit.pdf.GeneralizedCB(
            mu=params["mu"], sigmal=params["sigma_l"], alphal=params["alpha_l"], nl=n_l,
            sigmar=params["sigma_r"], alphar=params["alpha_r"], nr=n_r, obs=obs,
        )  # fmt: skip
        sigma = zfit.ComposedParameter(
            f"sigma_mean_{id(pdf)}",
            lambda left, right: 0.5 * (left + right),
            params=[params["sigma_l"], params["sigma_r"]],
        )
    if "gauss_fraction" not in params:
        return pdf
    gauss_sigma = zfit.ComposedParameter(
        f"gauss_sigma_{id(pdf)}", lambda s, r: s * r, params=[sigma, params["gauss_ratio"]]
    )
    gauss = zfit.pdf.Gauss(mu=params["mu"], sigma=gauss_sigma, obs=obs)
    # SumPDF's fraction belongs to the first PDF: the Gaussian
    return zfit.pdf.SumPDF([gauss, pdf], fracs=[params["gauss_fraction"]])


def _zfit_combinatorial(obs, c1, edge: float, edge_width: float):
    """The wrong pairings in zfit: Chebyshev of first order, times the smeared endpoint."""
    import zfit

    chebyshev = zfit.pdf.Chebyshev(obs=obs, coeffs=[c1])
    if not math.isfinite(edge):
        return chebyshev
    return zfit.pdf.ProductPDF([chebyshev, _zfit_endpoint_class()(edge=edge, width=edge_width, obs=obs)])


def _zfit_endpoint_class():
    """A zfit PDF erfc((x - edge) / (sqrt(2) width)) / 2, normalised numerically by zfit."""
    import tensorflow as tf
    import zfit

    class SmearedEndpoint(zfit.pdf.ZPDF):
        _PARAMS = ["edge", "width"]
        _N_OBS = 1

        def _unnormalized_pdf(self, x):
            x = zfit.z.unstack_x(x)
            return 0.5 * tf.math.erfc((x - self.params["edge"]) / (math.sqrt(2.0) * self.params["width"]))

    return SmearedEndpoint


def _fit_peak_zfit(x, start, lower, upper, n_l, n_r, sigma_guess):
    import zfit

    obs = zfit.Space("m_gg", lower, upper)
    limits = _peak_limits(start, lower, upper, sigma_guess)
    params = {name: zfit.Parameter(f"{name}_{id(obs)}", value, *limits[name]) for name, value in start.items()}
    pdf = _zfit_peak(obs, params, n_l, n_r)
    loss = zfit.loss.UnbinnedNLL(model=pdf, data=zfit.Data.from_numpy(obs=obs, array=x))
    result = zfit.minimize.Minuit().minimize(loss)
    result.hesse(name="hesse")
    values = {name: float(p.value()) for name, p in params.items()}
    errors = {name: float(result.params[p]["hesse"]["error"]) for name, p in params.items()}
    covariance = np.array(result.covariance(list(params.values()), method="minuit_hesse"))
    return PeakFitOutcome(values, errors, covariance, float(result.edm), bool(result.valid), float(result.fmin))


def _fit_fraction_zfit(x, peak_density, shape, fraction_start, c1_floating):
    import zfit

    obs = zfit.Space("m_gg", shape.lower, shape.upper)
    c1 = zfit.Parameter(f"c1_{id(obs)}", 0.0, -1.0, 1.0, floating=c1_floating)
    fraction = zfit.Parameter(f"fraction_{id(obs)}", min(max(fraction_start, 0.01), 0.99), 0.0, 1.0)
    model = zfit.pdf.SumPDF(
        [_zfit_peak(obs, _peak_constants(shape), shape.n_l, shape.n_r),
         _zfit_combinatorial(obs, c1, shape.edge, shape.edge_width)],
        fracs=[fraction],
    )  # fmt: skip
    loss = zfit.loss.UnbinnedNLL(model=model, data=zfit.Data.from_numpy(obs=obs, array=x))
    result = zfit.minimize.Minuit().minimize(loss)
    result.hesse(name="hesse")
    values = {"fraction": float(fraction.value()), "c1": float(c1.value())}
    errors = {"fraction": float(result.params[fraction]["hesse"]["error"])}
    errors["c1"] = float(result.params[c1]["hesse"]["error"]) if c1_floating else math.nan
    return values, errors, bool(result.valid)


def _peak_constants(shape: SignalShape) -> dict:
    """The peak parameters of ``shape`` in the form :func:`_zfit_peak` takes."""
    params = {"mu": shape.mu, "alpha_l": shape.alpha_l, "alpha_r": shape.alpha_r}
    if shape.sigma_l == shape.sigma_r:
        params["sigma"] = shape.sigma_l
    else:
        params.update(sigma_l=shape.sigma_l, sigma_r=shape.sigma_r)
    if shape.gauss_fraction > 0.0:
        sigma = 0.5 * (shape.sigma_l + shape.sigma_r)
        params.update(gauss_fraction=shape.gauss_fraction, gauss_ratio=shape.gauss_sigma / sigma)
    return params


def zfit_signal_pdf(shape: SignalShape, obs=None, *, n_sig=None):
    """The signal model of ``shape`` as a zfit PDF (fixed parameters), for one's own fits.

    Parameters
    ----------
    shape : SignalShape
    obs : zfit.Space, optional
        Default: ``m_gg`` in the shape's window.
    n_sig : zfit.Parameter or float, optional
        Yield; the PDF is extended when given.
    """
    import zfit

    obs = obs if obs is not None else zfit.Space("m_gg", shape.lower, shape.upper)
    peak = _zfit_peak(obs, _peak_constants(shape), shape.n_l, shape.n_r)
    combinatorial = _zfit_combinatorial(obs, shape.c1, shape.edge, shape.edge_width)
    return zfit.pdf.SumPDF([peak, combinatorial], fracs=[shape.fraction], extended=n_sig)


# ----------------------------------------------------------------------------------------
# interpolation in mass


@dataclass(frozen=True)
class ParameterSpline:
    """A cubic B-spline of one shape parameter versus mass, constant beyond its mass range.

    ``transform`` names the scale of the spline (:data:`bumphunt.peakfit.TRANSFORMS`): the
    parameter is ``inverse(transform, spline(mass))``.
    """

    knots: tuple[float, ...]
    coefficients: tuple[float, ...]
    degree: int
    mass_range: tuple[float, float]
    transform: str = "none"

    def __call__(self, mass):
        from scipy.interpolate import BSpline

        from .peakfit import inverse

        spline = BSpline(np.array(self.knots), np.array(self.coefficients), self.degree, extrapolate=True)
        return inverse(self.transform, spline(np.clip(mass, *self.mass_range)))

    def to_dict(self) -> dict:
        return {
            "knots": list(self.knots),
            "coefficients": list(self.coefficients),
            "degree": self.degree,
            "mass_range": list(self.mass_range),
            "transform": self.transform,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ParameterSpline:
        return cls(
            tuple(data["knots"]),
            tuple(data["coefficients"]),
            int(data["degree"]),
            tuple(data["mass_range"]),
            data.get("transform", "none"),
        )


def smooth(masses: np.ndarray, values: np.ndarray, errors: np.ndarray):
    """Penalised cubic smoothing spline of values(mass) weighted by 1/error^2.

    The smoothing is chosen by generalised cross-validation; for that smoothing the spline
    is linear in the values, so its error at any mass follows by linear propagation.

    Returns
    -------
    ParameterSpline, and a function giving the spline's standard error at given masses.
    """
    from scipy.interpolate import make_smoothing_spline

    order = np.argsort(masses)
    masses, values, errors = masses[order], values[order], errors[order]
    weights = 1.0 / errors**2
    weights = weights / weights.mean()
    if len(masses) < 5:
        mean = float(np.sum(values * weights) / np.sum(weights))
        constant = ParameterSpline((masses[0],) * 4 + (masses[-1],) * 4, (mean,) * 4, 3, (masses[0], masses[-1]))
        error = float(1.0 / np.sqrt(np.sum(1.0 / errors**2)))
        return constant, lambda m: np.full(np.shape(m), error)
    spline = make_smoothing_spline(masses, values, w=weights)
    result = ParameterSpline(tuple(spline.t), tuple(spline.c), int(spline.k), (float(masses[0]), float(masses[-1])))
    smoothing = []  # found on the first call only: most callers never ask for the error

    def standard_error(mass):
        if not smoothing:
            smoothing.append(_gcv_lambda(masses, values, weights, spline))
        mass = np.clip(np.atleast_1d(mass), masses[0], masses[-1])
        basis = np.array(
            [make_smoothing_spline(masses, unit, w=weights, lam=smoothing[0])(mass) for unit in np.eye(len(masses))]
        )
        return np.sqrt(np.sum((basis * errors[:, None]) ** 2, axis=0))

    return result, standard_error


def _gcv_lambda(masses, values, weights, spline) -> float:
    """The smoothing parameter make_smoothing_spline chose, recovered by refitting."""
    from scipy.interpolate import make_smoothing_spline
    from scipy.optimize import minimize_scalar

    target = spline(masses)

    def distance(log_lam):
        return float(np.sum((make_smoothing_spline(masses, values, w=weights, lam=10**log_lam)(masses) - target) ** 2))

    best = minimize_scalar(distance, bounds=(-12, 6), method="bounded", options={"xatol": 1e-6})
    return float(10**best.x)


@dataclass
class ShapeModel:
    """Interpolated signal shapes: what the mass scan needs at any mass.

    Attributes
    ----------
    splines : dict of ParameterSpline
        mu_offset (mu - m), the widths, alpha_l, alpha_r, gauss_fraction and gauss_ratio
        (with the second Gaussian), combinatorial_density, c1, efficiency.
    settings : dict
        mass_variable, peak, n_l, n_r, second_gaussian, window_sigmas, sqrt_s, edge_shift,
        edge_width, selection, source.
    fits : list of MassFit
        The per-mass fits, held-out ones included.
    held_out : list of float
        Masses left out of the interpolation.
    validation : dict
        Held-out comparison (see :func:`validate_held_out`).
    """

    splines: dict[str, ParameterSpline]
    settings: dict
    fits: list[MassFit]
    held_out: list[float]
    validation: dict = field(default_factory=dict)

    def parameter(self, name: str, mass) -> np.ndarray:
        return self.splines[name](mass)

    def resolution(self, mass) -> np.ndarray:
        """Resolution (GeV): FWHM / 2.3548 of the peak, see :func:`bumphunt.peakfit.peak_width`."""
        names = ("sigma", "sigma_l", "sigma_r", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio")
        values = {name: self.splines[name](mass) for name in names if name in self.splines}
        return peak_width(values, self.settings["n_l"], self.settings["n_r"])

    def efficiency(self, mass) -> np.ndarray:
        """Signal candidates in the window per generated event."""
        return self.splines["efficiency"](mass)

    def shape(self, mass: float, *, window_sigmas: float | None = None) -> SignalShape:
        """The signal shape at ``mass`` in a window of +-``window_sigmas`` resolutions.

        The truth-matched fraction is 1 / (1 + rho K): rho the interpolated density of wrong
        pairings, K the integral of their unnormalised density over this window.
        """
        window = self.settings["window_sigmas"] if window_sigmas is None else window_sigmas
        sigma = float(self.resolution(mass))
        lower, upper = max(mass - window * sigma, 0.0), mass + window * sigma
        s = {name: float(spline(mass)) for name, spline in self.splines.items()}
        sigma_l, sigma_r = s.get("sigma_l", s.get("sigma")), s.get("sigma_r", s.get("sigma"))
        gauss_fraction = s.get("gauss_fraction", 0.0)
        gauss_sigma = s["gauss_ratio"] * 0.5 * (sigma_l + sigma_r) if gauss_fraction else math.nan
        edge = wrong_pair_endpoint(mass, self.settings.get("sqrt_s")) + self.settings.get("edge_shift", 0.0)
        edge_width = self.settings.get("edge_width", math.nan)
        c1 = float(np.clip(s["c1"], -1.0, 1.0))
        if wrong_pairings_in_window(lower, edge, edge_width):
            k0, k1 = dscb.edge_integrals(lower, upper, edge, edge_width)
            fraction = 1.0 / (1.0 + max(s["combinatorial_density"], 0.0) * (k0 + c1 * k1))
        else:
            fraction, edge = 1.0, math.inf
        return SignalShape(
            mu=mass + s["mu_offset"],
            sigma_l=sigma_l,
            sigma_r=sigma_r,
            alpha_l=s["alpha_l"],
            n_l=self.settings["n_l"],
            alpha_r=s["alpha_r"],
            n_r=self.settings["n_r"],
            fraction=fraction,
            c1=c1,
            lower=lower,
            upper=upper,
            gauss_fraction=gauss_fraction,
            gauss_sigma=gauss_sigma,
            edge=edge,
            edge_width=edge_width,
        )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "bumphunt_version": __version__,
            "settings": self.settings,
            "parameters": {name: spline.to_dict() for name, spline in self.splines.items()},
            "held_out": self.held_out,
            "validation": self.validation,
            "fits": [_jsonable(asdict(fit)) for fit in self.fits],
        }

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=True))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ShapeModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        BumphuntError
            The file is missing, not JSON, or not a signal-shape file of a known version.
        """
        from .errors import BumphuntError

        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise BumphuntError(f"{path}: cannot read signal shapes ({error.strerror or error})") from None
        except json.JSONDecodeError as error:
            raise BumphuntError(f"{path}: not a JSON file ({error.msg})") from None
        if data.get("format") != FORMAT:
            raise BumphuntError(f"{path}: not a bumphunt signal-shape file")
        if data.get("version") != FORMAT_VERSION:
            raise BumphuntError(f"{path}: signal-shape format version {data.get('version')}, expected {FORMAT_VERSION}")
        return cls(
            splines={name: ParameterSpline.from_dict(d) for name, d in data["parameters"].items()},
            settings=data["settings"],
            fits=[MassFit(**fit) for fit in data["fits"]],
            held_out=data["held_out"],
            validation=data["validation"],
        )


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def held_out_masses(masses: np.ndarray, n_held_out: int) -> np.ndarray:
    """``n_held_out`` masses spread evenly over the grid, never its two ends."""
    if n_held_out <= 0:
        return np.array([])
    if n_held_out > len(masses) - 6:
        from .errors import ConfigError

        raise ConfigError(
            f"config error at 'shapes.n_held_out': cannot hold out {n_held_out} of {len(masses)} generated masses "
            "(the interpolation needs at least 6)"
        )
    index = np.unique(np.round(np.linspace(1, len(masses) - 2, n_held_out + 2)[1:-1]).astype(int))
    return masses[index]


def build_shape_model(
    fits: list[MassFit],
    held_out: np.ndarray,
    settings: dict,
    truth_candidates: dict[float, np.ndarray],
    *,
    initial: ShapeModel | None = None,
) -> ShapeModel:
    """Interpolate the good fits that are not held out.

    The peak parameters are B-splines in mass fitted to the truth-matched candidates of all
    those masses at once (:func:`bumphunt.peakfit.fit_peak_splines`, started from the
    per-mass fits); the density of wrong pairings, c1 and the efficiency are smoothed from
    the per-mass values (:func:`smooth`). Failed fits, and fits whose binned p-value is below
    ``settings["min_fit_pvalue"]`` (the model does not describe that mass), are excluded with
    a warning naming the mass.

    Parameters
    ----------
    truth_candidates : dict
        Mass -> truth-matched candidates (those in each fit's window are used).
    initial : ShapeModel, optional
        An earlier interpolation of (nearly) the same fits: the simultaneous peak fit starts
        from its splines when they have the same knots.
    """
    from .errors import BumphuntError
    from .peakfit import TRANSFORMS, PeakData, fit_peak_splines, knot_vector

    min_pvalue = settings.get("min_fit_pvalue", 0.0)
    held = set(np.round(held_out, 9))
    for fit in fits:
        where = "(held out) not validated" if round(fit.mass, 9) in held else "excluded from the interpolation"
        if not fit.ok:
            warnings.warn(f"signal shape at m = {fit.mass:.4f} GeV {where}: {fit.status}", stacklevel=2)
        elif fit.chi2_pvalue < min_pvalue:
            where = "(held out)" if round(fit.mass, 9) in held else "excluded from the interpolation"
            warnings.warn(
                f"signal shape at m = {fit.mass:.4f} GeV {where}: the model does not describe it "
                f"(chi2/ndf = {fit.chi2:.1f}/{fit.ndf}, p = {fit.chi2_pvalue:.2g} < {min_pvalue:g})",
                stacklevel=2,
            )
    training = [f for f in fits if f.ok and round(f.mass, 9) not in held and not f.chi2_pvalue < min_pvalue]
    if len(training) < 5:
        raise BumphuntError(f"only {len(training)} usable masses for the signal-shape interpolation; need at least 5")
    training.sort(key=lambda f: f.mass)
    mass_range = (training[0].mass, training[-1].mass)

    peak_names = [name for name in TRANSFORMS if name == "mu_offset" or name in training[0].values]
    samples, windows = {}, {}
    for fit in training:
        x = truth_candidates[fit.mass]
        samples[fit.mass] = x[(x >= fit.lower) & (x <= fit.upper)]
        windows[fit.mass] = (fit.lower, fit.upper)
    starts = {name: np.array([f.values["mu"] - f.mass if name == "mu_offset" else f.values[name] for f in training])
              for name in peak_names}  # fmt: skip
    n_basis = max(4, min(settings.get("spline_basis", 14), len(training) // 2))
    knots = knot_vector(*mass_range, n_basis, settings.get("sqrt_s"))
    same_knots = initial is not None and np.array_equal(initial.splines["mu_offset"].knots, knots)
    peak_fit = fit_peak_splines(
        PeakData.from_candidates(samples, windows), starts, knots=knots, n_l=settings["n_l"], n_r=settings["n_r"],
        penalty=settings.get("spline_penalty", 100.0),
        initial={name: initial.splines[name].coefficients for name in peak_names} if same_knots else None,
    )  # fmt: skip
    if not peak_fit.valid:
        warnings.warn(
            "the simultaneous fit of the peak parameters did not converge; its errors are unreliable", stacklevel=2
        )
    splines = {
        name: ParameterSpline(
            tuple(peak_fit.knots), tuple(peak_fit.coefficients[name]), 3, mass_range, TRANSFORMS[name]
        )
        for name in peak_names
    }
    splines["combinatorial_density"] = _wrong_pairing_density(training, settings)
    for name in ("c1", "efficiency"):
        usable = training
        if name == "c1":
            usable = [f for f in training if f.c1_floating] or training
        masses = np.array([f.mass for f in usable])
        values = np.array([f.values[name] for f in usable])
        errors = np.array([f.errors[name] for f in usable])
        errors = np.where(
            np.isfinite(errors) & (errors > 0), errors, np.nanmedian(errors[errors > 0]) if np.any(errors > 0) else 1.0
        )
        splines[name], _ = smooth(masses, values, errors)
    model = ShapeModel(splines, dict(settings), list(fits), [float(m) for m in held_out])
    model.validation = validate_held_out(model, peak_fit)
    model.validation["peak_fit"] = {
        "valid": peak_fit.valid, "n_basis": n_basis, "nll": peak_fit.nll, "calls": peak_fit.n_calls,
        "masses": len(training),
    }  # fmt: skip
    return model


def _wrong_pairing_density(training: list[MassFit], settings: dict) -> ParameterSpline:
    """The density of wrong pairings (per GeV of the unnormalised combinatorial shape, per
    truth-matched candidate) versus mass: a Poisson regression of the wrong-pairing counts
    in each window (:func:`bumphunt.peakfit.fit_rate_spline`)."""
    from .peakfit import fit_rate_spline, knot_vector

    usable = [f for f in training if f.wrong_in_window]
    if len(usable) < 5:  # (almost) no wrong pairings: none
        masses = (training[0].mass, training[-1].mass)
        return ParameterSpline((masses[0],) * 4 + (masses[-1],) * 4, (0.0,) * 4, 3, masses)
    masses = np.array([f.mass for f in usable])
    counts = np.array([float(f.n_candidates - f.n_matched) for f in usable])
    integrals = []
    for f in usable:
        k0, k1 = dscb.edge_integrals(f.lower, f.upper, f.edge, f.edge_width)
        integrals.append(k0 + f.values["c1"] * k1)
    exposures = np.array([f.n_matched for f in usable]) * np.array(integrals)
    # the rate has sharper features than the peak (wrong pairs with a beam-background photon
    # near 1 GeV, the endpoint near 7.5 GeV): more B-splines, smoothed as the AIC prefers
    n_basis = max(4, min(RATE_BASIS, len(usable) // 2))
    knots = knot_vector(masses[0], masses[-1], n_basis, settings.get("sqrt_s"))
    rate = fit_rate_spline(masses, counts, exposures, knots)
    return ParameterSpline(tuple(knots), tuple(rate.coefficients), 3, (masses[0], masses[-1]), "log")


def validate_held_out(model: ShapeModel, peak_fit) -> dict:
    """Compare the interpolation with the direct fits at the held-out masses.

    For each held-out mass: the differences of the peak position mu and of the width (the
    resolution, :func:`bumphunt.peakfit.peak_width`) from the direct fit in units of the
    combined standard error (direct fit and interpolation, the latter from the covariance of
    ``peak_fit``). :func:`add_goodness_of_fit` adds the binned chi2 p-values.
    """
    held = {round(m, 9) for m in model.held_out}
    rows = []
    for fit in model.fits:
        if round(fit.mass, 9) not in held or not fit.ok:
            continue
        interp_mu = fit.mass + float(model.splines["mu_offset"](fit.mass))
        interp_width = float(model.resolution(fit.mass))
        mu_error = math.hypot(fit.errors["mu"], float(peak_fit.standard_error("mu_offset", fit.mass)[0]))
        n_l, n_r = model.settings["n_l"], model.settings["n_r"]
        width_error = math.hypot(fit.errors["resolution"], peak_fit.resolution_error(fit.mass, n_l, n_r))
        rows.append(
            {
                "mass": fit.mass,
                "mu_fit": fit.values["mu"],
                "mu_interpolated": interp_mu,
                "mu_difference_in_errors": (interp_mu - fit.values["mu"]) / mu_error,
                "width_fit": fit.values["resolution"],
                "width_interpolated": interp_width,
                "width_difference_in_errors": (interp_width - fit.values["resolution"]) / width_error,
            }
        )
    n = len(rows)

    def share(key):
        return float(sum(abs(r[key]) < 2 for r in rows) / n) if n else math.nan

    summary = {
        "n_held_out_fitted": n,
        "mu_within_2_errors": share("mu_difference_in_errors"),
        "width_within_2_errors": share("width_difference_in_errors"),
    }
    return {"summary": summary, "masses": rows}


def add_goodness_of_fit(model: ShapeModel, candidates_by_mass: dict[float, np.ndarray]) -> None:
    """Binned chi2 p-values of the held-out candidates against the interpolated shapes."""
    for row in model.validation["masses"]:
        x = candidates_by_mass[row["mass"]]
        shape = model.shape(row["mass"])
        x = x[(x >= shape.lower) & (x <= shape.upper)]
        chi2, ndf, pvalue = binned_chi2(x, shape)
        row.update(gof_chi2=chi2, gof_ndf=ndf, gof_pvalue=pvalue)
    rows = model.validation["masses"]
    model.validation["summary"]["gof_pvalue_above_0.01"] = (
        float(sum(r["gof_pvalue"] > 0.01 for r in rows) / len(rows)) if rows else math.nan
    )


# ----------------------------------------------------------------------------------------
# the stage


@dataclass(frozen=True)
class ShapesSummary:
    """What :func:`run_shapes` produced."""

    model: ShapeModel
    path: Path
    plots: list[Path]
    seconds: float


def signal_candidates(path, mass_variable: str, selection: str = "", step_size: int = 500_000):
    """Diphoton candidates of a signal ntuple, grouped by generated mass.

    Returns
    -------
    dict mass -> (candidates (n, 3), truth-matched (n, 3)), and dict mass -> generated events.
    """
    from .errors import NtupleError
    from .kinfit import truth_matched_pairs
    from .ntuple import iterate_ntuple, read_metadata
    from .selection import branches_used, evaluate_cut

    metadata = read_metadata(path)
    if "masses" not in metadata:
        raise NtupleError(f"{path}: metadata lacks the generated masses (not an ALP signal ntuple?)")
    generated = {round(float(m["mass"]), 9): int(m["n_generated"]) for m in metadata["masses"]}
    needed = sorted({"gen_mass", "photon_origin", mass_variable} | branches_used(selection))
    pieces: dict[float, list] = {}
    for chunk in iterate_ntuple(path, needed, step_size=step_size):
        keep = evaluate_cut(selection, chunk, len(chunk["gen_mass"]))
        masses = np.round(chunk["gen_mass"][keep], 9)
        candidates = chunk[mass_variable][keep]
        matched = truth_matched_pairs(chunk["photon_origin"][keep])
        order = np.argsort(masses, kind="stable")
        masses, candidates, matched = masses[order], candidates[order], matched[order]
        starts = np.flatnonzero(np.r_[True, masses[1:] != masses[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(masses)]):
            pieces.setdefault(float(masses[start]), []).append((candidates[start:stop], matched[start:stop]))
    grouped = {
        mass: (np.concatenate([c for c, _ in parts]), np.concatenate([t for _, t in parts]))
        for mass, parts in sorted(pieces.items())
    }
    return grouped, generated


def _peak_values(fit: MassFit) -> dict:
    return {name: fit.values[name] for name in PEAK_PARAMETERS if name in fit.values}


def _fit_or_flag(mass, grouped, generated, options, peak_starts) -> MassFit:
    if mass not in grouped:
        return MassFit(float(mass), "no events pass the selection", generated[mass])
    candidates, matched = grouped[mass]
    return fit_mass(mass, candidates, matched, generated[mass], peak_starts=peak_starts, **options)


def run_shapes(config: dict, input_path=None, output_dir=None, *, progress: bool = True) -> ShapesSummary:
    """The signal-shape stage: fit every generated mass, interpolate, validate, save.

    Parameters
    ----------
    config : dict
        Validated configuration (its ``shapes`` section).
    input_path : path, optional
        Signal ntuple with the kinematic fit; default ``<output_dir>/kinfit/alp.root``.
    output_dir : path, optional
        Default ``<output_dir>/shapes``; receives ``signal_shapes.json`` and the plots.
    """
    import time

    from ._progress import progress_bar
    from .kinematics import Beams

    started = time.perf_counter()
    settings = config["shapes"]
    input_path = Path(input_path) if input_path else Path(config["output_dir"]) / "kinfit" / "alp.root"
    output_dir = Path(output_dir) if output_dir else Path(config["output_dir"]) / "shapes"
    grouped, generated = signal_candidates(input_path, settings["mass_variable"], settings["selection"])
    masses = np.array(sorted(generated))
    sqrt_s = Beams.from_config(config).sqrt_s
    edge = measure_endpoint_edge(grouped, sqrt_s, settings["window_sigmas"])
    options = dict(
        peak=settings["peak"],
        n_l=settings["n_left"],
        n_r=settings["n_right"],
        second_gaussian=settings["second_gaussian"],
        window_sigmas=settings["window_sigmas"],
        sqrt_s=sqrt_s,
        edge_shift=edge["shift"],
        edge_width=edge["width"],
        engine=settings["engine"],
    )
    with progress_bar(progress) as bar:
        # pass 1: each mass starts from its lower neighbour, which keeps near-degenerate
        # parameters on one solution along the grid
        advance = bar.add("fit signal shapes", len(masses))
        fits, previous = [], None
        for mass in masses:
            fits.append(_fit_or_flag(mass, grouped, generated, options, [previous] if previous else []))
            if fits[-1].ok:
                previous = _peak_values(fits[-1])
            advance(1)
    model_settings = {
        "mass_variable": settings["mass_variable"],
        "peak": settings["peak"],
        "n_l": settings["n_left"],
        "n_r": settings["n_right"],
        "second_gaussian": settings["second_gaussian"],
        "window_sigmas": settings["window_sigmas"],
        "sqrt_s": sqrt_s,
        "edge_shift": edge["shift"],
        "edge_width": edge["width"],
        "edge_measurement": edge,
        "spline_basis": settings["spline_basis"],
        "spline_penalty": settings["spline_penalty"],
        "min_fit_pvalue": settings["min_fit_pvalue"],
        "selection": settings["selection"],
        "engine": settings["engine"],
        "source": str(input_path.resolve()),
    }
    held_out = held_out_masses(masses, settings["n_held_out"])
    truth = {mass: c[np.isfinite(c) & t] for mass, (c, t) in grouped.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the final interpolation repeats what is worth a warning
        model = build_shape_model(fits, held_out, model_settings, truth)
    with progress_bar(progress) as bar:
        # pass 2: every mass also starts from the interpolation; a fit stuck in a local
        # minimum of pass 1 moves to the better one
        advance = bar.add("refit from the interpolation", len(masses))
        for i, fit in enumerate(fits):
            if fit.ok:
                start = {name: float(model.splines[name](fit.mass)) for name in _peak_values(fit) if name != "mu"}
                refit = _fit_or_flag(fit.mass, grouped, generated, options, [start])
                if refit.ok and refit.peak_nll < fit.peak_nll:
                    fits[i] = refit
            advance(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_shape_model(fits, held_out, model_settings, truth, initial=model)
    for warning in caught:
        warnings.warn(str(warning.message), stacklevel=2)
    add_goodness_of_fit(model, {m: grouped[m][0][np.isfinite(grouped[m][0])] for m in model.held_out if m in grouped})
    path = model.save(output_dir / "signal_shapes.json")
    plots = []
    if settings["plots"]:
        from .plotting import plot_shape_fits, plot_shape_parameters

        plots.append(plot_shape_parameters(model, output_dir / "shape_parameters.png"))
        plots.append(plot_shape_fits(model, grouped, output_dir / "shape_fits.pdf"))
    return ShapesSummary(model, path, plots, time.perf_counter() - started)
