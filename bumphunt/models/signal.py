"""The signal model the shape stage writes and the scan reads: its densities and its file.

The signal PDF at a mass m is f peak + (1 - f) wrong pairings (:class:`SignalShape`). The
peak of the truth-matched photon pairs is a double-sided Crystal Ball (both n fixed), by
default with a wider Gaussian of the same mean; the wrong pairings are a first-order
Chebyshev that ends at their kinematic endpoint sqrt(s - m^2), smeared by the resolution
(:mod:`bumphunt.models.dscb` has the densities). :class:`ShapeModel` holds every parameter as
a spline in mass (:class:`~bumphunt.models.splines.ParameterSpline`) with the per-mass fits
(:class:`MassFit`) they came from, and reads and writes the versioned JSON file
``signal_shapes.json``. The truth-matched fraction f at any mass follows from the
interpolated density of wrong pairings and the part of the window below the endpoint, so
it drops to 1 where the endpoint leaves the window.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
from scipy.optimize import brentq

from .._io import atomic_write_text
from .._version import __version__
from ..errors import BumphuntError
from . import dscb
from .lifetime import LifetimeResponse
from .splines import ParameterSpline

FORMAT = "bumphunt-signal-shapes"
FORMAT_VERSION = 2
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


CORE_PROBABILITY = math.erf(1.0 / math.sqrt(2.0))  # of a Gaussian within +-1 sigma


def core_width(values: np.ndarray) -> float:
    """Half-width of the central 68.27% interval of candidate masses (the resolution estimator
    of :func:`peak_width`, applied to events)."""
    low, high = np.percentile(values, [15.865, 84.135])
    return float(0.5 * (high - low))


def peak_width(values: dict, n_l: float = 10.0, n_r: float = 10.0):
    """Resolution of a peak: half the width of its central 68.27 % interval (the sigma of a
    Gaussian), the peak normalised within +-20 of its widths.

    Unlike the DSCB sigma or the RMS of the cores, it hardly depends on which of several
    near-equivalent parameter sets describes the peak, and it is the estimator
    :func:`core_width` applies to candidates. Values may be arrays.
    """
    arrays = {name: np.atleast_1d(np.asarray(value, dtype=np.float64)) for name, value in values.items()}
    size = max(len(a) for a in arrays.values())
    widths = np.array(
        [_central_half_width({name: float(a[i] if len(a) > 1 else a[0]) for name, a in arrays.items()}, n_l, n_r)
         for i in range(size)]
    )  # fmt: skip
    return widths if np.ndim(next(iter(values.values()))) else float(widths[0])


def _central_half_width(values: dict, n_l: float, n_r: float) -> float:
    sigma_l = values["sigma"] if "sigma" in values else values["sigma_l"]
    sigma_r = values["sigma"] if "sigma" in values else values["sigma_r"]
    alpha_l, alpha_r = values["alpha_l"], values["alpha_r"]
    g = values.get("gauss_fraction", 0.0)
    gauss_sigma = values.get("gauss_ratio", 1.0) * 0.5 * (sigma_l + sigma_r)
    reach = 20.0 * max(sigma_l, sigma_r, gauss_sigma)
    dscb_total = dscb.dscb_integral(-reach, reach, 0.0, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r)
    gauss_total = dscb.gaussian_integral(-reach, reach, 0.0, gauss_sigma)

    def cdf(x):
        peak = dscb.dscb_integral(-reach, x, 0.0, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r) / dscb_total
        return (1.0 - g) * peak + g * dscb.gaussian_integral(-reach, x, 0.0, gauss_sigma) / gauss_total

    tail = 0.5 * (1.0 - CORE_PROBABILITY)
    low = brentq(lambda x: cdf(x) - tail, -reach, reach, xtol=1e-14 * reach)
    high = brentq(lambda x: cdf(x) - (1.0 - tail), -reach, reach, xtol=1e-14 * reach)
    return 0.5 * (high - low)


def peak_width_derivatives(values: dict, n_l: float = 10.0, n_r: float = 10.0) -> dict:
    """Derivatives of :func:`peak_width` by each parameter (central differences)."""
    derivatives = {}
    for name, value in values.items():
        if name == "mu":
            derivatives[name] = 0.0
            continue
        step = 1e-4 * abs(value) if value else 1e-6
        up, down = dict(values), dict(values)
        up[name], down[name] = value + step, value - step
        derivatives[name] = (peak_width(up, n_l, n_r) - peak_width(down, n_l, n_r)) / (2.0 * step)
    return derivatives


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
    lifetime : LifetimeResponse, optional
        The efficiency relative to the generated lifetime (None: the signal ntuple had no
        proper decay lengths, or a prompt sample).
    """

    splines: dict[str, ParameterSpline]
    settings: dict
    fits: list[MassFit]
    held_out: list[float]
    validation: dict = field(default_factory=dict)
    lifetime: LifetimeResponse | None = None
    interpolation_table: dict | None = None  # masses, position, width: relative errors of the interpolation

    @property
    def mass_range(self) -> tuple[float, float]:
        """The generated masses the interpolation was fitted on (GeV); beyond them it is
        extrapolated as a constant, and the scan flags hypotheses there."""
        low, high = self.splines["mu_offset"].mass_range
        return float(low), float(high)

    def parameter(self, name: str, mass) -> np.ndarray:
        return self.splines[name](mass)

    def resolution(self, mass) -> np.ndarray:
        """Resolution (GeV): FWHM / 2.3548 of the peak, see :func:`peak_width`."""
        names = ("sigma", "sigma_l", "sigma_r", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio")
        values = {name: self.splines[name](mass) for name in names if name in self.splines}
        return peak_width(values, self.settings["n_l"], self.settings["n_r"])

    def efficiency(self, mass, ctau=None) -> np.ndarray:
        """Signal candidates in the window per produced ALP, at the generated lifetime or, with
        ``ctau`` (cm), at that proper decay length (:mod:`bumphunt.models.lifetime`; NaN
        beyond the simulated reach).

        Raises
        ------
        BumphuntError
            ``ctau`` given but the model has no lifetime map.
        """
        efficiency = self.splines["efficiency"](mass)
        if ctau is None:
            return efficiency
        if self.lifetime is None:
            raise BumphuntError(
                "the signal-shape file has no lifetime map (a prompt signal sample, or one without proper "
                "decay lengths: rerun `bumphunt simulate` and `bumphunt shapes`)"
            )
        return efficiency * self.lifetime(mass, ctau)

    def efficiency_error(self, mass, ctau=None) -> np.ndarray:
        """Statistical standard error of :meth:`efficiency`: the per-mass fits' relative errors
        interpolated linearly in mass, with the lifetime map's in quadrature."""
        fits = sorted((f for f in self.fits if f.ok and "efficiency" in f.values), key=lambda f: f.mass)
        masses = np.array([f.mass for f in fits])
        relative = np.array([f.errors["efficiency"] / f.values["efficiency"] for f in fits])
        error = np.interp(mass, masses, relative) * self.efficiency(mass, ctau)
        if ctau is None:
            return error
        ratio_error = self.lifetime.ratio_error(mass, ctau) * self.efficiency(mass)
        return np.hypot(error, ratio_error)

    def interpolation_errors(self, mass: float) -> tuple[float, float]:
        """Relative standard errors of the interpolated peak position and resolution at
        ``mass`` (from the covariance of the simultaneous spline fit; linear between the
        training masses, constant beyond).

        Raises
        ------
        BumphuntError
            The model was written before the shape stage stored them.
        """
        table = self.interpolation_table
        if not table:
            raise BumphuntError("the signal-shape file has no interpolation errors: rerun `bumphunt shapes`")
        masses = table["masses"]
        return float(np.interp(mass, masses, table["position"])), float(np.interp(mass, masses, table["width"]))

    def efficiency_of_lifetime(self, mass: float):
        """The efficiency at ``mass`` as a function of c tau (cm), for
        :func:`bumphunt.coupling.coupling_limit`; without a lifetime map, the generated one
        (a number: prompt decays)."""
        if self.lifetime is None:
            return float(self.efficiency(mass))
        return lambda ctau: self.efficiency(mass, ctau)

    def windowed(self, mass: float, *, window_sigmas=None, floor: float = 0.0, ceiling=None) -> SignalShape:
        """:meth:`shape` in the scan's window: +-``window_sigmas`` resolutions, cut below at
        ``floor`` and above at ``ceiling`` (GeV, None: not cut), renormalised there."""
        shape = self.shape(mass, window_sigmas=window_sigmas)
        if shape.lower < floor:
            shape = shape.with_window(floor, shape.upper)
        if ceiling is not None and shape.upper > ceiling:
            shape = shape.with_window(shape.lower, max(ceiling, shape.lower))
        return shape

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
            **({"lifetime": self.lifetime.to_dict()} if self.lifetime is not None else {}),
            **({"interpolation_errors": _jsonable(self.interpolation_table)} if self.interpolation_table else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON, atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=True))

    @classmethod
    def load(cls, path: str | Path) -> ShapeModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        BumphuntError
            The file is missing, not JSON, not a signal-shape file of a known version, or
            broken: the message names the first bad entry by its JSON path
            (``bumphunt/schemas/signal_shapes.schema.json`` and :func:`shapes_file_problem`).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise BumphuntError(f"{path}: cannot read signal shapes ({error.strerror or error})") from None
        except json.JSONDecodeError as error:
            raise BumphuntError(f"{path}: not a JSON file ({error.msg})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BumphuntError(f"{path}: not a bumphunt signal-shape file")
        if data.get("version") != FORMAT_VERSION:
            raise BumphuntError(f"{path}: signal-shape format version {data.get('version')}, expected {FORMAT_VERSION}")
        problem = shapes_file_problem(data)
        if problem:
            raise BumphuntError(f"{path}: broken signal-shape file: {problem}")
        return cls(
            splines={name: ParameterSpline.from_dict(d) for name, d in data["parameters"].items()},
            settings=data["settings"],
            fits=[MassFit(**fit) for fit in data["fits"]],
            held_out=data["held_out"],
            validation=data["validation"],
            lifetime=LifetimeResponse.from_dict(data["lifetime"]) if "lifetime" in data else None,
            interpolation_table=data.get("interpolation_errors"),
        )


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


@functools.cache
def _shapes_file_validator() -> jsonschema.Draft202012Validator:
    text = resources.files("bumphunt.schemas").joinpath("signal_shapes.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def shapes_file_problem(document: dict) -> str | None:
    """What is wrong with a signal-shape document, naming the bad entry by its JSON path
    (``parameters.sigma.coefficients``, ``fits[3].mass``); None when it is sound.

    The schema ``bumphunt/schemas/signal_shapes.schema.json`` checks keys, types and ranges
    (positive widths, n > 1); beyond it every spline needs finite numbers, knots in order,
    as many knots as coefficients + degree + 1, and a mass range from low to high.
    """
    # the shallowest error first; at one depth a named missing key before "sigma or sigma_l/_r"
    errors = sorted(
        _shapes_file_validator().iter_errors(document), key=lambda e: (len(e.absolute_path), e.validator == "anyOf")
    )
    if errors:
        return _describe_schema_error(errors[0])
    for key in ("n_l", "n_r", "window_sigmas", "sqrt_s"):
        value = document["settings"].get(key)
        if value is not None and not math.isfinite(value):
            return f"'settings.{key}' is {value}, not a finite number"
    for name, spline in document["parameters"].items():
        problem = _spline_problem(f"parameters.{name}", spline)
        if problem:
            return problem
    return None


def _spline_problem(where: str, spline: dict) -> str | None:
    for key in ("knots", "coefficients", "mass_range"):
        for index, value in enumerate(spline[key]):
            if not math.isfinite(value):
                return f"'{where}.{key}[{index}]' is {value}, not a finite number"
    knots, n_coefficients, degree = spline["knots"], len(spline["coefficients"]), spline["degree"]
    if n_coefficients <= degree:
        return f"'{where}' has {n_coefficients} coefficient(s), a spline of degree {degree} needs at least {degree + 1}"
    if len(knots) != n_coefficients + degree + 1:
        return (
            f"'{where}' has {len(knots)} knots for {n_coefficients} coefficients of degree {degree} "
            f"(needs {n_coefficients + degree + 1})"
        )
    if any(later < earlier for earlier, later in zip(knots, knots[1:])):
        return f"'{where}.knots' are not in increasing order"
    low, high = spline["mass_range"]
    if low > high:
        return f"'{where}.mass_range' runs from {low} down to {high}"
    return None


def _json_path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_JSON_TYPES = {"number": "a number", "integer": "an integer", "string": "a string", "array": "an array",
               "object": "an object", "boolean": "true or false", "null": "null"}  # fmt: skip


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    """One schema error as a short sentence naming the entry by its JSON path."""
    path, kind, limit, value = list(error.absolute_path), error.validator, error.validator_value, error.instance
    where = _json_path(path)
    if kind == "required":
        return f"missing key '{_json_path([*path, next(k for k in limit if k not in value)])}'"
    if kind == "dependentRequired":
        key, needed = next((k, n) for k, ns in limit.items() if k in value for n in ns if n not in value)
        return f"missing key '{_json_path([*path, needed])}' (needed with '{key}')"
    if kind == "anyOf" and all(set(option) == {"required"} for option in limit):
        options = [" and ".join(f"'{_json_path([*path, k])}'" for k in option["required"]) for option in limit]
        return f"missing key {options[0]} (or {' or '.join(options[1:])})"
    if kind == "additionalProperties":
        unknown = next(k for k in value if k not in error.schema.get("properties", {}))
        return f"unknown key '{_json_path([*path, unknown])}'"
    if kind == "type":
        expected = " or ".join(_JSON_TYPES[t] for t in ([limit] if isinstance(limit, str) else limit))
        return f"'{where}' should be {expected}, not {_json_type(value)}"
    if kind in ("minItems", "maxItems"):
        entries = f"{len(value)} {'entry' if len(value) == 1 else 'entries'}"
        if not value:
            return f"'{where}' is empty"
        return f"'{where}' has {entries}, needs {'at least' if kind == 'minItems' else 'at most'} {limit}"
    if kind in ("exclusiveMinimum", "minimum", "maximum"):
        bound = {"exclusiveMinimum": "above", "minimum": "at least", "maximum": "at most"}[kind]
        return f"'{where}' is {value}, must be {bound} {limit}"
    if kind in ("const", "enum"):
        allowed = json.dumps(limit) if kind == "const" else "one of " + ", ".join(json.dumps(v) for v in limit)
        return f"'{where}' is {json.dumps(value)}, must be {allowed}"
    return f"'{where}': {error.message}"
