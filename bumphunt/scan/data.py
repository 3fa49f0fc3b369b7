"""What the scan fits: candidates from ntuples, pseudo-data, or a user's array or histogram.

Every source becomes a :class:`Spectrum`: sorted candidate masses (unbinned), or the bin
centres of a histogram with their counts (binned; for weighted histograms also the
variances of the counts). The selection and the mass variable come from the signal model
the scan uses, so data and signal shapes are always selected alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cuts import branches_used, evaluate_cut
from ..errors import BumphuntError, NtupleError
from ..layout import OutputLayout
from ..ntuple import BACKGROUND_SAMPLES, iterate_ntuple, read_metadata, read_ntuple


@dataclass(frozen=True)
class Spectrum:
    """The diphoton masses the scan fits.

    Unbinned: ``x`` the sorted candidate masses, no weights. Binned: ``x`` the bin centres,
    ``weights`` the counts, ``edges`` the bin edges, and for weighted histograms
    ``variances`` the variances of the counts.
    """

    x: np.ndarray
    weights: np.ndarray | None = None
    variances: np.ndarray | None = None
    edges: np.ndarray | None = None

    @property
    def binned(self) -> bool:
        return self.edges is not None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def n_events(self) -> float:
        return float(len(self.x) if self.weights is None else self.weights.sum())

    def to_hist(self, bins: int | None = None, *, range: tuple[float, float] | None = None):
        """The spectrum as a one-dimensional ``hist.Hist`` of the mass (``mplhep.histplot``
        draws it): a binned spectrum keeps its bins; candidates are binned in ``bins`` bins of
        ``range`` (default 1000 bins over their span). Weighted when the spectrum has variances."""
        import hist

        if self.binned:
            axis = hist.axis.Variable(self.edges, name="m_gg", label=r"$M_{\gamma\gamma}$ [GeV]")
            weighted = self.variances is not None
            histogram = hist.Hist(axis, storage=hist.storage.Weight() if weighted else hist.storage.Double())
            if weighted:
                histogram.view().value, histogram.view().variance = self.weights, self.variances
            else:
                histogram.view()[...] = self.weights
            return histogram
        low, high = range if range is not None else (float(self.x.min()), float(self.x.max()))
        axis = hist.axis.Regular(bins or 1000, low, high, name="m_gg", label=r"$M_{\gamma\gamma}$ [GeV]")
        return hist.Hist(axis).fill(self.x)

    def window(self, lower: float, upper: float) -> Spectrum:
        """The part of the spectrum in [lower, upper] (the edges of a binned one kept whole)."""
        low, high = np.searchsorted(self.x, [lower, upper])
        if not self.binned:
            return Spectrum(self.x[low:high].copy())
        return Spectrum(
            self.x[low:high].copy(),
            self.weights[low:high].copy(),
            None if self.variances is None else self.variances[low:high].copy(),
            self.edges[low : high + 1].copy(),
        )


def candidates(path, selection: str, mass_variable: str, *, weights_to_counts=None) -> np.ndarray:
    """Finite diphoton candidates of the events of an ntuple passing ``selection``.

    With ``weights_to_counts`` (a numpy Generator) each event enters Poisson(weight) times:
    a pseudo-data set with the expected number of events.
    """
    needed = {mass_variable} | branches_used(selection)
    if weights_to_counts is not None:
        needed.add("weight")
    pieces = []
    for chunk in iterate_ntuple(path, sorted(needed), step_size=500_000):
        keep = evaluate_cut(selection, chunk, len(chunk[mass_variable]))
        values = chunk[mass_variable][keep]
        if weights_to_counts is not None:
            values = np.repeat(values, weights_to_counts.poisson(chunk["weight"][keep]), axis=0)
        pieces.append(values.ravel())
    values = np.concatenate(pieces) if pieces else np.array([])
    return values[np.isfinite(values)]


def pseudo_data(
    layout: OutputLayout,
    selection: str,
    mass_variable: str,
    *,
    seed: int,
    inject_mass: float | None = None,
    inject_events: float = 0.0,
) -> np.ndarray:
    """Background-only (or signal-injected) pseudo-data from the fitted background samples.

    Every background event of ``layout``'s kinematic-fit ntuples enters Poisson(weight)
    times, so the pseudo-data holds the expected numbers at the configured luminosity; with
    ``inject_mass``, Poisson(inject_events) signal events of the nearest generated ALP mass
    are added. Returns the sorted candidates.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    paths = layout.existing_ntuples("kinfit", BACKGROUND_SAMPLES)
    if not paths:
        raise NtupleError(f"{layout.kinfit_dir}: no background ntuples after the kinematic fit (run `bumphunt kinfit`)")
    pieces = [candidates(path, selection, mass_variable, weights_to_counts=rng) for path in paths]
    if inject_mass is not None and inject_events > 0:
        alp = layout.ntuple("kinfit", "alp")
        pieces.append(injected_signal(alp, selection, mass_variable, rng, inject_mass, inject_events))
    return np.sort(np.concatenate(pieces))


