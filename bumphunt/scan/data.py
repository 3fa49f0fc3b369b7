"""What the scan fits: candidates from ntuples, pseudo-data, or a user's array or histogram.

Every source becomes a :class:`Spectrum`: sorted candidate masses (unbinned), or the bin
centres of a histogram with their counts (binned; for weighted histograms also the
variances of the counts). For the analysis' ntuples the selection and the mass variable come
from the signal model the scan uses, so data and signal shapes are always selected alike; a
user's file, uproot TTree or table names its own tree, mass branch or expression and cut
(:func:`spectrum_from`). :func:`check_units` and :func:`check_bin_widths` catch masses in MeV
and histogram bins too wide for the signal's resolution.

At any luminosity pseudo-data and data ntuples can be held as a fine histogram instead
(``scan.data_binning``): :meth:`BackgroundModel.sample_histogram` draws Poisson counts into
bins of sigma(m) / :data:`HISTOGRAM_BINS_PER_SIGMA` chunk by chunk, :func:`candidates_histogram`
fills one from an ntuple chunk by chunk, so memory no longer grows with the candidates.
"""

from __future__ import annotations

import ast
import difflib
import logging
import math
import operator
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import signal

from ..cuts import branches_used, evaluate_cut
from ..errors import BumphuntError, ConfigError, NtupleError
from ..layout import OutputLayout
from ..ntuple import (
    BACKGROUND_SAMPLES,
    TREE_NAME,
    check_branches,
    iterate_ntuple,
    num_entries,
    read_metadata,
    read_ntuple,
    read_selected,
)

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


#: Bins of binned data per mass resolution sigma(m) (:func:`histogram_edges`, even in
#: u = integral dm / sigma(m)): sigma/50, the width of the bins the scan fits a large window in
#: (``scan.binned_above``: 2000 bins over +-20 sigma), so a window of the histogram holds about
#: 2000 bins and is fitted as fast. A binned fit takes the densities at the bin centres: on a
#: Gaussian peak that errs by (w/sigma)^2/24 = 2e-5 of its height, and the bins widen it by
#: w^2/12 = 3e-5 sigma^2; against the scan of the same 10^7 candidates as sorted masses the
#: observed limits agree within 0.5 % (20 bins: 0.8 %, 10: 1.4 %), the expected within 0.02 %
#: (docs/scan.md, tests/test_scan_binned.py).
#: Memory: 531 resolutions from 0 to 10.58 GeV for sigma = 4 + 3 m MeV, so 26,562 bins (0.6 MB
#: with their centres and edges) at any luminosity.
HISTOGRAM_BINS_PER_SIGMA = 50
#: ``scan.data_binning: auto`` holds the scan's data as a histogram above this many candidates
#: (the expected background candidates of pseudo-data, the entries of a data ntuple): sorted
#: candidates take 8 bytes each, 16 while sorted. The default analysis (about 1.5e5 expected
#: candidates in 445 pb^-1) stays below, unbinned as before; Belle II Run 1 (362 fb^-1, about
#: 1.2e8) lies far above.
HISTOGRAM_ABOVE = 2_000_000
#: The values of ``scan.data_binning``.
DATA_BINNINGS = ("auto", "binned", "unbinned")
#: Random streams of binned pseudo-data: block b of RANDOM_BLOCK events (or bins) of background
#: sample i draws from ``SeedSequence(seed, spawn_key=(8, i, b))``, so a fill in chunks of any
#: number of whole blocks draws the same counts as a fill of everything at once.
RANDOM_BLOCK = 1 << 16
#: Events (binned pseudo-data) or entries (data ntuples) held at once while a histogram is filled.
HISTOGRAM_CHUNK = 1 << 18


class HistogramFill(NamedTuple):
    """A histogram filled chunk by chunk: the binned :class:`Spectrum`, the candidates dropped
    for a NaN or infinite mass, and the finite candidates outside its edges."""

    spectrum: Spectrum
    dropped: int
    outside: int


def resolution_edges(resolution, high: float, bins_per_sigma: float, *, grid_points: int = 400) -> np.ndarray:
    """Bin edges from 0 to ``high`` (GeV), even in u = integral dm / sigma(m) with
    ``bins_per_sigma`` bins per resolution (u integrated over ``grid_points`` masses)."""
    grid = np.linspace(0.0, high, grid_points)
    u_grid = np.concatenate([[0.0], np.cumsum(np.diff(grid) / resolution(0.5 * (grid[1:] + grid[:-1])))])
    n_bins = max(int(np.ceil(u_grid[-1] * bins_per_sigma)), 1)
    return np.interp(np.linspace(0.0, u_grid[-1], n_bins + 1), u_grid, grid)


