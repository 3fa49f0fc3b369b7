"""The model of one mass hypothesis in zfit: the reference of the scan's numba likelihood.

In the fit window [lower, upper] of a mass hypothesis m the extended model is

    N_sig (f peak + (1 - f) wrong pairings) + N_bkg Chebyshev_k,

the signal of :class:`~bumphunt.models.SignalShape` and the background of
:mod:`bumphunt.stats.likelihood` (1 + sum_k c_k T_k(x'), x' in [-1, 1] on the window). The
peak parameters, f, c1 and the wrong-pairing endpoint are zfit ``ComposedParameter`` s of a
mass parameter through the stored splines (:class:`~bumphunt.models.ParameterSpline`,
evaluated in TensorFlow), so floating the mass moves the shape as the interpolation says;
the window, and the window over which f counts the wrong pairings, stay those of the
hypothesis. N_sig, N_bkg and c_k are free parameters.

This module imports zfit and TensorFlow: ``import bumphunt`` does not load it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import zfit
from scipy.interpolate import BSpline, PPoly

from ..config import validate_arguments, validate_settings
from ..errors import BumphuntError
from ..stats.systematics import model_nuisances
from ..systematics import Systematics
from .signal import EDGE_CUTOFF, ShapeModel, SignalShape
from .splines import ParameterSpline
from .zfit_pdfs import edge_integrals_tf, zfit_combinatorial, zfit_peak

#: The arguments of :func:`zfit_hypothesis` that stand for no configuration key, as JSON schema.
ARGUMENTS = {
    "mass": {"type": "number"},
    "n_sig": {"type": "number"},
    "n_bkg": {"type": "number", "minimum": 0},
}

#: Shape parameters that are composed of the mass (besides mu, the fraction and the endpoint).
SPLINE_PARAMETERS = ("sigma", "sigma_l", "sigma_r", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio", "c1")


def spline_tensor(spline: ParameterSpline, mass):
    """``spline(mass)`` in TensorFlow (differentiable in the mass): the B-spline as piecewise
    polynomials, clipped to its mass range and transformed back like
    :meth:`ParameterSpline.__call__`."""
    pieces = PPoly.from_spline(BSpline(np.array(spline.knots), np.array(spline.coefficients), spline.degree))
    keep = np.diff(pieces.x) > 0
    starts, coefficients = pieces.x[:-1][keep], pieces.c[:, keep]
    mass = tf.clip_by_value(tf.cast(mass, tf.float64), *spline.mass_range)
    index = tf.clip_by_value(tf.searchsorted(starts[1:], tf.reshape(mass, [1]), side="right")[0], 0, len(starts) - 1)
    offset = mass - tf.gather(starts, index)
    value = tf.zeros_like(mass)
    for row in coefficients:  # Horner, highest power first
        value = value * offset + tf.gather(row, index)
    if spline.transform == "log":
        return tf.exp(value)
    if spline.transform == "logit":
        return tf.sigmoid(value)
    if spline.transform == "log_minus_one":
        return 1.0 + tf.exp(value)
    return value


@dataclass
class ZfitHypothesis:
    """The zfit model of one mass hypothesis and its parameters.

    Attributes
    ----------
    mass : zfit.Parameter
        The mass (GeV), fixed unless floated (``mass.floating = True``).
    shape_parameters : dict of zfit.ComposedParameter
        mu, the widths, alpha_l, alpha_r, gauss_fraction and gauss_ratio (with the second
        Gaussian), c1, fraction and edge, all functions of ``mass``.
    n_sig, n_bkg : zfit.Parameter
        Yields in the window; n_sig may be negative while the total density stays positive.
        With normalisation systematics the signal yield is n_sig prod_j kappa_j(theta_j).
    coefficients : list of zfit.Parameter
        c_1..c_k of the Chebyshev background.
    thetas : list of zfit.Parameter
        The nuisance parameters of the systematic sources (normalisations first, then shapes:
        :class:`bumphunt.stats.Nuisances`), constrained by ``constraints`` (unit Gaussians
        around 0) that the losses include.
    signal, background : zfit PDF
        The normalised signal and background alone; ``model`` is the extended sum.
    obs : zfit.Space
        ``m_gg`` in the fit window.
    shape : SignalShape
        The numba signal shape at the hypothesis mass in the same window (what the scan fits).
    """

    mass: object
    shape_parameters: dict
    n_sig: object
    n_bkg: object
    coefficients: list
    signal: object
    background: object
    model: object
    obs: object
    shape: SignalShape
    thetas: list = field(default_factory=list)
    constraints: list = field(default_factory=list)

    @property
    def order(self) -> int:
        return len(self.coefficients)

    @property
    def free_parameters(self) -> list:
        """n_sig, n_bkg, c_1..c_k, theta_1..: in the order of :class:`bumphunt.stats.HypothesisLikelihood`."""
        return [self.n_sig, self.n_bkg, *self.coefficients, *self.thetas]

    def set_values(self, values) -> None:
        """Set n_sig, n_bkg, c_1..c_k (e.g. ``HypothesisFit.values``)."""
        for parameter, value in zip(self.free_parameters, values, strict=True):
            parameter.set_value(float(value))

    def data(self, x, weights=None):
        """Candidate masses (GeV) in the window as zfit data; the others and NaN are dropped."""
        x, weights = _in_window(x, weights, self.shape)
        return zfit.Data.from_numpy(obs=self.obs, array=x, weights=weights)

    def loss(self, x, weights=None):
        """The extended unbinned -log L of candidate masses ``x`` (GeV), optionally weighted."""
        return zfit.loss.ExtendedUnbinnedNLL(model=self.model, data=self.data(x, weights),
                                             constraints=self.constraints or None)  # fmt: skip

    def binned_loss(self, x, bins: int = 200, weights=None):
        """The extended binned -log L of ``x`` in ``bins`` equal bins of the window, with
        zfit's binned PDF (bin integrals of the model): the cost does not grow with the
        number of candidates."""
        x, weights = _in_window(x, weights, self.shape)
        binned_obs = zfit.Space("m_gg", self.shape.lower, self.shape.upper, binning=bins)
        counts, _ = np.histogram(x, bins=bins, range=(self.shape.lower, self.shape.upper), weights=weights)
        data = zfit.data.BinnedData.from_tensor(space=binned_obs, values=counts.astype(np.float64))
        return zfit.loss.ExtendedBinnedNLL(model=self.model.to_binned(binned_obs), data=data,
                                           constraints=self.constraints or None)  # fmt: skip


def _in_window(x, weights, shape: SignalShape):
    x = np.asarray(x, dtype=np.float64)
    weights = None if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(x) & (x >= shape.lower) & (x <= shape.upper)
    return x[keep], None if weights is None else weights[keep]


def hypothesis_shape(model: ShapeModel, mass: float, *, window_sigmas=None, window_floor: float = 0.0,
                     window_ceiling=None) -> SignalShape:  # fmt: skip
    """The scan's signal shape at ``mass`` (``bumphunt.scan.window_shape``, both
    :meth:`ShapeModel.windowed`): +-window_sigmas resolutions, cut below at ``window_floor``
    and above at ``window_ceiling``.

    Raises
    ------
    BumphuntError
        ``mass`` is outside the model's mass range.
    """
    low, high = model.mass_range
    if not low <= mass <= high:
        raise BumphuntError(f"mass {mass:g} GeV is outside the signal model's mass range ({low:g}-{high:g} GeV)")
    return model.windowed(mass, window_sigmas=window_sigmas, floor=window_floor, ceiling=window_ceiling)


def _mass_parameters(model: ShapeModel, mass, fraction_window: tuple[float, float], prefix: str) -> dict:
    """ComposedParameters of ``mass`` for every shape parameter, as :meth:`ShapeModel.shape`."""
    splines, settings = model.splines, model.settings

    def composed(name, function):
        return zfit.ComposedParameter(f"{prefix}{name}", function, params=[mass])

    params = {"mu": composed("mu", lambda m: m + spline_tensor(splines["mu_offset"], m))}
    for name in SPLINE_PARAMETERS:
        if name in splines and name != "c1":
            params[name] = composed(name, lambda m, s=splines[name]: spline_tensor(s, m))
    params["c1"] = composed("c1", lambda m: tf.clip_by_value(spline_tensor(splines["c1"], m), -1.0, 1.0))
    sqrt_s, edge_width = settings.get("sqrt_s"), settings.get("edge_width", math.nan)
    lower, upper = fraction_window
    if sqrt_s is None:  # no endpoint: K0 = window width, K1 = 0
        params["fraction"] = composed(
            "fraction", lambda m: 1.0 / (1.0 + tf.maximum(spline_tensor(splines["combinatorial_density"], m), 0.0)
                                         * (upper - lower))
        )  # fmt: skip
        return params
    shift = settings.get("edge_shift", 0.0)

    def endpoint(m):
        return tf.sqrt(tf.maximum(sqrt_s**2 - m**2, 0.0)) + shift

    def in_window(m):
        return (lower - endpoint(m)) < EDGE_CUTOFF * edge_width

    def fraction(m):
        density = tf.maximum(spline_tensor(splines["combinatorial_density"], m), 0.0)
        # an endpoint far above the window (e = 1 there) where the scan drops it, to keep K finite
        edge = tf.where(in_window(m), endpoint(m), upper + 50.0 * edge_width)
        k0, k1 = edge_integrals_tf(lower, upper, edge, edge_width, lower, upper)
        c1 = tf.clip_by_value(spline_tensor(splines["c1"], m), -1.0, 1.0)
        return tf.where(in_window(m), 1.0 / (1.0 + density * (k0 + c1 * k1)), tf.constant(1.0, tf.float64))

    params["fraction"] = composed("fraction", fraction)
    # beyond the cut-off the wrong pairings are dropped (f = 1): an endpoint above the window keeps them finite
    params["edge"] = composed("edge", lambda m: tf.where(in_window(m), endpoint(m), upper + 50.0 * edge_width))
    return params


def _signal_pdf(model: ShapeModel, params: dict, shape: SignalShape, obs, extended=None):
    peak = zfit_peak(obs, params, model.settings["n_l"], model.settings["n_r"])
    edge_width = model.settings.get("edge_width", math.nan)
    if "edge" in params and not math.isfinite(edge_width):
        return peak if extended is None else zfit.pdf.SumPDF([peak], extended=extended)  # the endpoint is never reached
    edge = params.get("edge", math.inf)
    combinatorial = zfit_combinatorial(obs, params["c1"], edge, edge_width)
    return zfit.pdf.SumPDF([peak, combinatorial], fracs=[params["fraction"]], extended=extended)


def zfit_hypothesis(
    model: ShapeModel,
    mass: float,
    *,
    order: int = 3,
    window_sigmas: float | None = None,
    window_floor: float = 0.0,
    window_ceiling: float | None = None,
    n_sig: float = 0.0,
    n_bkg: float = 1000.0,
    prefix: str = "",
    systematics=None,
) -> ZfitHypothesis:
    """The extended zfit model N_sig signal + N_bkg Chebyshev of the hypothesis at ``mass``.

    Parameters
    ----------
    model : ShapeModel
        The interpolated signal shapes (``bumphunt.load_shapes``).
    mass : float
        The mass hypothesis (GeV); the window is the scan's there.
    order : int
        Order k of the Chebyshev background (``scan.background_order``).
    window_sigmas, window_floor, window_ceiling : float
        The scan's window: +-window_sigmas resolutions (default: the model's), cut below at
        window_floor and above at window_ceiling (GeV; None: not cut) (``scan.window_*``).
    n_sig, n_bkg : float
        Starting yields.
    prefix : str
        Prefix of the parameter names, to tell several hypotheses apart.
    systematics : Systematics or list of dict, optional
        Systematic sources (``systematics.sources`` of a configuration): the nuisance
        parameters and constraints of the scan's likelihood (:mod:`bumphunt.stats.systematics`);
        the shape sources morph between the peak scaled at theta = -1, 0, +1 as the scan does.

    Raises
    ------
    BumphuntError
        ``mass`` is outside the model's mass range. ``order`` and the window are checked as
        the configuration's ``scan.background_order`` and ``scan.window_*`` are, with the same
        messages (:func:`bumphunt.config.validate_settings`: a
        :class:`~bumphunt.errors.ConfigError`); ``mass``, ``n_sig`` and ``n_bkg`` must be
        finite numbers, ``n_bkg`` >= 0 (:func:`bumphunt.config.validate_arguments`).
    """
    window = {"background_order": order, "window_floor": window_floor, "window_ceiling": window_ceiling}
    if window_sigmas is not None:
        window["window_sigmas"] = window_sigmas
    window = validate_settings("scan", window)
    if order == "auto":
        raise BumphuntError(
            "zfit_hypothesis: argument 'order': 'auto' chooses the order window by window in the scan; "
            "give the order of the background (0-8)"
        )
    numbers = validate_arguments("zfit_hypothesis", {"mass": mass, "n_sig": n_sig, "n_bkg": n_bkg}, ARGUMENTS)
    mass, n_sig, n_bkg = float(numbers["mass"]), float(numbers["n_sig"]), float(numbers["n_bkg"])
    order, window_floor, window_ceiling = window["background_order"], window["window_floor"], window["window_ceiling"]
    window_sigmas = window.get("window_sigmas")
    if systematics is not None and not isinstance(systematics, Systematics):
        systematics = Systematics.from_config(validate_settings("systematics", {"sources": systematics}))
    shape = hypothesis_shape(model, mass, window_sigmas=window_sigmas, window_floor=window_floor,
                             window_ceiling=window_ceiling)  # fmt: skip
    unfloored = model.shape(mass, window_sigmas=window_sigmas)
    low, high = model.mass_range
    mass_parameter = zfit.Parameter(f"{prefix}mass", mass, low, high, floating=False)
    params = _mass_parameters(model, mass_parameter, (unfloored.lower, unfloored.upper), prefix)
    obs = zfit.Space("m_gg", shape.lower, shape.upper)
    n_sig_parameter = zfit.Parameter(f"{prefix}n_sig", n_sig, step_size=1.0)
    n_bkg_parameter = zfit.Parameter(f"{prefix}n_bkg", n_bkg, 0.0, step_size=1.0)
    coefficients = [zfit.Parameter(f"{prefix}c_bkg{k}", 0.0, step_size=0.05) for k in range(1, order + 1)]
    nuisances = model_nuisances(model, shape, mass, systematics)
    thetas = [zfit.Parameter(f"{prefix}theta_{name}", 0.0, -5.0, 5.0, step_size=0.1) for name in nuisances.names]
    signal = _signal_pdf(model, params, shape, obs)
    if coefficients:
        background = zfit.pdf.Chebyshev(obs=obs, coeffs=coefficients)
        background_extended = zfit.pdf.Chebyshev(obs=obs, coeffs=coefficients, extended=n_bkg_parameter)
    else:
        background = zfit.pdf.Uniform(shape.lower, shape.upper, obs=obs)
        background_extended = zfit.pdf.Uniform(shape.lower, shape.upper, obs=obs, extended=n_bkg_parameter)
    signal_yield = _signal_yield(n_sig_parameter, nuisances, thetas[: nuisances.n_norm], prefix)
    if nuisances.n_shape:
        signal_extended = _morphed_signal(model, params, shape, obs, nuisances, thetas[nuisances.n_norm :], prefix,
                                          signal_yield)  # fmt: skip
    else:
        signal_extended = _signal_pdf(model, params, shape, obs, extended=signal_yield)
    constraints = []
    if thetas:
        constraints.append(zfit.constraint.GaussianConstraint(params=thetas, observation=[0.0] * len(thetas),
                                                              uncertainty=[1.0] * len(thetas)))  # fmt: skip
    return ZfitHypothesis(
        mass=mass_parameter,
        shape_parameters=params,
        n_sig=n_sig_parameter,
        n_bkg=n_bkg_parameter,
        coefficients=coefficients,
        signal=signal,
        background=background,
        model=zfit.pdf.SumPDF([signal_extended, background_extended]),
        obs=obs,
        shape=shape,
        thetas=thetas,
        constraints=constraints,
    )


def _signal_yield(n_sig, nuisances, thetas: list, prefix: str):
    """n_sig prod_j kappa_j(theta_j): (1 + size)^theta (log-normal) or 1 + size theta (Gaussian)."""
    if not thetas:
        return n_sig
    kinds, sizes = list(nuisances.norm_kinds), [float(v) for v in nuisances.norm_sizes]

    def scaled(n, *values):
        factor = tf.constant(1.0, tf.float64)
        for kind, size, theta in zip(kinds, sizes, values):
            factor = factor * (tf.exp(theta * math.log1p(size)) if kind == 0 else 1.0 + size * theta)
        return n * factor

    return zfit.ComposedParameter(f"{prefix}n_sig_scaled", scaled, params=[n_sig, *thetas], unpack_params=True)


def _morphed_signal(model, params, shape, obs, nuisances, thetas: list, prefix: str, signal_yield):
    """The signal morphed as the scan's likelihood does: s_0 (1 - sum q_j) + sum_j [s_j+ (theta_j
    + q_j) / 2 + s_j- (q_j - theta_j) / 2], s_j+- the signal with the peak scaled as the
    source's templates, q = theta^2 within +-1 and 2 |theta| - 1 beyond."""
    widths = ("sigma", "sigma_l", "sigma_r")
    pdfs, weights = [_signal_pdf(model, params, shape, obs)], []

    def q(theta):
        return tf.where(tf.abs(theta) <= 1.0, theta * theta, 2.0 * tf.abs(theta) - 1.0)

    for index, ((_, up), theta) in enumerate(zip(nuisances.shape_templates, thetas)):
        position = up.mu / shape.mu - 1.0
        width = up.sigma_l / shape.sigma_l - 1.0
        for sign, name in ((1.0, "up"), (-1.0, "down")):
            factor_mu, factor_width = 1.0 + sign * position, 1.0 + sign * width
            scaled = dict(params)
            scaled["mu"] = zfit.ComposedParameter(f"{prefix}mu_{index}_{name}", lambda m, f=factor_mu: m * f,
                                                  params=[params["mu"]])  # fmt: skip
            for key in widths:
                if key in params:
                    scaled[key] = zfit.ComposedParameter(
                        f"{prefix}{key}_{index}_{name}", lambda v, f=factor_width: v * f, params=[params[key]]
                    )
            pdfs.append(_signal_pdf(model, scaled, shape, obs))
            weights.append(zfit.ComposedParameter(
                f"{prefix}morph_{index}_{name}", lambda t, s=sign: 0.5 * (q(t) + s * t), params=[theta]
            ))  # fmt: skip
    nominal = zfit.ComposedParameter(f"{prefix}morph_nominal", lambda *t: 1.0 - sum(q(v) for v in t), params=thetas,
                                     unpack_params=True)  # fmt: skip
    # SumPDF: the last PDF takes 1 - the others' fractions, which is its own weight
    return zfit.pdf.SumPDF(pdfs, fracs=[nominal, *weights[:-1]], extended=signal_yield)