def injected_signal(path, selection: str, mass_variable: str, rng, mass: float, n_produced: float) -> np.ndarray:
    """Candidates of Poisson-many ALP events at the generated mass nearest ``mass``.

    ``n_produced`` counts ALPs before the detector: the pre-selected events stored at that
    mass are drawn with the mean n_produced x (stored / generated), then the selection cut.
    """
    data = read_ntuple(path, sorted({"gen_mass", mass_variable} | branches_used(selection)))
    nearest = float(data["gen_mass"][np.argmin(np.abs(data["gen_mass"] - mass))])
    generated = {round(m["mass"], 9): m["n_generated"] for m in read_metadata(path)["masses"]}[round(nearest, 9)]
    stored = np.flatnonzero(data["gen_mass"] == nearest)
    n_draw = min(rng.poisson(n_produced * len(stored) / generated), len(stored))
    events = rng.choice(stored, size=n_draw, replace=False)
    keep = evaluate_cut(selection, {k: v[events] for k, v in data.items()}, len(events))
    values = data[mass_variable][events][keep].ravel()
    return values[np.isfinite(values)]


def spectrum_from(data, *, selection: str = "", mass_variable: str = "m_gg_fit") -> Spectrum:
    """A :class:`Spectrum` from what a user hands the scan.

    Parameters
    ----------
    data : array, path or hist.Hist
        Candidate masses (GeV; any shape, NaN dropped); a ROOT ntuple (``mass_variable`` of
        the events passing ``selection``); or a one-dimensional histogram of the mass, whose
        counts are fitted binned (with ``Weight`` storage, the variances of the counts enter
        through the scaled-Poisson approximation).
    """
    if isinstance(data, (str, Path)):
        return Spectrum(np.sort(candidates(data, selection, mass_variable)))
    if hasattr(data, "axes") and hasattr(data, "values"):
        return _histogram_spectrum(data)
    values = np.asarray(data, dtype=np.float64).ravel()
    return Spectrum(np.sort(values[np.isfinite(values)]))


def _histogram_spectrum(histogram) -> Spectrum:
    if len(histogram.axes) != 1:
        raise BumphuntError(f"the scan takes a one-dimensional histogram of the mass, got {len(histogram.axes)} axes")
    edges = np.asarray(histogram.axes[0].edges, dtype=np.float64)
    counts = np.asarray(histogram.values(flow=False), dtype=np.float64)
    variances = histogram.variances(flow=False)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise BumphuntError("the histogram holds negative or non-finite counts")
    weighted = variances is not None and not np.allclose(variances, counts)
    return Spectrum(
        0.5 * (edges[1:] + edges[:-1]),
        counts,
        np.asarray(variances, dtype=np.float64) if weighted else None,
        edges,
    )
