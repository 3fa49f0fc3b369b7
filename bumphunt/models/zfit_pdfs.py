"""The signal model in zfit, for fits of one's own and as the reference of the numba densities.

zfit and TensorFlow are imported only when one of these functions is called.
"""

from __future__ import annotations

import functools
import math

from .signal import SignalShape


def zfit_peak(obs, params, n_l, n_r):
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


def zfit_combinatorial(obs, c1, edge, edge_width):
    """The wrong pairings in zfit: (1 + c1 x') times the smeared endpoint, normalised in closed form.

    ``c1``, ``edge`` and ``edge_width`` may be numbers or zfit parameters; a number ``edge``
    of +inf gives the plain first-order Chebyshev (no endpoint).
    """
    import zfit

    if isinstance(edge, (int, float)) and not math.isfinite(edge):
        return zfit.pdf.Chebyshev(obs=obs, coeffs=[c1])
    return _wrong_pairings_class()(c1=c1, edge=edge, width=edge_width, obs=obs)


def edge_integrals_tf(lower, upper, edge, width, window_lower, window_upper):
    """:func:`bumphunt.models.dscb.edge_integrals` in TensorFlow, over any [lower, upper] inside
    the window whose Chebyshev variable x' is used: K0 of e(x) and K1 of x' e(x)."""
    import tensorflow as tf

    scale = math.sqrt(2.0) * width

    def antiderivatives(z):
        gauss = tf.exp(-z * z) / math.sqrt(math.pi)
        erfc = tf.math.erfc(z)
        return z * erfc - gauss, 0.5 * z * z * erfc - 0.5 * z * gauss + 0.25 * tf.math.erf(z)

    f0_low, f1_low = antiderivatives((lower - edge) / scale)
    f0_high, f1_high = antiderivatives((upper - edge) / scale)
    a = 2.0 * (edge - window_lower) / (window_upper - window_lower) - 1.0
    b = 2.0 * scale / (window_upper - window_lower)
    k0 = 0.5 * scale * (f0_high - f0_low)
    k1 = 0.5 * scale * (a * (f0_high - f0_low) + b * (f1_high - f1_low))
    return k0, k1


@functools.cache
def _wrong_pairings_class():
    """A zfit PDF (1 + c1 x') erfc((x - edge) / (sqrt(2) width)) / 2, x' in [-1, 1] on its space,
    with its integral over any range in closed form (:func:`edge_integrals_tf`)."""
    import tensorflow as tf
    import zfit

    class WrongPairings(zfit.pdf.ZPDF):
        _PARAMS = ["c1", "edge", "width"]
        _N_OBS = 1

        def _unnormalized_pdf(self, x):
            x = zfit.z.unstack_x(x)
            lower, upper = self.space.v1.lower, self.space.v1.upper
            scaled = 2.0 * (x - lower) / (upper - lower) - 1.0
            edge, width = self.params["edge"], self.params["width"]
            return (1.0 + self.params["c1"] * scaled) * 0.5 * tf.math.erfc((x - edge) / (math.sqrt(2.0) * width))

    def integral(limits, norm, params, model):
        del norm
        lower, upper = limits.v1.lower, limits.v1.upper
        k0, k1 = edge_integrals_tf(lower, upper, params["edge"], params["width"], *model.space.v1.limits)
        return k0 + params["c1"] * k1

    any_range = zfit.Space(axes=0, limits=(zfit.Space.ANY_LOWER, zfit.Space.ANY_UPPER))
    WrongPairings.register_analytic_integral(func=integral, limits=any_range)
    return WrongPairings


def peak_constants(shape: SignalShape) -> dict:
    """The peak parameters of ``shape`` in the form :func:`zfit_peak` takes."""
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
    peak = zfit_peak(obs, peak_constants(shape), shape.n_l, shape.n_r)
    combinatorial = zfit_combinatorial(obs, shape.c1, shape.edge, shape.edge_width)
    return zfit.pdf.SumPDF([peak, combinatorial], fracs=[shape.fraction], extended=n_sig)