def histogram_edges(resolution, high: float, *, bins_per_sigma: float = HISTOGRAM_BINS_PER_SIGMA) -> np.ndarray:
    """Edges of the fine histogram that binned data are held in: 0 to ``high`` GeV, even in
    u = integral dm / sigma(m), ``bins_per_sigma`` bins per resolution ``resolution(m)`` (GeV).

    Raises
    ------
    BumphuntError
        Bins wider than :data:`BIN_WIDTH_RESOLUTIONS` resolutions, which smear the peak, or
        a ``high`` that is not a positive mass.
    """
    if not bins_per_sigma * BIN_WIDTH_RESOLUTIONS >= 1.0:
        raise BumphuntError(
            f"histogram bins of sigma(m) / {bins_per_sigma:g} are too wide for the fits: use at least "
            f"{1 / BIN_WIDTH_RESOLUTIONS:g} bins per resolution (default {HISTOGRAM_BINS_PER_SIGMA})"
        )
    if not (math.isfinite(high) and high > 0):
        raise BumphuntError(f"the histogram must reach a positive mass, got {high} GeV")
    return resolution_edges(resolution, high, bins_per_sigma)


def histogram_wanted(binning: str, candidates: float) -> bool:
    """Whether data of ``candidates`` candidates are held as a histogram under
    ``scan.data_binning = binning`` (auto: above :data:`HISTOGRAM_ABOVE`)."""
    if binning not in DATA_BINNINGS:
        raise BumphuntError(f"unknown data binning {binning!r}; choose {', '.join(DATA_BINNINGS)}")
    return binning == "binned" or (binning == "auto" and candidates > HISTOGRAM_ABOVE)


def _add_to_histogram(counts: np.ndarray, edges: np.ndarray, values: np.ndarray, weights=None) -> float:
    """Add finite ``values`` (GeV, with ``weights``) to ``counts`` in the bins ``edges`` (the
    last one closed, as in numpy); the (weighted) number outside the edges."""
    index = np.searchsorted(edges, values, side="right") - 1
    index[values == edges[-1]] = len(counts) - 1
    inside = (index >= 0) & (index < len(counts))
    if weights is None:
        counts += np.bincount(index[inside], minlength=len(counts))
        return float(len(values) - np.count_nonzero(inside))
    weights = np.asarray(weights, dtype=np.float64)
    counts += np.bincount(index[inside], weights=weights[inside], minlength=len(counts))
    return float(weights.sum() - weights[inside].sum())


def _histogram_values(values: np.ndarray, edges: np.ndarray) -> HistogramFill:
    """Finite candidate masses in memory as a histogram, filled :data:`HISTOGRAM_CHUNK` at a time."""
    counts, outside = np.zeros(len(edges) - 1), 0.0
    for start in range(0, len(values), HISTOGRAM_CHUNK):
        outside += _add_to_histogram(counts, edges, values[start : start + HISTOGRAM_CHUNK])
    return HistogramFill(_binned_spectrum(edges, counts), 0, int(outside))


def _binned_spectrum(edges: np.ndarray, counts: np.ndarray) -> Spectrum:
    return Spectrum(0.5 * (edges[1:] + edges[:-1]), counts, None, edges)


def checked_fill(fill: HistogramFill) -> Spectrum:
    """The spectrum of a filled histogram; refused when every candidate fell outside it (masses
    in MeV), with a warning when some did."""
    edges = fill.spectrum.edges
    if fill.outside and fill.spectrum.n_events == 0:
        raise BumphuntError(
            f"every one of the {fill.outside} candidates lies outside the histogram's "
            f"{edges[0]:g}-{edges[-1]:.4f} GeV: masses in MeV? convert them to GeV"
        )
    if fill.outside:
        log.warning("%d candidates outside %g-%.4f GeV left out of the histogram", fill.outside, edges[0], edges[-1])
    return fill.spectrum


def candidates_histogram(path, selection: str, mass_variable: str, edges: np.ndarray, *, friends=(),
                         step_size: int = HISTOGRAM_CHUNK) -> HistogramFill:  # fmt: skip
    """:func:`candidates` as a histogram with the bin edges ``edges`` (GeV), filled
    ``step_size`` entries at a time: the memory of one chunk and the histogram, whatever the
    size of the ntuple. Candidates with a NaN or infinite mass are dropped, counted and
    logged as :func:`candidates` does."""
    needed = sorted({mass_variable} | branches_used(selection))

    def selected(chunk):
        keep = evaluate_cut(selection, chunk, len(chunk[needed[0]]))
        return np.asarray(chunk[mass_variable][keep], dtype=np.float64).ravel()

    chunks = iterate_ntuple(path, needed, step_size=step_size, friends=friends)
    return _fill_chunks((selected(chunk) for chunk in chunks), edges, path, mass_variable)


