"""The signal model shared by the stages: densities (numba), splines in mass, the shape file.

The shape stage fits and writes a :class:`ShapeModel`; the scan and the user read it with
:meth:`ShapeModel.load` and evaluate :class:`SignalShape` at any mass. The same model in
zfit: :func:`~bumphunt.models.zfit_pdfs.zfit_signal_pdf`.
"""

from .signal import MassFit, ShapeModel, SignalShape, peak_width
from .splines import ParameterSpline

__all__ = ["MassFit", "ParameterSpline", "ShapeModel", "SignalShape", "peak_width"]
