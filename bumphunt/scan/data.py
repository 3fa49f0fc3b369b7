"""What the scan fits: candidates from ntuples, pseudo-data, or a user's array or histogram.

Every source becomes a :class:`Spectrum`: sorted candidate masses (unbinned), or the bin
centres of a histogram with their counts (binned; for weighted histograms also the
variances of the counts). The selection and the mass variable come from the signal model
the scan uses, so data and signal shapes are always selected alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ..cuts import branches_used, evaluate_cut
from ..errors import BumphuntError, NtupleError
from ..layout import OutputLayout
from ..ntuple import BACKGROUND_SAMPLES, read_metadata, read_ntuple, read_selected

log = logging.getLogger(__name__)


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


def candidates(path, selection: str, mass_variable: str, *, count_dropped: bool = False, friends=()):
    """Finite diphoton candidates of the events of an ntuple passing ``selection``.

    Candidates with a NaN or infinite mass are dropped and logged; with ``count_dropped``
    their number is returned too, as ``(candidates, dropped)``. ``friends``: friend ntuples
    with branches the cut needs (:func:`bumphunt.ntuple.read_ntuple`).
    """
    values = np.asarray(read_selected(path, [mass_variable], selection, friends=friends)[mass_variable],
                        dtype=np.float64).ravel()  # fmt: skip
    finite = np.isfinite(values)
    dropped = int(np.count_nonzero(~finite))
    if dropped:
        log.warning("%s: %d candidates with a NaN or infinite %s dropped", path, dropped, mass_variable)
    return (values[finite], dropped) if count_dropped else values[finite]


@dataclass(frozen=True)
class SmoothBackground:
    """Expected candidates of a background in fine mass bins, smooth on the scale of the resolution.

    The bins are even in u = integral dm / sigma(m) (``bins_per_sigma`` per resolution); the
    weighted counts of the simulation are replaced in every bin by a local cubic fit over
    +-``smoothing`` resolutions (a Savitzky-Golay filter), which keeps the slope and the
    curvature of the spectrum but none of the simulation's own fluctuations on the scale of a
    signal peak.
    """

    edges: np.ndarray
    expected: np.ndarray

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Poisson counts in every bin, spread evenly within it."""
        counts = rng.poisson(self.expected)
        low = np.repeat(self.edges[:-1], counts)
        width = np.repeat(np.diff(self.edges), counts)
        return low + width * rng.random(len(low))


def smooth_background(values, weights, resolution, *, smoothing: float, bins_per_sigma: int = 4) -> SmoothBackground:
    """The :class:`SmoothBackground` of weighted candidates.

    Parameters
    ----------
    values, weights : arrays
        Candidate masses (GeV) and their weights (expected events per candidate).
    resolution : callable
        Mass resolution sigma(m) (GeV) for an array of masses.
    smoothing : float
        Half-width of the local fits, in resolutions.
    """
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    low, high = 0.0, float(values.max()) * (1.0 + 1e-9) if len(values) else 1.0
    grid = np.linspace(low, high, 400)
    u_grid = np.concatenate([[0.0], np.cumsum(np.diff(grid) / resolution(0.5 * (grid[1:] + grid[:-1])))])
    n_bins = max(int(np.ceil(u_grid[-1] * bins_per_sigma)), 1)
    edges = np.interp(np.linspace(0.0, u_grid[-1], n_bins + 1), u_grid, grid)
    counts = np.histogram(values, bins=edges, weights=weights)[0]
    window = 2 * int(round(smoothing * bins_per_sigma)) + 1
    if window > 4 and n_bins > window:
        counts = np.clip(signal.savgol_filter(counts, window, 3, mode="interp"), 0.0, None)
    return SmoothBackground(edges, counts)


#: In ``smooth`` pseudo-data, samples whose events weigh less than this are drawn event by event:
#: their own fluctuations add under 1 % to the Poisson variance (the meson samples, whose
#: peaks are real); heavier samples are drawn from their :class:`SmoothBackground`.
EVENT_BY_EVENT_WEIGHT = 0.01
#: Event weights above which a warning is logged: in ``events`` pseudo-data each event stands
#: for ~weight candidates at one mass, whose stacks look like signal; in ``smooth`` pseudo-data
#: the background shape rests on fewer simulated than expected events.
WEIGHT_WARNING = {"events": 0.1, "smooth": 1.0}
PSEUDO_DATA_MODES = ("smooth", "events")


@dataclass(frozen=True)
class _EventSample:
    masses: np.ndarray  # (events, pairs) candidate masses of the selected events
    weights: np.ndarray  # (events,)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        values = np.repeat(self.masses, rng.poisson(self.weights), axis=0).ravel()
        return values[np.isfinite(values)]


