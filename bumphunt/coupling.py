"""From a limit on signal events to limits on the ALP cross-section and its coupling g_agg.

sigma_UL = N_UL / (epsilon L) and, with sigma(e+e- -> gamma a) = alpha g^2 / 24 (1 - m^2/s)^3
(:func:`bumphunt.physics.alp_cross_section`, alpha = alpha(0)), g_UL = sqrt(sigma_UL /
sigma(g = 1)). This is the prompt-decay conversion with the efficiency of the generated
ALPs; the exclusion stage will solve it together with the lifetime-dependent efficiency.
"""

from __future__ import annotations

import math

from . import physics


def cross_section_limit(events_limit: float, efficiency: float, luminosity: float) -> float:
    """Cross-section limit (pb) from a limit on signal events, an efficiency and a
    luminosity (pb^-1); NaN where the efficiency is not positive."""
    return events_limit / (efficiency * luminosity) if efficiency > 0 else math.nan


def coupling_limit(cross_section_pb: float, mass: float, sqrt_s: float) -> float:
    """g_agg (GeV^-1) at which the ALP cross-section equals ``cross_section_pb``; NaN for
    a negative or NaN cross-section."""
    sigma_unit = float(physics.alp_cross_section(mass, 1.0, sqrt_s))
    return math.sqrt(cross_section_pb / sigma_unit) if cross_section_pb >= 0 else math.nan


def prompt_exclusion(mass: float, events_limit: float, efficiency: float, luminosity: float, sqrt_s: float) -> dict:
    """The scan table's conversion columns at one mass: ``efficiency``, ``xsec_ul_pb``,
    ``g_ul_gev`` (prompt decays, the efficiency of the generated ALPs)."""
    xsec_ul = cross_section_limit(events_limit, efficiency, luminosity)
    return {"efficiency": efficiency, "xsec_ul_pb": xsec_ul, "g_ul_gev": coupling_limit(xsec_ul, mass, sqrt_s)}
