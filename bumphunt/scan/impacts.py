"""The impact of each systematic source on the limits: at a few mass hypotheses the limits are
recomputed with statistics only and with each source left out in turn."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_text
from ..results import rows_csv
from ..systematics import Systematics

#: Limits kept per variant: observed and median expected.
LIMITS = ("ul_obs", "ul_exp")


@dataclass(frozen=True)
class ImpactTable:
    """Limits per mass with all sources, with none (``stat``) and without each source.

    ``rows`` hold ``mass``, ``fit_status`` and ``<limit>_<variant>`` for every limit of
    :data:`LIMITS` and variant ``all``, ``stat`` and ``without_<source>``.
    """

    sources: tuple[str, ...]
    rows: list[dict]

    @property
    def columns(self) -> list[str]:
        variants = ["all", "stat", *(f"without_{name}" for name in self.sources)]
        return ["mass", "fit_status", *(f"{limit}_{variant}" for variant in variants for limit in LIMITS)]

    def relative_impact(self, source: str | None = None, limit: str = "ul_exp") -> np.ndarray:
        """UL(all) / UL(without ``source``) - 1 per mass; None: UL(all) / UL(stat) - 1, the
        total impact of the systematics."""
        variant = "stat" if source is None else f"without_{source}"
        return np.array([row[f"{limit}_all"] / row[f"{limit}_{variant}"] - 1.0 for row in self.rows])

    def write(self, path: str | Path) -> Path:
        return atomic_write_text(path, rows_csv(self.rows, self.columns))


def impact_masses(masses, usable: np.ndarray, start: float, stop: float, step: float) -> list[float]:
    """The ``usable`` scanned hypotheses (a mask) nearest to start, start + step, ... (each once)."""
    masses = np.asarray(masses)[usable]
    if step <= 0.0 or len(masses) == 0:
        return []
    targets = np.arange(start, stop + 0.5 * step, step)
    nearest = {float(masses[np.argmin(np.abs(masses - t))]) for t in targets}
    return sorted(nearest)


def impact_variants(systematics: Systematics) -> dict[str, Systematics]:
    """``all``, ``stat`` and ``without_<source>`` for every source."""
    variants = {"all": systematics, "stat": Systematics()}
    variants.update({f"without_{name}": systematics.without([name]) for name in systematics.names})
    return variants


def impact_table(systematics: Systematics, masses, evaluate) -> ImpactTable:
    """The limits of every variant at ``masses``; ``evaluate(masses, systematics)`` returns the
    scan rows (dicts with ``mass``, ``fit_status`` and the limits) of one variant."""
    rows = {m: {"mass": m, "fit_status": "ok"} for m in masses}
    for variant, sources in impact_variants(systematics).items():
        for row in evaluate(masses, sources):
            target = rows[row["mass"]]
            if row["fit_status"] != "ok":
                target["fit_status"] = f"{variant}: {row['fit_status']}"
            for limit in LIMITS:
                target[f"{limit}_{variant}"] = float(row.get(limit, math.nan))
    return ImpactTable(systematics.names, [rows[m] for m in masses])