def zfit_signal_model(model: ShapeModel, mass: float, *, window_sigmas=None, window_floor: float = 0.0, prefix=""):
    """The signal PDF alone at ``mass`` (normalised, not extended), with its mass parameter:
    ``pdf, mass_parameter = zfit_signal_model(model, 1.5)``."""
    hypothesis = zfit_hypothesis(model, mass, order=0, window_sigmas=window_sigmas, window_floor=window_floor,
                                 prefix=prefix)  # fmt: skip
    return hypothesis.signal, hypothesis.mass


def full_nll(loss) -> float:
    """-log L of an extended unbinned zfit loss as :class:`bumphunt.stats.HypothesisLikelihood`
    computes it: zfit's full value without its Stirling approximation of log N_obs! and without
    the normalisation log sqrt(2 pi) of each unit Gaussian constraint (the scan keeps theta^2 / 2)."""
    value = float(loss.value(full=True))
    n = float(sum(np.sum(d.weights) if d.weights is not None else d.num_entries for d in loss.data))
    stirling = n * math.log(n) - n + 0.5 * math.log(2.0 * math.pi * n) if n > 1 else 0.0
    constrained = sum(len(constraint.params) for constraint in loss.constraints)
    return value - stirling - 0.5 * math.log(2.0 * math.pi) * constrained
