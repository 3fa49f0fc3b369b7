"""The signal-shape stage: DSCB + Chebyshev fits at every generated mass, interpolated in mass.

:mod:`~bumphunt.shapes.massfit` fits one mass (engines in :mod:`~bumphunt.shapes.engines`),
:mod:`~bumphunt.shapes.splinefit` fits the peak parameters of all masses at once as
splines, :mod:`~bumphunt.shapes.interpolation` builds the
:class:`~bumphunt.models.ShapeModel`, :mod:`~bumphunt.shapes.validation` checks it at
held-out masses, and :mod:`~bumphunt.shapes.stage` runs it all (:func:`run_shapes`). The
model itself, and its file, live in :mod:`bumphunt.models`: the scan reads them from there.
"""

from ..models.signal import core_width
from ..models.splines import held_out_masses
from .interpolation import build_shape_model, smooth
from .massfit import binned_chi2, fit_endpoint_edge, fit_mass, measure_endpoint_edge
from .stage import ShapesSummary, run_shapes, signal_candidates

__all__ = [
    "ShapesSummary",
    "binned_chi2",
    "build_shape_model",
    "core_width",
    "fit_endpoint_edge",
    "fit_mass",
    "held_out_masses",
    "measure_endpoint_edge",
    "run_shapes",
    "signal_candidates",
    "smooth",
]
