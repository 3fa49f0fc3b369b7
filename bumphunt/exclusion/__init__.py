"""The exclusion stage: cross-section and g_agg limits, self-consistent with the ALP lifetime.

:func:`~bumphunt.exclusion.stage.run_exclusion` converts a scan's limits;
:func:`~bumphunt.exclusion.stage.published_limit` is the Belle II 2020 curve it is drawn next to.
The conversion itself lives in :mod:`bumphunt.coupling`.
"""

from .stage import COLUMNS, ExclusionResult, ExclusionSummary, exclusion_row, published_limit, run_exclusion

__all__ = ["COLUMNS", "ExclusionResult", "ExclusionSummary", "exclusion_row", "published_limit", "run_exclusion"]
