"""The mass hypotheses of a scan: steps tied to the resolution, the meson peaks vetoed."""

from __future__ import annotations

import numpy as np

from ..constants import ETA_MASS, ETAPRIME_MASS, PI0_MASS
from ..errors import BumphuntError

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

    Raises
    ------
    BumphuntError
        No mass hypothesis is left (the range lies inside a veto), naming the range and the veto.
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
    if not keep.any():
        _refuse_empty(model, masses, start, stop, veto_sigmas, vetoed)
    return np.round(masses[keep], 7), vetoed


def _refuse_empty(model, masses: np.ndarray, start: float, stop: float, veto_sigmas: float, vetoed: dict) -> None:
    """The one-line reason why a range holds no mass hypothesis: the vetoes that cover it."""
    where = f"no mass hypothesis between {start:g} and {stop:g} GeV"
    if not len(masses):
        raise BumphuntError(f"{where}: start is above stop")
    covering = [name for name, centre in VETOES.items()
                if np.any(np.abs(masses - centre) < veto_sigmas * model.resolution(masses))]  # fmt: skip
    ranges = ", ".join(f"{vetoed[name][0]:.4f}-{vetoed[name][1]:.4f}" for name in covering)
    raise BumphuntError(
        f"{where}: every one lies in the {' and '.join(covering)} veto ({ranges} GeV, scan.veto_sigmas = "
        f"{veto_sigmas:g}); scan a wider range or lower scan.veto_sigmas"
    )