class BackgroundModel:
    """The background simulation as pseudo-data draw it, read once for any number of draws.

    ``mode="smooth"`` (the default of ``scan.pseudo_data``): samples with event weights above
    :data:`EVENT_BY_EVENT_WEIGHT` are drawn from a :class:`SmoothBackground` (local cubic
    fits over +-``smoothing`` resolutions), the others event by event. ``mode="events"``:
    every event enters Poisson(weight) times, which keeps every fluctuation of the simulation
    and fakes peaks where weights approach 1.

    Parameters
    ----------
    layout : OutputLayout
        Where the kinematic-fit ntuples of the background samples are.
    selection, mass_variable : str
        Those of the signal model.
    resolution : callable
        sigma(m) of the signal model (GeV).
    """

    def __init__(self, layout: OutputLayout, selection: str, mass_variable: str, resolution, *,
                 mode: str = "smooth", smoothing: float = 30.0):  # fmt: skip
        if mode not in PSEUDO_DATA_MODES:
            raise BumphuntError(f"unknown pseudo-data mode {mode!r}; choose {' or '.join(PSEUDO_DATA_MODES)}")
        paths = layout.existing_ntuples("kinfit", BACKGROUND_SAMPLES)
        if not paths:
            raise NtupleError(
                f"{layout.kinfit_dir}: no background ntuples after the kinematic fit (run `bumphunt kinfit`)"
            )
        self.layout, self.selection, self.mass_variable, self.mode = layout, selection, mass_variable, mode
        self.samples, self.max_weight, self.n_dropped = [], {}, 0
        for path in paths:
            friends = layout.friends(path.stem, branches_used(selection))
            events = _selected_events(path, selection, mass_variable, friends=friends)
            if len(events.weights) == 0:
                continue
            finite = np.isfinite(events.masses)
            self.n_dropped += int(np.count_nonzero(~finite))
            self.max_weight[path.stem] = float(events.weights.max()) if len(events.weights) else 0.0
            if mode == "smooth" and self.max_weight[path.stem] > EVENT_BY_EVENT_WEIGHT:
                weights = np.broadcast_to(events.weights[:, None], events.masses.shape)
                self.samples.append(
                    smooth_background(events.masses[finite], weights[finite], resolution, smoothing=smoothing)
                )
            else:
                self.samples.append(events)
        if not self.samples:
            raise NtupleError(f"{layout.kinfit_dir}: no background event passes the selection {selection!r}")
        heaviest = max(self.max_weight, key=self.max_weight.get, default=None)
        if heaviest is not None and self.max_weight[heaviest] > WEIGHT_WARNING[mode]:
            log.warning(
                "background sample %s has event weights up to %.3g (> %g): %s", heaviest,
                self.max_weight[heaviest], WEIGHT_WARNING[mode],
                "pseudo-data repeat each event about that often and fake peaks; use scan.pseudo_data=smooth"
                if mode == "events" else "its shape rests on fewer simulated than expected events; simulate more",
            )  # fmt: skip
        if self.n_dropped:
            log.warning("%d background candidates with a NaN or infinite %s dropped", self.n_dropped, mass_variable)

    def sample(self, seed: int, *, inject_mass: float | None = None, inject_events: float = 0.0) -> np.ndarray:
        """Sorted pseudo-data: the expected background at the configured luminosity (and, with
        ``inject_mass``, Poisson(inject_events) ALPs of the nearest generated mass)."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
        pieces = [sample.sample(rng) for sample in self.samples]
        if inject_mass is not None and inject_events > 0:
            alp = self.layout.ntuple("kinfit", "alp")
            friends = self.layout.friends("alp", branches_used(self.selection))
            pieces.append(injected_signal(alp, self.selection, self.mass_variable, rng, inject_mass, inject_events,
                                          friends=friends))  # fmt: skip
        return np.sort(np.concatenate(pieces))


def _selected_events(path, selection: str, mass_variable: str, friends=()) -> _EventSample:
    events = read_selected(path, [mass_variable, "weight"], selection, friends=friends)
    masses = np.asarray(events[mass_variable], dtype=np.float64)
    return _EventSample(
        masses if masses.ndim == 2 else masses.reshape(-1, 1), np.asarray(events["weight"], dtype=np.float64)
    )


def pseudo_data(layout: OutputLayout, model, *, seed: int, mode: str = "smooth", smoothing: float = 30.0,
                inject_mass: float | None = None, inject_events: float = 0.0) -> np.ndarray:  # fmt: skip
    """Background-only (or signal-injected) pseudo-data for the signal model ``model``, drawn
    once (:class:`BackgroundModel` draws many)."""
    background = BackgroundModel(layout, model.settings.get("selection", ""), model.settings["mass_variable"],
                                 model.resolution, mode=mode, smoothing=smoothing)  # fmt: skip
    return background.sample(seed, inject_mass=inject_mass, inject_events=inject_events)


def injected_signal(path, selection: str, mass_variable: str, rng, mass: float, n_produced: float,
                    friends=()) -> np.ndarray:  # fmt: skip
    """Candidates of Poisson-many ALP events at the generated mass nearest ``mass``.

    ``n_produced`` counts ALPs before the detector: the pre-selected events stored at that
    mass are drawn with the mean n_produced x (stored / generated), then the selection cut.
    """
    data = read_ntuple(path, sorted({"gen_mass", mass_variable} | branches_used(selection)), friends=friends)
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
    finite = np.isfinite(values)
    if not finite.all():
        log.warning("%d candidates with a NaN or infinite mass dropped", np.count_nonzero(~finite))
    return Spectrum(np.sort(values[finite]))


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