def _fill_chunks(chunks, edges, where, mass: str) -> HistogramFill:
    """The candidate masses of ``chunks`` (arrays, GeV) in the bins ``edges``, one chunk in memory
    at a time; NaN or infinite masses dropped, counted and logged (naming ``where`` and ``mass``)."""
    edges = np.asarray(edges, dtype=np.float64)
    counts, dropped, outside = np.zeros(len(edges) - 1), 0, 0.0
    for values in chunks:
        finite = np.isfinite(values)
        dropped += int(np.count_nonzero(~finite))
        outside += _add_to_histogram(counts, edges, values[finite])
    if dropped:
        log.warning("%s: %d candidates with a NaN or infinite %s dropped", where, dropped, mass)
    return HistogramFill(_binned_spectrum(edges, counts), dropped, int(outside))


def _streams(n: int, seed: int, sample: int):
    """``(start, stop, generator)`` of the :data:`RANDOM_BLOCK` blocks of ``n`` events or bins
    of background sample number ``sample``."""
    for block, start in enumerate(range(0, n, RANDOM_BLOCK)):
        sequence = np.random.SeedSequence(seed, spawn_key=(8, sample, block))
        yield start, min(start + RANDOM_BLOCK, n), np.random.default_rng(sequence)


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

    @property
    def expected_candidates(self) -> float:
        return float(self.expected.sum())

    @property
    def highest_mass(self) -> float:
        return float(self.edges[-1])

    def fill(self, counts: np.ndarray, edges: np.ndarray, seed: int, sample: int, *,
             chunk_size: int = HISTOGRAM_CHUNK) -> float:  # fmt: skip
        """Add Poisson counts to the histogram ``counts`` with the edges ``edges``: in each of its
        bins the expected candidates spread evenly within this model's own bins, as
        :meth:`sample` spreads them (so the counts are distributed as that sample's histogram),
        drawn with the random streams of background sample number ``sample``. Expected
        candidates beyond ``edges`` are not drawn; returns 0 (nothing outside)."""
        cumulative = np.concatenate([[0.0], np.cumsum(self.expected)])
        expected = np.clip(np.diff(np.interp(edges, self.edges, cumulative)), 0.0, None)
        for start, stop, rng in _streams(len(expected), seed, sample):
            counts[start:stop] += rng.poisson(expected[start:stop])
        return 0.0


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
    high = float(values.max()) * (1.0 + 1e-9) if len(values) else 1.0
    edges = resolution_edges(resolution, high, bins_per_sigma)
    n_bins = len(edges) - 1
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

    @property
    def expected_candidates(self) -> float:
        return float((self.weights[:, None] * np.isfinite(self.masses)).sum())

    @property
    def highest_mass(self) -> float:
        finite = self.masses[np.isfinite(self.masses)]
        return float(finite.max()) if len(finite) else 0.0

    def fill(self, counts: np.ndarray, edges: np.ndarray, seed: int, sample: int, *,
             chunk_size: int = HISTOGRAM_CHUNK) -> float:  # fmt: skip
        """Add every event Poisson(weight) times to the histogram ``counts`` (edges ``edges``),
        ``chunk_size`` events at a time (rounded up to whole :data:`RANDOM_BLOCK` blocks), with
        the random streams of background sample number ``sample``: the counts do not depend on
        ``chunk_size``. Returns the candidates drawn outside the edges."""
        n_events = len(self.weights)
        step = max(-(-chunk_size // RANDOM_BLOCK), 1) * RANDOM_BLOCK
        streams = _streams(n_events, seed, sample)
        outside = 0.0
        for start in range(0, n_events, step):
            stop = min(start + step, n_events)
            repeats = np.concatenate([rng.poisson(self.weights[low:high]) for low, high, rng in
                                      (next(streams) for _ in range(-(-(stop - start) // RANDOM_BLOCK)))])  # fmt: skip
            drawn = np.flatnonzero(repeats)
            masses = self.masses[start:stop][drawn]
            multiplicity = np.broadcast_to(repeats[drawn, None], masses.shape)
            finite = np.isfinite(masses)
            outside += _add_to_histogram(counts, edges, masses[finite], multiplicity[finite])
        return outside


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
    backgrounds : sequence of str
        The background samples (the analysis' ``samples`` of role background).
    signal_name : str
        The signal sample, whose events an injected signal is drawn from.
    luminosity : float, optional
        Integrated luminosity (pb^-1) of the pseudo-data: the weights are brought to it
        (:func:`~bumphunt.ntuple.luminosity_scale`); as stored in the ntuples when None.

    Notes
    -----
    :meth:`sample` draws the candidates as a sorted array (memory of every candidate);
    :meth:`sample_histogram` draws the same distribution as counts in a fine histogram, chunk
    by chunk (memory independent of the luminosity); :meth:`draw` gives either as a
    :class:`Spectrum`.
    """

    def __init__(self, layout: OutputLayout, selection: str, mass_variable: str, resolution, *,
                 mode: str = "smooth", smoothing: float = 30.0, backgrounds=BACKGROUND_SAMPLES,
                 signal_name: str = "alp", luminosity: float | None = None):  # fmt: skip
        if mode not in PSEUDO_DATA_MODES:
            raise BumphuntError(f"unknown pseudo-data mode {mode!r}; choose {' or '.join(PSEUDO_DATA_MODES)}")
        self.signal_name, self.resolution = signal_name, resolution
        paths = layout.existing_ntuples("kinfit", backgrounds)
        if not paths:
            raise NtupleError(
                f"{layout.kinfit_dir}: no background ntuples after the kinematic fit (run `bumphunt kinfit`)"
            )
        self.layout, self.selection, self.mass_variable, self.mode = layout, selection, mass_variable, mode
        self.samples, self.max_weight, self.n_dropped = [], {}, 0
        for path in paths:
            friends = layout.friends(path.stem, branches_used(selection))
            events = _selected_events(path, selection, mass_variable, friends=friends, luminosity=luminosity)
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
            alp = self.layout.ntuple("kinfit", self.signal_name)
            friends = self.layout.friends(self.signal_name, branches_used(self.selection))
            pieces.append(injected_signal(alp, self.selection, self.mass_variable, rng, inject_mass, inject_events,
                                          friends=friends))  # fmt: skip
        return np.sort(np.concatenate(pieces))

    @classmethod
    def of_samples(cls, samples, resolution) -> BackgroundModel:
        """A background of expected spectra of one's own, without ntuples: ``samples`` are
        :class:`SmoothBackground` (expected candidates in bins, e.g. from
        :func:`smooth_background`) or weighted events drawn event by event (as the ntuples'
        light samples are); ``resolution`` is sigma(m) (GeV) of the signal model. It cannot
        inject signal."""
        model = cls.__new__(cls)
        model.signal_name, model.resolution, model.layout = None, resolution, None
        model.selection, model.mass_variable, model.mode = "", "", "smooth"
        model.samples, model.max_weight, model.n_dropped = list(samples), {}, 0
        if not model.samples:
            raise BumphuntError("a background model needs at least one sample")
        return model

    @property
    def expected_candidates(self) -> float:
        """The background candidates pseudo-data hold on average (finite masses)."""
        return float(sum(sample.expected_candidates for sample in self.samples))

    def histogram_edges(self, *, bins_per_sigma: float = HISTOGRAM_BINS_PER_SIGMA) -> np.ndarray:
        """The edges of :meth:`sample_histogram`: 0 GeV to the heaviest background candidate,
        ``bins_per_sigma`` bins per resolution (:func:`histogram_edges`)."""
        high = max(sample.highest_mass for sample in self.samples) * (1.0 + 1e-9)
        return histogram_edges(self.resolution, high, bins_per_sigma=bins_per_sigma)

    def sample_histogram(self, seed: int, *, inject_mass: float | None = None, inject_events: float = 0.0,
                         bins_per_sigma: float = HISTOGRAM_BINS_PER_SIGMA,
                         chunk_size: int = HISTOGRAM_CHUNK) -> Spectrum:  # fmt: skip
        """Pseudo-data as a binned :class:`Spectrum`: Poisson counts in bins of sigma(m) /
        ``bins_per_sigma`` (:meth:`histogram_edges`), distributed as the candidates of
        :meth:`sample` binned, in memory independent of the luminosity.

        Smooth samples draw Poisson counts of their expected candidates in every bin;
        event-by-event samples draw every event Poisson(weight) times, ``chunk_size`` events at
        a time. Every block of :data:`RANDOM_BLOCK` events or bins has its own random stream
        (seeded by ``seed``, the sample and the block), so the histogram depends on ``seed``
        alone, not on ``chunk_size`` (nor is it the histogram of :meth:`sample`'s candidates,
        which draw from one stream). An injected signal (``inject_mass``, ``inject_events``,
        as in :meth:`sample`) draws from a stream of its own and enters the same histogram.
        """
        edges = self.histogram_edges(bins_per_sigma=bins_per_sigma)
        counts, outside = np.zeros(len(edges) - 1), 0.0
        for number, sample in enumerate(self.samples):
            outside += sample.fill(counts, edges, seed, number, chunk_size=chunk_size)
        if inject_mass is not None and inject_events > 0:
            if self.layout is None:
                raise BumphuntError("this background model has no signal sample to inject signal from")
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(9,)))
            alp = self.layout.ntuple("kinfit", self.signal_name)
            friends = self.layout.friends(self.signal_name, branches_used(self.selection))
            signal_masses = injected_signal(alp, self.selection, self.mass_variable, rng, inject_mass, inject_events,
                                            friends=friends)  # fmt: skip
            outside += _add_to_histogram(counts, edges, signal_masses)
        if outside:
            log.warning("%d pseudo-data candidates outside 0-%.4f GeV left out of the histogram", outside, edges[-1])
        return _binned_spectrum(edges, counts)

    def draw(self, seed: int, *, binned: bool, inject_mass: float | None = None,
             inject_events: float = 0.0) -> Spectrum:  # fmt: skip
        """Pseudo-data as a :class:`Spectrum`: :meth:`sample_histogram` when ``binned``, else the
        sorted candidates of :meth:`sample`."""
        if binned:
            return self.sample_histogram(seed, inject_mass=inject_mass, inject_events=inject_events)
        return Spectrum(self.sample(seed, inject_mass=inject_mass, inject_events=inject_events))


def _selected_events(path, selection: str, mass_variable: str, friends=(), luminosity=None) -> _EventSample:
    events = read_selected(path, [mass_variable, "weight"], selection, friends=friends, luminosity=luminosity)
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


def spectrum_from(data, *, selection: str = "", mass_variable: str = "m_gg_fit", tree: str = TREE_NAME,
                  edges=None) -> Spectrum:  # fmt: skip
    """A :class:`Spectrum` from what a user hands the scan.

    Parameters
    ----------
    data : array, path, uproot TTree, table or hist.Hist
        Candidate masses (GeV), a one-dimensional array of numbers (NaN and infinities
        dropped; a two-dimensional array is refused, not flattened); a ROOT file (the tree
        ``tree``), an uproot ``TTree`` (``uproot.open(path)[name]``) or a table of columns
        (a dict of arrays, a numpy structured array, a pandas ``DataFrame``), of whose
        entries passing ``selection`` ``mass_variable`` gives the candidates; or a
        one-dimensional histogram of the mass, whose counts are fitted binned (with
        ``Weight`` storage, the variances of the counts enter through the scaled-Poisson
        approximation).
    selection : str
        A cut on the entries of a file, tree or table (:mod:`bumphunt.cuts`: branches of one
        value per entry); empty: every entry.
    mass_variable : str
        The branch (or column) of the mass, or an expression of branches: numbers, ``+ - * /
        **``, ``abs(...)``, ``sqrt(...)`` and indexing with integers and slices
        (``"m_gg_fit[:, 0]"``, ``"B0_M / 1000"``); nothing else is evaluated. A branch of
        several candidates per entry (bumphunt's ``m_gg_fit[3]``, a jagged branch) gives
        every one of them.
    tree : str
        The tree of a ROOT file.
    edges : array, optional
        Bin edges (GeV): the candidates are held as a histogram with them, a ROOT file read
        and filled :data:`HISTOGRAM_CHUNK` entries at a time, so no array of every candidate
        is held (:func:`histogram_edges` gives fine ones); a ``hist.Hist`` keeps its own bins.

    Raises
    ------
    BumphuntError
        The data are not numbers, or an array of more than one dimension; a file, tree or
        branch is missing (:class:`~bumphunt.errors.NtupleError`); an expression is
        malformed or names a missing branch (:class:`~bumphunt.errors.ConfigError`); with
        ``edges``, every candidate lies outside them (masses in MeV?).
    """
    if edges is not None:
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0) or not np.all(np.isfinite(edges)):
            raise BumphuntError("edges= must be at least two finite, increasing bin edges (GeV)")

    def as_spectrum(values):
        return Spectrum(np.sort(values)) if edges is None else checked_fill(_histogram_values(values, edges))

    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        try:
            available = check_branches(path, None, tree=tree)
        except NtupleError as error:
            if tree == TREE_NAME and f"no tree '{tree}'" in str(error):
                raise NtupleError(f"{error}; name the tree with tree=") from None
            raise
        if edges is not None:
            return checked_fill(_file_histogram(path, available, tree, selection, mass_variable, edges))
        if tree == TREE_NAME and mass_variable in available:
            # the analysis' own ntuple: read in chunks, only the selected events held
            return Spectrum(np.sort(candidates(path, selection, mass_variable)))
        where = f"{path}: tree '{tree}'"
        values = _selected_masses(where, available, lambda names: read_ntuple(path, names, tree=tree), mass_variable,
                                  selection)  # fmt: skip
        return Spectrum(np.sort(values))
    if _is_directory(data):
        if tree not in data:
            found = ", ".join(data.keys(cycle=False)) or "nothing"
            raise NtupleError(f"{data.file_path}: no tree '{tree}' (found: {found})")
        data = data[tree]
    if _is_tree(data):
        where = f"{data.file.file_path}: tree '{data.name}'"
        values = _selected_masses(where, list(data.keys()), lambda names: _read_tree(data, names, where),
                                  mass_variable, selection)  # fmt: skip
        return as_spectrum(values)
    if _is_table(data):
        columns = _table_columns(data)
        values = _selected_masses("the table", list(columns), lambda names: {n: columns[n] for n in names},
                                  mass_variable, selection)  # fmt: skip
        return as_spectrum(values)
    if hasattr(data, "axes") and hasattr(data, "values"):
        return _histogram_spectrum(data)
    values = _numbers(data)
    finite = np.isfinite(values)
    if not finite.all():
        log.warning("%d candidates with a NaN or infinite mass dropped", np.count_nonzero(~finite))
    return as_spectrum(values[finite])


def _file_histogram(path: Path, available, tree: str, selection: str, mass: str, edges: np.ndarray) -> HistogramFill:
    """The candidates of a ROOT file (the analysis' ntuple or a tree of one's own, ``mass`` a
    branch or an expression) as a histogram, read and filled a chunk of entries at a time."""
    if tree == TREE_NAME and mass in available:
        return candidates_histogram(path, selection, mass, edges)
    where = f"{path}: tree '{tree}'"
    needed = _branches_needed(where, available, mass, selection)
    chunks = iterate_ntuple(path, needed, step_size=HISTOGRAM_CHUNK, tree=tree)
    return _fill_chunks((_selected_values(where, available, chunk, mass, selection) for chunk in chunks), edges,
                        where, mass)  # fmt: skip


def data_entries(data, *, tree: str = TREE_NAME) -> int:
    """The entries of ``data`` as :func:`spectrum_from` takes it, known before it is read: a
    file's or tree's entries, a table's rows, an array's length (0 for a histogram, or data
    whose errors :func:`spectrum_from` reports); what ``scan.data_binning: auto`` compares
    with :data:`HISTOGRAM_ABOVE`."""
    try:
        if isinstance(data, (str, os.PathLike)):
            return num_entries(data, tree=tree)
        if _is_directory(data):
            data = data[tree] if tree in data else None
        if _is_tree(data):
            return int(data.num_entries)
        if _is_table(data):
            names = data.dtype.names if isinstance(data, np.ndarray) else list(data.keys())
            return len(data[names[0]]) if len(names) else 0
        if hasattr(data, "axes") and hasattr(data, "values"):
            return 0
        return int(np.size(data))
    except (BumphuntError, TypeError, ValueError, KeyError):
        return 0


def takes_branches(data) -> bool:
    """Whether :func:`spectrum_from` reads ``data`` through a mass variable and a selection (a
    ROOT file, an uproot file or TTree, a table), not as masses or a histogram."""
    return isinstance(data, (str, os.PathLike)) or _is_directory(data) or _is_tree(data) or _is_table(data)


def _is_directory(data) -> bool:
    """An open uproot file (or a directory in one)."""
    return hasattr(data, "classnames") and hasattr(data, "file_path") and isinstance(data, Mapping)


def _is_tree(data) -> bool:
    """An uproot TTree."""
    return hasattr(data, "arrays") and hasattr(data, "num_entries") and hasattr(data, "keys")


def _is_table(data) -> bool:
    """A dict of arrays, a numpy structured array or a pandas DataFrame."""
    if isinstance(data, Mapping):
        return True
    if isinstance(data, np.ndarray):
        return data.dtype.names is not None
    return hasattr(data, "columns") and hasattr(data, "iloc") and hasattr(data, "to_numpy")


def _table_columns(data) -> dict:
    """The columns of a table: numpy arrays (awkward arrays kept)."""
    names = data.dtype.names if isinstance(data, np.ndarray) else list(data.keys())
    return {str(name): _as_array(data[name]) for name in names}


def _as_array(values):
    """numpy array of ``values``; an awkward array stays one, a numpy array of arrays (a
    jagged branch) becomes one."""
    if type(values).__module__.startswith("awkward"):
        return values
    if hasattr(values, "to_numpy"):  # a pandas Series
        values = values.to_numpy()
    array = np.asarray(values)
    if array.dtype == object and array.ndim == 1:
        import awkward as ak

        try:
            return ak.from_iter(array)
        except (TypeError, ValueError):
            return array
    return array


def _read_tree(ttree, names, where: str) -> dict:
    """Branches of an uproot TTree; an NtupleError naming the tree when they do not decode."""
    try:
        return {name: ttree[name].array(library="np") for name in names}
    except Exception as error:  # uproot raises several types for data it cannot read
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise NtupleError(f"{where}: cannot read {', '.join(names)} ({type(error).__name__}: {first_line})") from None


def _check_branches_exist(where: str, available, names, role: str) -> None:
    for name in sorted(names):
        if name not in available:
            shown = sorted(str(a) for a in available)
            close = difflib.get_close_matches(name, shown, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"it has {', '.join(shown[:8])}"
            hint += ", ..." if not close and len(shown) > 8 else ""
            raise NtupleError(f"{where} has no branch {name!r} (named by {role}); {hint}")


def _selected_masses(where: str, available, read, mass: str, selection: str) -> np.ndarray:
    """The finite candidate masses of the entries passing ``selection``, ``mass`` a branch of
    ``available`` or an expression of them; ``read(names)`` gives the branches as arrays."""
    values = _selected_values(where, available, read(_branches_needed(where, available, mass, selection)), mass,
                              selection)  # fmt: skip
    finite = np.isfinite(values)
    if not finite.all():
        log.warning("%s: %d candidates with a NaN or infinite %s dropped", where, np.count_nonzero(~finite), mass)
    return values[finite]


def _mass_branches(mass: str, available) -> set[str]:
    return {mass} if mass in available else _expression_branches(mass)


def _branches_needed(where: str, available, mass: str, selection: str) -> list[str]:
    """The branches the mass ``mass`` and the cut ``selection`` read, checked to be ``available``."""
    names = _mass_branches(mass, available)
    if not names:
        _evaluate_mass(mass, {})  # an operation that is not allowed says so first
        raise ConfigError(f"mass={mass!r} names no branch of {where}")
    _check_branches_exist(where, available, names, f"mass={mass!r}")
    cut = branches_used(selection)
    _check_branches_exist(where, available, cut, f"selection={selection!r}")
    return sorted(names | cut)


def _selected_values(where: str, available, arrays: dict, mass: str, selection: str) -> np.ndarray:
    """Every candidate mass (NaN kept) of the entries of ``arrays`` (the branches of
    :func:`_branches_needed`) passing ``selection``."""
    names, cut = _mass_branches(mass, available), branches_used(selection)
    n_entries = len(arrays[min(names)])
    try:
        keep = evaluate_cut(selection, arrays, n_entries)
    except (TypeError, ValueError):  # a branch of several values per entry
        raise ConfigError(f"selection={selection!r}: its branches must hold one value per entry") from None
    try:
        branches = {name: _as_array(arrays[name])[keep] for name in names}
    except (IndexError, ValueError) as error:
        listed = ", ".join(sorted(names | cut))
        raise NtupleError(f"{where}: the branches {listed} differ in length ({error})") from None
    values = branches[mass] if mass in branches else _evaluate_mass(mass, branches)
    return _flat_masses(values, where, mass)


def _flat_masses(values, where: str, mass: str) -> np.ndarray:
    """Every candidate of ``values`` (numpy, awkward, or a numpy array of arrays) as float64."""
    if type(values).__module__.startswith("awkward"):
        import awkward as ak

        values = ak.to_numpy(ak.flatten(values, axis=None))
    values = np.asarray(values)
    if values.dtype == object:
        values = np.concatenate([np.ravel(v) for v in values]) if len(values) else np.empty(0)
    if values.dtype.kind not in "iuf":
        raise BumphuntError(f"{where}: mass={mass!r} gives {_KINDS.get(values.dtype.kind, values.dtype)} values, "
                            "not masses")  # fmt: skip
    return values.astype(np.float64).ravel()


#: Names of numpy's kinds of values, for messages.
_KINDS = {"U": "str", "S": "bytes", "O": "object", "b": "bool", "c": "complex", "M": "datetime", "m": "timedelta",
          "V": "record"}  # fmt: skip


def _numbers(data) -> np.ndarray:
    """``data`` as a one-dimensional float64 array of candidate masses; a one-line error for
    anything else."""
    try:
        array = np.asarray(data)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "iuf":
        what = "values of unequal shapes" if array is None else _KINDS.get(array.dtype.kind, str(array.dtype))
        raise BumphuntError(
            f"the scan data are a {type(data).__name__} of {what}, not candidate masses: give masses in GeV (an array "
            "of numbers), a ROOT file or TTree with mass=, or a hist.Hist"
        )
    if array.ndim != 1:
        raise BumphuntError(
            f"the scan data are an array of shape {array.shape}: give the candidate masses as a one-dimensional array "
            "(ravel() it if every entry is a candidate), or a table with mass= naming the column"
        )
    return array.astype(np.float64)


#: The operations of a mass expression (:func:`spectrum_from`).
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}  # fmt: skip
_FUNCTIONS = {"abs": np.abs, "sqrt": np.sqrt}
_ALLOWED = "numbers, branches, + - * / **, abs, sqrt and indexing with integers and slices"


def _parse_mass(expression: str) -> ast.Expression:
    try:
        return ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ConfigError(f"mass={expression!r} is neither a branch nor a valid expression: {error.msg}") from None


def _expression_branches(expression: str) -> set[str]:
    """Branch names a mass expression refers to (the names of the functions it calls left out)."""
    tree = _parse_mass(expression)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in called}


def _evaluate_mass(expression: str, branches: dict):
    """The value of a mass expression over ``branches`` (numpy or awkward arrays), evaluated
    node by node as :mod:`bumphunt.cuts` evaluates a cut, with indexing added: no code runs."""

    def integer(node):
        if node is None:
            return None
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -integer(node.operand)
        raise ConfigError(f"mass={expression!r}: the index {ast.unparse(node)!r} is not an integer")

    def index(node):
        if isinstance(node, ast.Tuple):
            return tuple(index(element) for element in node.elts)
        if isinstance(node, ast.Slice):
            return slice(integer(node.lower), integer(node.upper), integer(node.step))
        return integer(node)

    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.Name) and node.id in branches:
            return branches[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                and len(node.args) == 1 and not node.keywords):  # fmt: skip
            return _FUNCTIONS[node.func.id](value(node.args[0]))
        if isinstance(node, ast.Subscript):
            array, where = value(node.value), index(node.slice)
            try:
                return array[where]
            except (IndexError, ValueError, TypeError) as error:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise ConfigError(f"mass={expression!r}: cannot take {ast.unparse(node)} ({reason})") from None
        raise ConfigError(f"mass={expression!r}: {ast.unparse(node)!r} is not allowed ({_ALLOWED} are)")

    with np.errstate(invalid="ignore", divide="ignore"):
        return value(_parse_mass(expression))


#: Histogram bins wider than this many signal resolutions sigma(m) get a warning
#: (:func:`check_bin_widths`): a binned fit takes the densities at the bin centres, so wide
#: bins smear the peak. Against the unbinned fit of the same candidates (280,000 candidates,
#: 0.5-1 GeV, docs/scan.md) the local significance moves by up to 0.1 with bins of a tenth
#: of sigma, 0.2 with a third, 0.6 with one sigma and 6 with two (a fake excess); bins as
#: wide as the fit window fail every fit.
BIN_WIDTH_RESOLUTIONS = 1 / 3


def check_bin_widths(spectrum: Spectrum, resolution, start: float, stop: float, mass_range=None) -> None:
    """Warn when a binned spectrum has bins in ``start``-``stop`` wider than
    :data:`BIN_WIDTH_RESOLUTIONS` times the resolution ``resolution(m)`` (GeV) at their
    centre (within ``mass_range``, where the resolution is known); the message names the
    widest such bin, the resolution there and the bin width to use."""
    if not spectrum.binned:
        return
    edges = spectrum.edges
    inside = (edges[1:] > start) & (edges[:-1] < stop)
    if not inside.any():
        return
    widths, centres = np.diff(edges)[inside], spectrum.x[inside]
    if mass_range is not None:
        centres = np.clip(centres, *mass_range)
    sigma = np.asarray(resolution(centres), dtype=np.float64)
    worst = int(np.argmax(widths / sigma))
    if widths[worst] > BIN_WIDTH_RESOLUTIONS * sigma[worst]:
        log.warning(
            "histogram bins of %.3g GeV at %.4g GeV are wider than a third of the signal resolution there (%.3g GeV): "
            "the fits smear the peak or fail; use bins narrower than %.2g GeV", widths[worst],
            spectrum.x[inside][worst], sigma[worst], BIN_WIDTH_RESOLUTIONS * sigma[worst],
        )  # fmt: skip


def check_units(spectrum: Spectrum, ceiling: float, ceiling_name: str) -> None:
    """Catch masses in MeV: refuse a spectrum whose every candidate lies above ``ceiling`` (GeV;
    sqrt(s), the largest mass a collision makes), warn when most of them do.

    Parameters
    ----------
    spectrum : Spectrum
        Not empty.
    ceiling : float
        The mass no candidate in GeV reaches.
    ceiling_name : str
        ``ceiling`` for the message (``"sqrt(s) = 10.5800 GeV"``).
    """
    weights = np.ones(len(spectrum.x)) if spectrum.weights is None else spectrum.weights
    filled = weights > 0
    masses, weights = spectrum.x[filled], weights[filled]
    if len(masses) == 0:
        return
    cumulative = np.cumsum(weights)
    median = float(masses[np.searchsorted(cumulative, 0.5 * cumulative[-1])])
    lowest = float(spectrum.edges[:-1][filled].min()) if spectrum.binned else float(masses.min())
    if lowest > ceiling:
        raise BumphuntError(
            f"masses look like MeV (median {median:.6g}): convert to GeV; every candidate lies above {ceiling_name}"
        )
    above = float(weights[masses > ceiling].sum() / cumulative[-1])
    if above > 0.5:
        log.warning("masses may be in MeV (median %.6g; %.3g %% of the candidates above %s): convert them to GeV",
                    median, 100 * above, ceiling_name)  # fmt: skip


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
