"""The signal shape fitted at one generated mass, and the smeared endpoint of the wrong pairings.

At each generated mass (:func:`fit_mass`) the three diphoton candidates of every event
enter: the peak is fitted to the truth-matched ones, then f and the Chebyshev slope to all
of them with the peak fixed (engines in :mod:`bumphunt.shapes.engines`). The smearing of
the endpoint is measured once on the wrong pairings of the masses whose endpoint lies in
their window (:func:`measure_endpoint_edge`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats

from ..models import dscb
from ..models.signal import (
    MassFit,
    SignalShape,
    core_width,
    peak_width,
    peak_width_derivatives,
    wrong_pair_endpoint,
    wrong_pairings_in_window,
)
from .engines import engine_functions, minuit_output, run_minuit

PEAK_MODELS = ("doublecb", "generalizedcb")
MIN_MATCHED_CANDIDATES = 200
MIN_EDGE_CANDIDATES = 200


def width_parameters(peak: str) -> tuple[str, ...]:
    """Names of the width parameters of a peak model."""
    if peak not in PEAK_MODELS:
        raise ValueError(f"unknown peak model {peak!r}; choose one of {PEAK_MODELS}")
    return ("sigma",) if peak == "doublecb" else ("sigma_l", "sigma_r")


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
        Peak parameters to start from (of a neighbouring mass, or of the interpolation), ``mu``
        moved to the data. They and the four default starts are all tried and the valid fit
        of the lowest negative log-likelihood kept (a converged fit can be a local minimum:
        one start alone can carry it from mass to mass). When none converges, with the
        second Gaussian, the plain DSCB (Gaussian fraction fixed at 0).
    engine : str
        ``"numba"`` (iminuit on a compiled likelihood) or ``"zfit"``.
    """
    widths = width_parameters(peak)
    fit_peak, fit_fraction = engine_functions(engine)
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
    # every start is tried and the global minimum kept: the DSCB + Gaussian has valid local
    # minima (a DSCB without its left tail plus a small Gaussian, say), and a neighbour's fit
    # that sits in one would hand it on along the grid
    for attempt, start in enumerate(given + defaults, start=1):
        outcome = fit_peak(truth_x, start, lower, upper, n_l, n_r, sigma_guess)
        result.attempts = attempt
        if outcome.valid and (best is None or outcome.nll < best.nll):
            best = outcome
    if best is None and second_gaussian:
        # a peak that needs no second Gaussian (after a selection that removes the radiative
        # tail) leaves its width undetermined as its fraction goes to 0: fit the plain DSCB
        for start in defaults:
            outcome = fit_peak(truth_x, {**start, "gauss_fraction": 0.0}, lower, upper, n_l, n_r, sigma_guess,
                               fixed=("gauss_fraction", "gauss_ratio"))  # fmt: skip
            result.attempts += 1
            if outcome.valid:
                best = outcome
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
    minuit = run_minuit(nll, {"c1": 0.0, "shift": 0.0, "width": resolution}, limits)
    values, errors, _, valid = minuit_output(minuit, limits, boundary_ok=("c1",))
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
