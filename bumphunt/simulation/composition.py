"""What the background is made of: expected diphoton candidates per process and mass range.

After the pre-selection every event has three diphoton candidates (the pairs of its three
photons); weighted by the event weight, their masses make the M_gg spectrum the scan fits.
:func:`background_composition` counts them per process in mass ranges (a table) and in fine
bins (``hist`` histograms for a stacked plot, :func:`bumphunt.plotting.plot_composition`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ntuple import BACKGROUND_SAMPLES, diphoton_masses, iterate_ntuple

#: Edges of the mass ranges of the composition table (GeV): the scan range in pieces.
TABLE_EDGES = (0.2, 1.0, 2.0, 4.0, 6.0, 8.0, 9.7)


@dataclass(frozen=True)
class Composition:
    """Expected candidates per background process.

    Attributes
    ----------
    edges : array
        Mass ranges of the table (GeV).
    table : dict of str -> array
        Process -> expected candidates in each range.
    errors : dict of str -> array
        Their statistical errors from the simulation (sqrt of the summed squared weights).
    histograms : dict of str -> hist.Hist
        Process -> weighted M_gg histogram in fine bins (for a stacked plot).
    """

    edges: np.ndarray
    table: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    histograms: dict

    def to_csv(self) -> str:
        """The table as CSV: one row per process, one column per mass range, and the total."""
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\n")
        ranges = [f"{low:g}-{high:g} GeV" for low, high in zip(self.edges[:-1], self.edges[1:])]
        writer.writerow(["process", *ranges, "total"])
        for process, counts in self.table.items():
            writer.writerow([process, *(f"{c:.4g}" for c in counts), f"{counts.sum():.4g}"])
        total = sum(self.table.values())
        writer.writerow(["all", *(f"{c:.4g}" for c in total), f"{total.sum():.4g}"])
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """The table as Markdown, with the share of each process in every range."""
        ranges = [f"{low:g}-{high:g} GeV" for low, high in zip(self.edges[:-1], self.edges[1:])]
        total = sum(self.table.values())
        lines = ["| process | " + " | ".join(ranges) + " |", "| --- |" + " --- |" * len(ranges)]
        for process, counts in self.table.items():
            share = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
            cells = [f"{c:.3g} ({100 * f:.1f} %)" for c, f in zip(counts, share)]
            lines.append(f"| {process} | " + " | ".join(cells) + " |")
        lines.append("| all | " + " | ".join(f"{c:.3g}" for c in total) + " |")
        return "\n".join(lines)


def background_composition(
    paths: dict[str, str | Path],
    *,
    selection=None,
    edges=TABLE_EDGES,
    bins: int = 200,
    mass_range: tuple[float, float] = (0.0, 10.0),
) -> Composition:
    """Expected diphoton candidates per process from pre-selected ntuples.

    Parameters
    ----------
    paths : dict
        Process -> ntuple (of the simulation or the kinematic fit).
    selection : callable, optional
        ``selection(chunk) -> mask`` of events to count (default: all pre-selected events).
    edges : sequence of float
        Mass ranges of the table (GeV).
    bins, mass_range :
        Fine binning of the histograms.
    """
    import hist

    edges = np.asarray(edges, dtype=float)
    axis = hist.axis.Regular(bins, *mass_range, name="m_gg", label=r"$M_{\gamma\gamma}$ [GeV]")
    table, errors, histograms = {}, {}, {}
    for process, path in paths.items():
        counts, squares = np.zeros(len(edges) - 1), np.zeros(len(edges) - 1)
        histogram = hist.Hist(axis, storage=hist.storage.Weight())
        branches = ["photon_E", "photon_theta", "photon_phi", "weight"]
        for chunk in iterate_ntuple(path, branches, step_size=500_000):
            keep = np.ones(len(chunk["weight"]), bool) if selection is None else selection(chunk)
            masses = diphoton_masses(chunk["photon_E"][keep], chunk["photon_theta"][keep], chunk["photon_phi"][keep])
            weights = np.broadcast_to(chunk["weight"][keep][:, None], masses.shape)
            masses, weights = masses.ravel(), weights.ravel()
            counts += np.histogram(masses, bins=edges, weights=weights)[0]
            squares += np.histogram(masses, bins=edges, weights=weights**2)[0]
            histogram.fill(masses, weight=weights)
        table[process], errors[process], histograms[process] = counts, np.sqrt(squares), histogram
    return Composition(edges, table, errors, histograms)


def composition_of_layout(layout, stage: str = "simulation") -> Composition:
    """:func:`background_composition` of the background ntuples ``stage`` has written."""
    paths = {path.stem: path for path in layout.existing_ntuples(stage, BACKGROUND_SAMPLES)}
    return background_composition(paths)
