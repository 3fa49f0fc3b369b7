"""The exclusion stage: cross-section and g_agg limits, self-consistent with the ALP lifetime.

:func:`~bumphunt.exclusion.stage.run_exclusion` converts a scan's limits;
:func:`~bumphunt.exclusion.stage.published_limit` is the Belle II 2020 curve it is drawn next to,
:func:`~bumphunt.exclusion.existing.existing_limits` every published limit of the sensitivity
figure (:func:`~bumphunt.exclusion.plots.plot_sensitivity`: Belle II 2020, BESIII 2022, LEP);
:func:`~bumphunt.exclusion.luminosity.luminosity_table` and
:func:`~bumphunt.exclusion.plots.plot_luminosity_study` compare results at several luminosities.
The conversion itself lives in :mod:`bumphunt.coupling`.
"""

from .existing import EXISTING_LIMITS, ExistingLimit, existing_limits, read_existing_limit
from .luminosity import LUMINOSITY_COLUMNS, LUMINOSITY_MASSES, LuminosityStudy, expected_limit_at, luminosity_table
from .plots import plot_luminosity_study, plot_sensitivity, save_sensitivity
from .stage import COLUMNS, ExclusionResult, ExclusionSummary, exclusion_row, published_limit, run_exclusion

__all__ = [
    "COLUMNS", "EXISTING_LIMITS", "LUMINOSITY_COLUMNS", "LUMINOSITY_MASSES", "ExclusionResult", "ExclusionSummary",
    "ExistingLimit", "LuminosityStudy", "exclusion_row", "existing_limits", "expected_limit_at", "luminosity_table",
    "plot_luminosity_study", "plot_sensitivity", "published_limit", "read_existing_limit", "run_exclusion",
    "save_sensitivity",
]  # fmt: skip
