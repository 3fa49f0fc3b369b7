"""The mass hypotheses of a scan: steps tied to the resolution, the meson peaks vetoed."""

from __future__ import annotations

import numpy as np

from ..constants import ETA_MASS, ETAPRIME_MASS, PI0_MASS

#: The irreducible e+e- -> P gamma peaks that the scan leaves out.
VETOES = {"pi0": PI0_MASS, "eta": ETA_MASS, "etaprime": ETAPRIME_MASS}


def scan_grid(model, start: float, stop: float, step_sigmas: float, veto_sigmas: float, step_gev: float = 0.0):
    """Mass hypotheses from ``start`` to ``stop`` in steps of ``step_sigmas`` resolutions (or
    of ``step_gev`` when it is positive), without those within ``veto_sigmas`` resolutions of
    a vetoed meson.

    Returns
    -------
    masses : array
    vetoed : dict name -> (low, high)
        The vetoed mass ranges.
    """
    masses, mass = [], start
    while mass <= stop + 1e-12:
        masses.append(mass)
        mass += step_gev if step_gev > 0 else step_sigmas * float(model.resolution(mass))
    masses = np.array(masses)
    vetoed = {}
    keep = np.ones(len(masses), dtype=bool)
    for name, centre in VETOES.items():
        half = veto_sigmas * float(model.resolution(centre))
        vetoed[name] = (centre - half, centre + half)
        keep &= np.abs(masses - centre) >= veto_sigmas * model.resolution(masses)
    return np.round(masses[keep], 7), vetoed
