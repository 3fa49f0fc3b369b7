"""Shape parameters as cubic B-splines in mass, on scales that keep them physical.

A parameter is ``inverse(transform, spline(mass))`` (:data:`TRANSFORMS`: log for widths and
tail parameters, logit for the Gaussian fraction, log(r - 1) for the width ratio), and
constant beyond the masses it was fitted on. Knots are spread evenly in
u = m + ln(m / (sqrt(s) - m)), denser where the resolution changes fastest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline
from scipy.optimize import brentq

from ..errors import ConfigError

TRANSFORMS = {
    "mu_offset": "none",
    "sigma": "log",
    "sigma_l": "log",
    "sigma_r": "log",
    "alpha_l": "log",
    "alpha_r": "log",
    "gauss_fraction": "logit",
    "gauss_ratio": "log_minus_one",
}


def forward(transform: str, value):
    """Parameter -> its spline scale."""
    value = np.asarray(value, dtype=np.float64)
    if transform == "log":
        return np.log(value)
    if transform == "logit":
        value = np.clip(value, 1e-6, 1 - 1e-6)
        return np.log(value / (1.0 - value))
    if transform == "log_minus_one":
        return np.log(np.maximum(value - 1.0, 1e-6))
    return value


def inverse(transform: str, value):
    """Spline scale -> parameter."""
    value = np.asarray(value, dtype=np.float64)
    if transform == "log":
        return np.exp(value)
    if transform == "logit":
        return 1.0 / (1.0 + np.exp(-value))
    if transform == "log_minus_one":
        return 1.0 + np.exp(value)
    return value


def inverse_derivative(transform: str, value):
    """d parameter / d spline value."""
    value = np.asarray(value, dtype=np.float64)
    if transform in ("log", "log_minus_one"):
        return np.exp(value)
    if transform == "logit":
        p = 1.0 / (1.0 + np.exp(-value))
        return p * (1.0 - p)
    return np.ones_like(value)


def knot_vector(low: float, high: float, n_basis: int, sqrt_s: float | None = None, degree: int = 3) -> np.ndarray:
    """Clamped knots for ``n_basis`` cubic B-splines on [low, high].

    With ``sqrt_s`` the knots are spread evenly in u = m + ln(m / (sqrt(s) - m)) (GeV): the
    peak changes fastest at low mass, where the ALP boost and the photon opening angle change
    fast, and near sqrt(s), where the recoil photon becomes soft; u is stretched at both
    ends. Without it they are spread evenly in mass.
    """
    if sqrt_s is None:
        interior = np.linspace(low, high, n_basis - degree + 1)[1:-1]
    else:

        def u(m):
            return m + math.log(m / (sqrt_s - m))

        targets = np.linspace(u(low), u(high), n_basis - degree + 1)[1:-1]
        interior = np.array([brentq(lambda m, target=t: u(m) - target, low, high) for t in targets])
    return np.r_[[low] * (degree + 1), interior, [high] * (degree + 1)]


def basis_matrix(knots: np.ndarray, masses: np.ndarray, degree: int = 3) -> np.ndarray:
    """Values of every B-spline at ``masses`` (clipped to the knot range): (n_masses, n_basis)."""
    masses = np.clip(np.atleast_1d(masses), knots[0], knots[-1])
    return BSpline.design_matrix(masses, knots, degree).toarray()


@dataclass(frozen=True)
class ParameterSpline:
    """A cubic B-spline of one shape parameter versus mass, constant beyond its mass range.

    ``transform`` names the scale of the spline (:data:`TRANSFORMS`): the
    parameter is ``inverse(transform, spline(mass))``.
    """

    knots: tuple[float, ...]
    coefficients: tuple[float, ...]
    degree: int
    mass_range: tuple[float, float]
    transform: str = "none"

    def __call__(self, mass):
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


def held_out_masses(masses: np.ndarray, n_held_out: int, *, setting: str = "shapes.n_held_out") -> np.ndarray:
    """``n_held_out`` masses spread evenly over the grid, never its two ends: left out of an
    interpolation (or a training) to test it; ``setting`` names the key in errors."""
    if n_held_out <= 0:
        return np.array([])
    if n_held_out > len(masses) - 6:
        raise ConfigError(
            f"config error at {setting!r}: cannot hold out {n_held_out} of {len(masses)} generated masses "
            "(at least 6 must remain)"
        )
    index = np.unique(np.round(np.linspace(1, len(masses) - 2, n_held_out + 2)[1:-1]).astype(int))
    return masses[index]
