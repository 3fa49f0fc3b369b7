"""The interpolation checked at the masses it left out: position, width, goodness of fit."""

from __future__ import annotations

import math

import numpy as np

from ..models.signal import ShapeModel
from .massfit import binned_chi2


def validate_held_out(model: ShapeModel, peak_fit) -> dict:
    """Compare the interpolation with the direct fits at the held-out masses.

    For each held-out mass: the differences of the peak position mu and of the width (the
    resolution, :func:`bumphunt.models.signal.peak_width`) from the direct fit in units of the
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
