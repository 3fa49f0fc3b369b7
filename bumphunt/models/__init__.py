"""The signal model shared by the stages: densities (numba), splines in mass, the shape file.

The shape stage fits and writes a :class:`ShapeModel`; the scan and the user read it with
:meth:`ShapeModel.load` and evaluate :class:`SignalShape` at any mass. The same model in
zfit: :func:`~bumphunt.models.zfit_pdfs.zfit_signal_pdf` at one fixed shape, and
:func:`zfit_hypothesis` (signal + background of a mass hypothesis, the shape parameters
functions of a mass parameter), loaded on first use so that zfit and TensorFlow stay out of
``import bumphunt``.
"""

import importlib

from .signal import MassFit, ShapeModel, SignalShape, peak_width
from .splines import ParameterSpline

_ZFIT_NAMES = ("ZfitHypothesis", "full_nll", "zfit_hypothesis", "zfit_signal_model")

__all__ = ["MassFit", "ParameterSpline", "ShapeModel", "SignalShape", "peak_width", *_ZFIT_NAMES]


def __getattr__(name: str):
    if name in _ZFIT_NAMES:
        return getattr(importlib.import_module(".zfit_hypothesis", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
