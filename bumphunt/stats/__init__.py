"""The statistics layer: likelihood -> test statistics and asymptotic formulas -> hypothesis
tests -> look-elsewhere.

:mod:`~bumphunt.stats.likelihood` (the extended signal + Chebyshev likelihood of one mass
hypothesis, numba), :mod:`~bumphunt.stats.asymptotic` (CLs from q~_mu, root finding of
limits), :mod:`~bumphunt.stats.hypotest` (q0, Z, observed and expected CLs limits at one
mass), :mod:`~bumphunt.stats.lookelsewhere` (Gross-Vitells global significance). The scan
calls it at every mass; the counting experiment and the systematics extend it.
"""

from .asymptotic import cls_from_q, solve_increasing
from .hypotest import BANDS, HypothesisResult, evaluate_hypothesis, fit_discovery
from .likelihood import (
    HypothesisData,
    HypothesisFit,
    HypothesisLikelihood,
    background_density,
    chebyshev_basis,
    chebyshev_means,
    hypothesis_data,
)
from .lookelsewhere import GlobalSignificance, global_significance, upcrossings

__all__ = [
    "BANDS",
    "GlobalSignificance",
    "HypothesisData",
    "HypothesisFit",
    "HypothesisLikelihood",
    "HypothesisResult",
    "background_density",
    "chebyshev_basis",
    "chebyshev_means",
    "cls_from_q",
    "evaluate_hypothesis",
    "fit_discovery",
    "global_significance",
    "hypothesis_data",
    "solve_increasing",
    "upcrossings",
]
