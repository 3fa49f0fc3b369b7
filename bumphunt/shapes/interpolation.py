"""The per-mass shape fits interpolated in mass into a :class:`~bumphunt.models.ShapeModel`.

The peak parameters are B-splines fitted to the truth-matched candidates of all training
masses at once (:mod:`bumphunt.shapes.splinefit`); the density of wrong pairings is a
Poisson regression of their counts; c1 and the efficiency are penalised smoothing splines
(:func:`smooth`). Some masses are held out to test the interpolation
(:mod:`bumphunt.shapes.validation`).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.interpolate import make_smoothing_spline
from scipy.optimize import minimize_scalar

from ..errors import BumphuntError
from ..models import dscb
from ..models.signal import MassFit, ShapeModel
from ..models.splines import TRANSFORMS, ParameterSpline, knot_vector
from .splinefit import PeakData, fit_peak_splines, fit_rate_spline
from .validation import validate_held_out

log = logging.getLogger(__name__)

RATE_BASIS = 30


def smooth(masses: np.ndarray, values: np.ndarray, errors: np.ndarray):
    """Penalised cubic smoothing spline of values(mass) weighted by 1/error^2.

    The smoothing is chosen by generalised cross-validation; for that smoothing the spline
    is linear in the values, so its error at any mass follows by linear propagation.

    Returns
    -------
    ParameterSpline, and a function giving the spline's standard error at given masses.
    """
    order = np.argsort(masses)
    masses, values, errors = masses[order], values[order], errors[order]
    weights = 1.0 / errors**2
    weights = weights / weights.mean()
    if len(masses) < 5:
        mean = float(np.sum(values * weights) / np.sum(weights))
        high = masses[-1] if masses[-1] > masses[0] else masses[0] + 1.0  # one mass: the knots still need a span
        constant = ParameterSpline((masses[0],) * 4 + (high,) * 4, (mean,) * 4, 3, (masses[0], masses[-1]))
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
    target = spline(masses)

    def distance(log_lam):
        return float(np.sum((make_smoothing_spline(masses, values, w=weights, lam=10**log_lam)(masses) - target) ** 2))

    best = minimize_scalar(distance, bounds=(-12, 6), method="bounded", options={"xatol": 1e-6})
    return float(10**best.x)


def build_shape_model(
    fits: list[MassFit],
    held_out: np.ndarray,
    settings: dict,
    truth_candidates: dict[float, np.ndarray],
    *,
    initial: ShapeModel | None = None,
    report: bool = True,
) -> ShapeModel:
    """Interpolate the good fits that are not held out.

    The peak parameters are B-splines in mass fitted to the truth-matched candidates of all
    those masses at once (:func:`bumphunt.shapes.splinefit.fit_peak_splines`, started from the
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
    report : bool
        Log the excluded masses and a failed simultaneous fit (as warnings).
    """
    min_pvalue = settings.get("min_fit_pvalue", 0.0)
    held = set(np.round(held_out, 9))
    for fit in fits:
        where = "(held out) not validated" if round(fit.mass, 9) in held else "excluded from the interpolation"
        if not report:
            continue
        if not fit.ok:
            log.warning("signal shape at m = %.4f GeV %s: %s", fit.mass, where, fit.status)
        elif fit.chi2_pvalue < min_pvalue:
            where = "(held out)" if round(fit.mass, 9) in held else "excluded from the interpolation"
            log.warning(
                "signal shape at m = %.4f GeV %s: the model does not describe it (chi2/ndf = %.1f/%d, p = %.2g < %g)",
                fit.mass, where, fit.chi2, fit.ndf, fit.chi2_pvalue, min_pvalue,
            )  # fmt: skip
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
    if not peak_fit.valid and report:
        log.warning("the simultaneous fit of the peak parameters did not converge; its errors are unreliable")
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
    model.interpolation_table = _interpolation_errors(peak_fit, [f.mass for f in training], settings)
    model.validation = validate_held_out(model, peak_fit)
    model.validation["peak_fit"] = {
        "valid": peak_fit.valid, "n_basis": n_basis, "nll": peak_fit.nll, "calls": peak_fit.n_calls,
        "masses": len(training),
    }  # fmt: skip
    return model


def _interpolation_errors(peak_fit, masses: list[float], settings: dict) -> dict:
    """Relative errors of the interpolated peak position and resolution at the training
    masses, from the spline fit's covariance (the ``shape_interpolation`` systematic)."""
    masses = np.asarray(masses, dtype=float)
    position = peak_fit.standard_error("mu_offset", masses) / masses
    resolution = peak_fit.resolution(masses, settings["n_l"], settings["n_r"])
    width = np.array([peak_fit.resolution_error(m, settings["n_l"], settings["n_r"]) for m in masses]) / resolution
    finite = np.isfinite(position) & np.isfinite(width)
    return {"masses": masses[finite].tolist(), "position": position[finite].tolist(), "width": width[finite].tolist()}


def _wrong_pairing_density(training: list[MassFit], settings: dict) -> ParameterSpline:
    """The density of wrong pairings (per GeV of the unnormalised combinatorial shape, per
    truth-matched candidate) versus mass: a Poisson regression of the wrong-pairing counts
    in each window (:func:`bumphunt.shapes.splinefit.fit_rate_spline`)."""
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
