"""From a limit on signal events to limits on the ALP cross-section and its coupling g_agg.

The expected signal of a coupling g at mass m is

    N(g) = L sigma(m, g) eps(m, c tau(m, g)),   sigma = alpha g^2 / 24 (1 - m^2/s)^3,
    c tau = hbar c / Gamma,   Gamma(a -> gamma gamma) = g^2 m^3 / (64 pi)

(:mod:`bumphunt.physics`, alpha = alpha(0), BR(a -> gamma gamma) = 1; Dolan et al., JHEP 12
(2017) 094). A coupling is excluded where N(g) > N_UL. With a prompt efficiency N grows as
g^2 and g_UL = sqrt(N_UL / (L eps sigma(g = 1))); with the lifetime the efficiency changes
with g, and :func:`coupling_limit` solves N(g) = N_UL for every crossing on a logarithmic
grid of g, refined by Brent's method. The lowest crossing where N rises through N_UL is the
limit quoted; an excluded region that closes again is reported as an island.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy.optimize import brentq

from . import physics

#: The status of a limit whose crossing lies where the efficiency is unknown.
REACH = "beyond the simulated lifetime reach"
#: The statuses of a limit that is quoted (a finite ``coupling``); every other status says why not.
QUOTED = ("ok", "island")
#: The status where N(g) < N_UL at every coupling whose efficiency is known.
NOT_EXCLUDED = "no coupling excluded"
#: The status where the efficiency is unknown at every coupling searched.
NO_EFFICIENCY = "no efficiency at any coupling"
#: The status where N_UL is NaN or not positive.
NO_LIMIT = "no limit"
#: The couplings searched for crossings (GeV^-1) and the grid's points per decade.
COUPLING_RANGE = (1e-7, 1.0)
POINTS_PER_DECADE = 30


def cross_section_limit(events_limit: float, efficiency: float, luminosity: float) -> float:
    """Cross-section limit (pb) from a limit on signal events, an efficiency and a
    luminosity (pb^-1); NaN where the efficiency is not positive."""
    return events_limit / (efficiency * luminosity) if efficiency > 0 else math.nan


def coupling_from_cross_section(cross_section_pb: float, mass: float, sqrt_s: float) -> float:
    """g_agg (GeV^-1) at which the ALP cross-section equals ``cross_section_pb``; NaN for
    a negative or NaN cross-section."""
    sigma_unit = float(physics.alp_cross_section(mass, 1.0, sqrt_s))
    return math.sqrt(cross_section_pb / sigma_unit) if cross_section_pb >= 0 else math.nan


@dataclass(frozen=True)
class CouplingLimit:
    """The coupling limit at one mass for one limit on signal events.

    Attributes
    ----------
    coupling : float
        The lowest excluded coupling (GeV^-1): the limit quoted; NaN when none is excluded.
    excluded : list of (float, float)
        Every excluded interval of g (the upper end ``inf`` when it stays excluded up to the
        top of :data:`COUPLING_RANGE`).
    efficiency, ctau_cm, cross_section_pb : float
        At ``coupling``: the efficiency, the proper decay length and the cross-section limit
        N_UL / (eps L).
    status : str
        "ok"; "island" (an excluded interval closes); otherwise why ``coupling`` is NaN or not
        the limit: "no coupling excluded" (N < N_UL wherever the efficiency is known, e.g.
        ALPs that decay beyond the detector); "beyond the simulated lifetime reach" (the
        efficiency is unknown where the crossing would be); "no efficiency at any coupling";
        "no limit" (N_UL is NaN); "excluded down to ... the smallest coupling searched".
    """

    coupling: float
    excluded: list[tuple[float, float]]
    efficiency: float
    ctau_cm: float
    cross_section_pb: float
    status: str


def expected_signal(coupling, mass: float, luminosity: float, sqrt_s: float, efficiency: Callable) -> np.ndarray:
    """N(g) = L sigma(m, g) eps(m, c tau(m, g)); ``efficiency(ctau_cm)`` takes an array of c tau."""
    coupling = np.asarray(coupling, dtype=np.float64)
    ctau = physics.alp_ctau(mass, coupling)
    return luminosity * physics.alp_cross_section(mass, coupling, sqrt_s) * np.asarray(efficiency(ctau))


def coupling_limit(events_limit: float, mass: float, luminosity: float, sqrt_s: float, efficiency: Callable,
                   *, coupling_range: tuple[float, float] = COUPLING_RANGE) -> CouplingLimit:  # fmt: skip
    """Solve N(g) = ``events_limit`` for every crossing (see the module docstring).

    Parameters
    ----------
    events_limit : float
        Upper limit on signal events.
    mass, luminosity, sqrt_s : float
        GeV, pb^-1, GeV.
    efficiency : callable
        ``efficiency(ctau_cm)`` for an array of proper decay lengths (cm): the efficiency at
        ``mass``, NaN where it is unknown.
    coupling_range : (float, float)
        Couplings searched (GeV^-1).
    """
    nan = math.nan
    if not math.isfinite(events_limit) or events_limit <= 0:
        return CouplingLimit(nan, [], nan, nan, nan, NO_LIMIT)
    low, high = coupling_range
    grid = np.geomspace(low, high, int(round(math.log10(high / low) * POINTS_PER_DECADE)) + 1)
    excess = expected_signal(grid, mass, luminosity, sqrt_s, efficiency) - events_limit

    def excess_at(g: float) -> float:
        return float(expected_signal(np.array([g]), mass, luminosity, sqrt_s, efficiency)[0]) - events_limit

    known = np.isfinite(excess)
    crossings: list[tuple[float, bool]] = []  # (g, rising)
    unknown_at_crossing = False
    for i in range(len(grid) - 1):
        a, b = excess[i], excess[i + 1]
        if not (known[i] and known[i + 1]):
            # an edge of the known region next to an excluded point hides a crossing
            unknown_at_crossing |= (known[i] and a > 0) or (known[i + 1] and b > 0)
            continue
        if (a > 0) != (b > 0):
            g = brentq(excess_at, grid[i], grid[i + 1], xtol=1e-14 * grid[i], rtol=1e-12)
            crossings.append((g, b > 0))
    excluded, start = [], grid[0] if known[0] and excess[0] > 0 else None
    for g, rising in crossings:
        if rising:
            start = g
        elif start is not None:
            excluded.append((start, g))
            start = None
    if start is not None:
        excluded.append((start, math.inf))
    if not excluded:
        status = NO_EFFICIENCY if not known.any() else REACH if unknown_at_crossing else NOT_EXCLUDED
        return CouplingLimit(nan, [], nan, nan, nan, status)
    g_limit = excluded[0][0]
    ctau = float(physics.alp_ctau(mass, g_limit))
    eps = float(np.asarray(efficiency(np.array([ctau])))[0])
    status = "island" if any(math.isfinite(high) for _, high in excluded) else "ok"
    if g_limit == grid[0]:
        status = f"excluded down to {low:g} GeV^-1, the smallest coupling searched"
    if unknown_at_crossing:
        status = REACH
    return CouplingLimit(g_limit, excluded, eps, ctau, cross_section_limit(events_limit, eps, luminosity), status)


def prompt_coupling_limit(events_limit: float, mass: float, efficiency: float, luminosity: float,
                          sqrt_s: float) -> float:  # fmt: skip
    """The closed form for a prompt ALP (an efficiency that does not depend on g):
    g_UL = sqrt(N_UL / (eps L sigma(g = 1)))."""
    return coupling_from_cross_section(cross_section_limit(events_limit, efficiency, luminosity), mass, sqrt_s)


def limit_columns(events_limit: float, mass: float, luminosity: float, sqrt_s: float, efficiency) -> dict:
    """The conversion columns of a results table at one mass: ``efficiency`` (at the limit),
    ``xsec_ul_pb``, ``g_ul_gev``.

    ``efficiency``: a number (prompt decays, :func:`prompt_coupling_limit`) or a callable of
    c tau (cm), solved self-consistently (:func:`coupling_limit`).
    """
    if not callable(efficiency):
        xsec = cross_section_limit(events_limit, efficiency, luminosity)
        coupling = coupling_from_cross_section(xsec, mass, sqrt_s)
        return {"efficiency": efficiency, "xsec_ul_pb": xsec, "g_ul_gev": coupling}
    limit = coupling_limit(events_limit, mass, luminosity, sqrt_s, efficiency)
    return {"efficiency": limit.efficiency, "xsec_ul_pb": limit.cross_section_pb, "g_ul_gev": limit.coupling}


def prompt_exclusion(mass: float, events_limit: float, efficiency: float, luminosity: float, sqrt_s: float) -> dict:
    """:func:`limit_columns` for prompt decays (the efficiency of the generated ALPs)."""
    return limit_columns(events_limit, mass, luminosity, sqrt_s, efficiency)


#: The digitised published limit in the package's data folder.
PUBLISHED_FILE = "belle2_2020_alp_gagg_limit.csv"


def published_limit() -> tuple[np.ndarray, np.ndarray, str]:
    """The published Belle II 2020 observed g_agg limit (PRL 125 (2020) 161806), digitised.

    Returns
    -------
    mass (GeV), g_agg (GeV^-1) in plot order (the curve is not monotonic in mass), and the
    source lines of the file.
    """
    text = resources.files("bumphunt.data").joinpath(PUBLISHED_FILE).read_text()
    source = "\n".join(line[2:] for line in text.splitlines() if line.startswith("#"))
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    return (np.array([float(r["mass_gev"]) for r in rows]), np.array([float(r["g_agg_gev_inv"]) for r in rows]),
            source)  # fmt: skip
