"""The signal model in zfit, for fits of one's own and as the reference of the numba densities.

zfit and TensorFlow are imported only when one of these functions is called.
"""

from __future__ import annotations

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


def zfit_combinatorial(obs, c1, edge: float, edge_width: float):
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
