"""The look-elsewhere effect of a scan: Gross and Vitells, EPJC 70 (2010) 525.

p_global = p_local + <N(u0)> exp(-(Z^2 - u0^2) / 2), with <N(u0)> the mean number of
upcrossings of the local significance above a reference level u0 along the scan, counted
on background-only pseudo-experiments.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


def upcrossings(z: np.ndarray, level: float) -> int:
    """Number of times the local significance crosses ``level`` from below along the scan."""
    above = np.nan_to_num(z, nan=-np.inf) > level
    return int(np.sum(~above[:-1] & above[1:]))


@dataclass(frozen=True)
class GlobalSignificance:
    """The largest local excess of a scan and its global significance."""

    z_local_max: float
    mass: float
    p_local: float = math.nan
    reference_level: float = math.nan
    mean_upcrossings: float = math.nan
    upcrossings_per_toy: tuple[int, ...] = ()
    p_global: float = math.nan
    z_global: float = math.nan

    def to_dict(self) -> dict:
        return {**asdict(self), "upcrossings_per_toy": list(self.upcrossings_per_toy)}


def global_significance(z: np.ndarray, masses: np.ndarray, level: float, upcrossing_counts) -> GlobalSignificance:
    """Global significance of the largest local Z of a scan.

    Parameters
    ----------
    z, masses : arrays
        Local significance along the scan, and its mass hypotheses.
    level : float
        Reference level u0 of the upcrossings.
    upcrossing_counts : sequence of int
        Upcrossings of u0 in each background-only pseudo-experiment (or the observed scan).
    """
    z = np.asarray(z, dtype=float)
    if not np.any(np.isfinite(z)):
        return GlobalSignificance(math.nan, math.nan)
    best = int(np.nanargmax(z))
    z_max = float(z[best])
    mean_upcrossings = float(np.mean(upcrossing_counts))
    p_local = float(stats.norm.sf(z_max))
    p_global = min(1.0, p_local + mean_upcrossings * math.exp(-(z_max**2 - level**2) / 2.0))
    return GlobalSignificance(
        z_local_max=z_max,
        mass=float(masses[best]),
        p_local=p_local,
        reference_level=level,
        mean_upcrossings=mean_upcrossings,
        upcrossings_per_toy=tuple(int(c) for c in upcrossing_counts),
        p_global=p_global,
        z_global=float(max(stats.norm.isf(p_global), 0.0)),
    )
