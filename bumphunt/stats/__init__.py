"""The statistics layer: likelihood -> test statistics and asymptotic formulas -> hypothesis
tests -> look-elsewhere.

:mod:`~bumphunt.stats.likelihood` (the extended signal + Chebyshev likelihood of one mass
hypothesis, numba), :mod:`~bumphunt.stats.asymptotic` (CLs from q~_mu, root finding of
limits), :mod:`~bumphunt.stats.hypotest` (q0, Z, observed and expected CLs limits at one
mass), :mod:`~bumphunt.stats.lookelsewhere` (Gross-Vitells global significance),
:mod:`~bumphunt.stats.counting` (the single-bin on/off likelihood of a counting experiment:
closed-form profile, vectorised toys, the same asymptotic formulas),
:mod:`~bumphunt.stats.systematics` (systematic sources as constrained nuisance parameters).
The scan calls it at every mass, the counting experiment at every window.
"""

from .asymptotic import band_target, cls_from_q, expected_limits, gaussian_limit, pvalues_from_q, solve_increasing
from .counting import (
    AsymptoticCalculator,
    CountingData,
    CountingModel,
    CountingPValues,
    ToyCalculator,
    counting_limits,
    counting_pvalues,
    counting_upper_limit,
    discovery_pvalues,
    evaluate_counting,
    expected_bands,
)
from .hypotest import BANDS, HypothesisResult, evaluate_hypothesis, fit_discovery
from .likelihood import (
    NO_NUISANCES,
    HypothesisData,
    HypothesisFit,
    HypothesisLikelihood,
    Nuisances,
    background_density,
    chebyshev_basis,
    chebyshev_means,
    hypothesis_data,
)
from .lookelsewhere import GlobalSignificance, global_significance, upcrossings
from .systematics import Source, Systematics, nuisances_at

__all__ = [
    "BANDS",
    "NO_NUISANCES",
    "Nuisances",
    "Source",
    "Systematics",
    "nuisances_at",
    "AsymptoticCalculator",
    "CountingData",
    "CountingModel",
    "CountingPValues",
    "ToyCalculator",
    "band_target",
    "counting_limits",
    "counting_pvalues",
    "counting_upper_limit",
    "discovery_pvalues",
    "evaluate_counting",
    "expected_bands",
    "expected_limits",
    "gaussian_limit",
    "pvalues_from_q",
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
