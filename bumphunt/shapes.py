"""Signal model: DSCB + Chebyshev at every generated mass, interpolated in mass.

The signal PDF is N_sig (f DSCB + (1 - f) Chebyshev1): a double-sided Crystal Ball for the
truth-matched photon pair (both n fixed) and a first-order Chebyshev for the wrong
pairings, in a window of +-``window_sigmas`` resolutions around the mass
(:mod:`bumphunt.dscb` has the densities; :func:`zfit_signal_pdf` builds the same model in
zfit for fits of one's own).

At each generated mass (:func:`fit_mass`) the three diphoton candidates of every event
enter: the DSCB is fitted to the truth-matched ones, then f and the Chebyshev slope to all
of them with the DSCB fixed; minimised with iminuit on a numba likelihood (``engine="zfit"``
runs the same fits in zfit). Every shape parameter and the efficiency are then smoothed
across the generated masses with penalised cubic splines (smoothing chosen by generalised
cross-validation, errors propagated linearly), with some masses held out to test the
interpolation (:func:`build_shape_model`). :class:`ShapeModel` is what the mass scan loads.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import dscb
from ._version import __version__

FORMAT = "bumphunt-signal-shapes"
FORMAT_VERSION = 1
PEAK_MODELS = ("doublecb", "generalizedcb")
MIN_MATCHED_CANDIDATES = 200


@dataclass(frozen=True)
class SignalShape:
    """The signal density at one mass, in a window [lower, upper] (GeV)."""

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

    @property
    def peak_parameters(self) -> tuple[float, ...]:
        return (self.mu, self.sigma_l, self.sigma_r, self.alpha_l, self.n_l, self.alpha_r, self.n_r)

    def peak_pdf(self, x) -> np.ndarray:
        """The DSCB alone, normalised in the window."""
        return dscb.dscb_pdf(x, *self.peak_parameters, self.lower, self.upper)

    def combinatorial_pdf(self, x) -> np.ndarray:
        """The Chebyshev alone, normalised in the window."""
        return dscb.chebyshev1_pdf(x, self.c1, self.lower, self.upper)

    def pdf(self, x) -> np.ndarray:
        """f DSCB + (1 - f) Chebyshev, normalised in the window."""
        return self.fraction * self.peak_pdf(x) + (1.0 - self.fraction) * self.combinatorial_pdf(x)

    def with_window(self, lower: float, upper: float) -> SignalShape:
        """The same shape normalised in another window."""
        return SignalShape(**{**asdict(self), "lower": lower, "upper": upper})


@dataclass
class MassFit:
    """Fits of the signal shape at one generated mass.

    ``values`` and ``errors`` hold mu, sigma (or sigma_l, sigma_r), alpha_l, alpha_r,
    fraction, c1 and efficiency; ``status`` is "ok", or why the mass is unusable.
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
    c1_floating: bool = True

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def shape(self, n_l: float, n_r: float) -> SignalShape:
        v = self.values
        return SignalShape(
            mu=v["mu"],
            sigma_l=v.get("sigma_l", v.get("sigma")),
            sigma_r=v.get("sigma_r", v.get("sigma")),
            alpha_l=v["alpha_l"],
            n_l=n_l,
            alpha_r=v["alpha_r"],
            n_r=n_r,
            fraction=v["fraction"],
            c1=v["c1"],
            lower=self.lower,
            upper=self.upper,
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
    window_sigmas: float = 20.0,
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
    peak, n_l, n_r, window_sigmas :
        Model settings: DSCB type, fixed tail exponents, window half-width in resolutions.
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
    sigma_guess = core_width(truth)
    lower = max(mass - window_sigmas * sigma_guess, 0.0)
    upper = mass + window_sigmas * sigma_guess
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
    starts = [(sigma_guess, 1.5), (0.8 * sigma_guess, 1.0), (1.3 * sigma_guess, 2.5), (sigma_guess, 0.7)]
    for attempt, (sigma_start, alpha_start) in enumerate(starts, start=1):
        start = {"mu": mass + median_offset, "alpha_l": alpha_start, "alpha_r": alpha_start}
        start.update({name: sigma_start for name in widths})
        values, errors, edm, valid = fit_peak(truth_x, start, lower, upper, n_l, n_r, sigma_guess)
        result.attempts = attempt
        if valid:
            break
    else:
        result.status = f"peak fit did not converge after {len(starts)} starts"
        return result
    result.values.update(values)
    result.errors.update(errors)
    result.edm = edm

    peak_values = (
        values["mu"],
        values.get("sigma_l", values.get("sigma")),
        values.get("sigma_r", values.get("sigma")),
        values["alpha_l"],
        n_l,
        values["alpha_r"],
        n_r,
    )
    peak_density = np.exp(dscb.dscb_logpdf(all_x, *peak_values, lower, upper))
    n_wrong = len(all_x) - len(truth_x)
    result.c1_floating = n_wrong >= 20
    fraction_start = len(truth_x) / len(all_x)
    frac_values, frac_errors, valid = fit_fraction(
        all_x, peak_density, peak_values, lower, upper, fraction_start, result.c1_floating
    )
    if not valid:
        result.status = "fraction fit did not converge"
        return result
    result.values.update(frac_values)
    result.errors.update(frac_errors)
    result.chi2, result.ndf, result.chi2_pvalue = binned_chi2(all_x, result.shape(n_l, n_r), n_fitted=len(values) + 2)
    return result


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

    minuit = Minuit(fcn, **start)
    minuit.errordef = Minuit.LIKELIHOOD
    for name, limit in limits.items():
        minuit.limits[name] = limit
    for name in fixed:
        minuit.fixed[name] = True
    minuit.migrad()
    if minuit.valid:
        minuit.hesse()
    return minuit


def _fit_peak_numba(x, start, lower, upper, n_l, n_r, sigma_guess):
    x = np.ascontiguousarray(x)
    if "sigma" in start:

        def nll(mu, sigma, alpha_l, alpha_r):
            return dscb.dscb_nll(x, mu, sigma, sigma, alpha_l, n_l, alpha_r, n_r, lower, upper)

    else:

        def nll(mu, sigma_l, sigma_r, alpha_l, alpha_r):
            return dscb.dscb_nll(x, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper)

    limits = _peak_limits(start, lower, upper, sigma_guess)
    minuit = _minuit(nll, _ordered(start, nll), limits)
    return _minuit_output(minuit, limits)


def _peak_limits(start, lower, upper, sigma_guess):
    limits = {"mu": (lower, upper), "alpha_l": (0.2, 10.0), "alpha_r": (0.2, 10.0)}
    for name in ("sigma", "sigma_l", "sigma_r"):
        if name in start:
            limits[name] = (0.05 * sigma_guess, 10.0 * sigma_guess)
    return limits


def _ordered(start, function):
    import inspect

    return {name: start[name] for name in inspect.signature(function).parameters}


def _minuit_output(minuit, limits, *, boundary_ok=("alpha_l", "alpha_r", "fraction")):
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


def _fit_fraction_numba(x, peak_density, peak_values, lower, upper, fraction_start, c1_floating):
    x = np.ascontiguousarray(x)
    peak_density = np.ascontiguousarray(peak_density)

    def nll(fraction, c1):
        return dscb.signal_nll(x, fraction, c1, peak_density, lower, upper)

    limits = {"fraction": (0.0, 1.0), "c1": (-1.0, 1.0)}
    start = {"fraction": min(max(fraction_start, 0.01), 0.99), "c1": 0.0}
    minuit = _minuit(nll, start, limits, fixed=() if c1_floating else ("c1",))
    # f and c1 are bounded by physics (a fraction; a positive density), not by the fit
    values, errors, _, valid = _minuit_output(minuit, limits, boundary_ok=("fraction", "c1"))
    if not c1_floating:
        errors["c1"] = math.nan
    return values, errors, valid


def _zfit_peak(obs, start, n_l, n_r, limits):
    import zfit

    params = {name: zfit.Parameter(f"{name}_{id(obs)}", value, *limits[name]) for name, value in start.items()}
    n_left = zfit.Parameter(f"n_l_{id(obs)}", n_l, floating=False)
    n_right = zfit.Parameter(f"n_r_{id(obs)}", n_r, floating=False)
    if "sigma" in params:
        pdf = zfit.pdf.DoubleCB(
            mu=params["mu"], sigma=params["sigma"], alphal=params["alpha_l"], nl=n_left,
            alphar=params["alpha_r"], nr=n_right, obs=obs,
        )  # fmt: skip
    else:
        pdf = zfit.pdf.GeneralizedCB(
            mu=params["mu"], sigmal=params["sigma_l"], alphal=params["alpha_l"], nl=n_left,
            sigmar=params["sigma_r"], alphar=params["alpha_r"], nr=n_right, obs=obs,
        )  # fmt: skip
    return pdf, params


def _fit_peak_zfit(x, start, lower, upper, n_l, n_r, sigma_guess):
    import zfit

    obs = zfit.Space("m_gg", lower, upper)
    limits = _peak_limits(start, lower, upper, sigma_guess)
    pdf, params = _zfit_peak(obs, start, n_l, n_r, limits)
    loss = zfit.loss.UnbinnedNLL(model=pdf, data=zfit.Data.from_numpy(obs=obs, array=x))
    result = zfit.minimize.Minuit().minimize(loss)
    result.hesse(name="hesse")
    values = {name: float(p.value()) for name, p in params.items()}
    errors = {name: float(result.params[p]["hesse"]["error"]) for name, p in params.items()}
    valid = bool(result.valid)
    return values, errors, float(result.edm), valid


def _fit_fraction_zfit(x, peak_density, peak_values, lower, upper, fraction_start, c1_floating):
    import zfit

    obs = zfit.Space("m_gg", lower, upper)
    names = ("mu", "sigma_l", "sigma_r", "alpha_l", "n_l", "alpha_r", "n_r")
    fixed = dict(zip(names, peak_values))
    start = {k: fixed[k] for k in ("mu", "alpha_l", "alpha_r")}
    start.update(sigma_l=fixed["sigma_l"], sigma_r=fixed["sigma_r"])
    limits = {k: (-np.inf, np.inf) for k in start}
    peak, params = _zfit_peak(obs, start, fixed["n_l"], fixed["n_r"], limits)
    for p in params.values():
        p.floating = False
    c1 = zfit.Parameter(f"c1_{id(obs)}", 0.0, -1.0, 1.0, floating=c1_floating)
    fraction = zfit.Parameter(f"fraction_{id(obs)}", min(max(fraction_start, 0.01), 0.99), 0.0, 1.0)
    model = zfit.pdf.SumPDF([peak, zfit.pdf.Chebyshev(obs=obs, coeffs=[c1])], fracs=[fraction])
    loss = zfit.loss.UnbinnedNLL(model=model, data=zfit.Data.from_numpy(obs=obs, array=x))
    result = zfit.minimize.Minuit().minimize(loss)
    result.hesse(name="hesse")
    values = {"fraction": float(fraction.value()), "c1": float(c1.value())}
    errors = {"fraction": float(result.params[fraction]["hesse"]["error"])}
    errors["c1"] = float(result.params[c1]["hesse"]["error"]) if c1_floating else math.nan
    return values, errors, bool(result.valid)


def zfit_signal_pdf(shape: SignalShape, obs=None, *, n_sig=None, generalized: bool | None = None):
    """The signal model of ``shape`` as a zfit PDF (fixed parameters), for one's own fits.

    Parameters
    ----------
    shape : SignalShape
    obs : zfit.Space, optional
        Default: ``m_gg`` in the shape's window.
    n_sig : zfit.Parameter or float, optional
        Yield; the PDF is extended when given.
    generalized : bool, optional
        GeneralizedCB (sigma_l, sigma_r) instead of DoubleCB; default: when the widths differ.
    """
    import zfit

    obs = obs if obs is not None else zfit.Space("m_gg", shape.lower, shape.upper)
    generalized = shape.sigma_l != shape.sigma_r if generalized is None else generalized
    if generalized:
        peak = zfit.pdf.GeneralizedCB(
            mu=shape.mu, sigmal=shape.sigma_l, alphal=shape.alpha_l, nl=shape.n_l,
            sigmar=shape.sigma_r, alphar=shape.alpha_r, nr=shape.n_r, obs=obs,
        )  # fmt: skip
    else:
        peak = zfit.pdf.DoubleCB(
            mu=shape.mu, sigma=shape.sigma_l, alphal=shape.alpha_l, nl=shape.n_l,
            alphar=shape.alpha_r, nr=shape.n_r, obs=obs,
        )  # fmt: skip
    combinatorial = zfit.pdf.Chebyshev(obs=obs, coeffs=[shape.c1])
    return zfit.pdf.SumPDF([peak, combinatorial], fracs=[shape.fraction], extended=n_sig)


# ----------------------------------------------------------------------------------------
# interpolation in mass


@dataclass(frozen=True)
class ParameterSpline:
    """A cubic B-spline of one shape parameter versus mass, constant beyond its mass range."""

    knots: tuple[float, ...]
    coefficients: tuple[float, ...]
    degree: int
    mass_range: tuple[float, float]

    def __call__(self, mass):
        from scipy.interpolate import BSpline

        spline = BSpline(np.array(self.knots), np.array(self.coefficients), self.degree, extrapolate=True)
        return spline(np.clip(mass, *self.mass_range))

    def to_dict(self) -> dict:
        return {
            "knots": list(self.knots),
            "coefficients": list(self.coefficients),
            "degree": self.degree,
            "mass_range": list(self.mass_range),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ParameterSpline:
        return cls(tuple(data["knots"]), tuple(data["coefficients"]), int(data["degree"]), tuple(data["mass_range"]))


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
    lam = _gcv_lambda(masses, values, weights, spline)
    result = ParameterSpline(tuple(spline.t), tuple(spline.c), int(spline.k), (float(masses[0]), float(masses[-1])))

    def standard_error(mass):
        mass = np.clip(np.atleast_1d(mass), masses[0], masses[-1])
        basis = np.array(
            [make_smoothing_spline(masses, unit, w=weights, lam=lam)(mass) for unit in np.eye(len(masses))]
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
        mu_offset (mu - m), the widths, alpha_l, alpha_r, fraction, c1, efficiency.
    settings : dict
        mass_variable, peak, n_l, n_r, window_sigmas, selection, source.
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
        """Core width sigma (mean of the left and right widths for GeneralizedCB), GeV."""
        if "sigma" in self.splines:
            return self.splines["sigma"](mass)
        return 0.5 * (self.splines["sigma_l"](mass) + self.splines["sigma_r"](mass))

    def efficiency(self, mass) -> np.ndarray:
        """Signal candidates in the window per generated event."""
        return self.splines["efficiency"](mass)

    def shape(self, mass: float, *, window_sigmas: float | None = None) -> SignalShape:
        """The signal shape at ``mass`` in a window of +-``window_sigmas`` resolutions."""
        window = self.settings["window_sigmas"] if window_sigmas is None else window_sigmas
        sigma = float(self.resolution(mass))
        s = {name: float(spline(mass)) for name, spline in self.splines.items()}
        return SignalShape(
            mu=mass + s["mu_offset"],
            sigma_l=s.get("sigma_l", s.get("sigma")),
            sigma_r=s.get("sigma_r", s.get("sigma")),
            alpha_l=s["alpha_l"],
            n_l=self.settings["n_l"],
            alpha_r=s["alpha_r"],
            n_r=self.settings["n_r"],
            fraction=float(np.clip(s["fraction"], 0.0, 1.0)),
            c1=float(np.clip(s["c1"], -1.0, 1.0)),
            lower=max(mass - window * sigma, 0.0),
            upper=mass + window * sigma,
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


def build_shape_model(fits: list[MassFit], held_out: np.ndarray, settings: dict) -> ShapeModel:
    """Interpolate the parameters of the good fits that are not held out.

    Failed fits are excluded with a warning naming the mass.
    """
    for fit in fits:
        if not fit.ok:
            warnings.warn(
                f"signal shape at m = {fit.mass:.4f} GeV excluded from the interpolation: {fit.status}", stacklevel=2
            )
    held = set(np.round(held_out, 9))
    training = [fit for fit in fits if fit.ok and round(fit.mass, 9) not in held]
    if len(training) < 5:
        from .errors import BumphuntError

        raise BumphuntError(f"only {len(training)} usable masses for the signal-shape interpolation; need at least 5")
    names = ("mu_offset", *width_parameters(settings["peak"]), "alpha_l", "alpha_r", "fraction", "c1", "efficiency")
    splines, standard_errors = {}, {}
    for name in names:
        usable = [f for f in training if name != "c1" or f.c1_floating]
        if not usable:  # no wrong pairings anywhere: a flat combinatorial shape
            usable = training
        masses = np.array([f.mass for f in usable])
        key = "mu" if name == "mu_offset" else name
        values = np.array([f.values[key] for f in usable]) - (masses if name == "mu_offset" else 0.0)
        errors = np.array([f.errors[key] for f in usable])
        errors = np.where(
            np.isfinite(errors) & (errors > 0), errors, np.nanmedian(errors[errors > 0]) if np.any(errors > 0) else 1.0
        )
        splines[name], standard_errors[name] = smooth(masses, values, errors)
    model = ShapeModel(splines, dict(settings), list(fits), [float(m) for m in held_out])
    model.validation = validate_held_out(model, standard_errors)
    return model


def validate_held_out(model: ShapeModel, standard_errors: dict) -> dict:
    """Compare the interpolation with the direct fits at the held-out masses.

    For each held-out mass: the binned chi2 p-value of the candidates against the
    interpolated shape (no parameter fitted), and the differences of mu and sigma from the
    direct fit in units of the combined standard error (direct fit and interpolation).
    """
    held = {round(m, 9) for m in model.held_out}
    rows = []
    width = width_parameters(model.settings["peak"])[0]
    for fit in model.fits:
        if round(fit.mass, 9) not in held or not fit.ok:
            continue
        interp_mu = fit.mass + float(model.splines["mu_offset"](fit.mass))
        interp_sigma = float(model.splines[width](fit.mass))
        mu_error = math.hypot(fit.errors["mu"], float(standard_errors["mu_offset"](fit.mass)[0]))
        sigma_error = math.hypot(fit.errors[width], float(standard_errors[width](fit.mass)[0]))
        rows.append(
            {
                "mass": fit.mass,
                "mu_fit": fit.values["mu"],
                "mu_interpolated": interp_mu,
                "mu_difference_in_errors": (interp_mu - fit.values["mu"]) / mu_error,
                "sigma_fit": fit.values[width],
                "sigma_interpolated": interp_sigma,
                "sigma_difference_in_errors": (interp_sigma - fit.values[width]) / sigma_error,
            }
        )
    n = len(rows)
    summary = {
        "n_held_out_fitted": n,
        "mu_within_2_errors": float(sum(abs(r["mu_difference_in_errors"]) < 2 for r in rows) / n) if n else math.nan,
        "sigma_within_2_errors": float(sum(abs(r["sigma_difference_in_errors"]) < 2 for r in rows) / n)
        if n
        else math.nan,
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

    started = time.perf_counter()
    settings = config["shapes"]
    input_path = Path(input_path) if input_path else Path(config["output_dir"]) / "kinfit" / "alp.root"
    output_dir = Path(output_dir) if output_dir else Path(config["output_dir"]) / "shapes"
    grouped, generated = signal_candidates(input_path, settings["mass_variable"], settings["selection"])
    masses = np.array(sorted(generated))
    options = dict(
        peak=settings["peak"],
        n_l=settings["n_left"],
        n_r=settings["n_right"],
        window_sigmas=settings["window_sigmas"],
        engine=settings["engine"],
    )
    fits = []
    with progress_bar(progress) as bar:
        advance = bar.add("fit signal shapes", len(masses))
        for mass in masses:
            if mass in grouped:
                candidates, matched = grouped[mass]
                fits.append(fit_mass(mass, candidates, matched, generated[mass], **options))
            else:
                fits.append(MassFit(float(mass), "no events pass the selection", generated[mass]))
            advance(1)
    model_settings = {
        "mass_variable": settings["mass_variable"],
        "peak": settings["peak"],
        "n_l": settings["n_left"],
        "n_r": settings["n_right"],
        "window_sigmas": settings["window_sigmas"],
        "selection": settings["selection"],
        "engine": settings["engine"],
        "source": str(input_path),
    }
    held_out = held_out_masses(masses, settings["n_held_out"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_shape_model(fits, held_out, model_settings)
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
