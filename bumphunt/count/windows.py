"""What the counting experiment counts: a signal window per generated ALP mass, the signal
efficiency and the background in it from the simulation, and the events of the data or of
pseudo-data bootstrapped from the background simulation.

An event is counted in a window when any of its diphoton candidates falls in it, so that an
event counts once. The window is the central interval holding ``fraction`` of the
truth-matched candidates of the selected signal events (equal tails around the median); the
wrong pairings of those events count where they fall, like any other candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..cuts import branches_used
from ..errors import BumphuntError, NtupleError
from ..layout import OutputLayout
from ..ntuple import BACKGROUND_SAMPLES, read_metadata, read_selected, truth_matched_pairs


def signal_window(candidates, fraction: float = 0.9) -> tuple[float, float]:
    """The central interval holding ``fraction`` of the candidate masses, with equal tails: from
    the k-th smallest to the k-th largest candidate, k = floor(N (1 - fraction) / 2), so that at
    least ``fraction`` of the N candidates (at most two more) lie inside. (NaN, NaN) without
    finite candidates."""
    if not 0.0 < fraction < 1.0:
        raise BumphuntError(f"the signal window holds a fraction of the signal between 0 and 1, got {fraction}")
    values = np.asarray(candidates, dtype=np.float64).ravel()
    values = np.sort(values[np.isfinite(values)])
    if len(values) == 0:
        return np.nan, np.nan
    tail = int(math.floor(len(values) * (1.0 - fraction) / 2.0))
    return float(values[tail]), float(values[len(values) - 1 - tail])


@dataclass(frozen=True)
class Events:
    """Selected events: their diphoton candidate masses (events, candidates) and weights."""

    masses: np.ndarray
    weights: np.ndarray

    @classmethod
    def read(cls, path, selection: str, mass_variable: str, *, friends=(), weighted: bool = True,
             luminosity: float | None = None) -> Events:  # fmt: skip
        """The events of an ntuple passing ``selection``; weights at ``luminosity`` (pb^-1; as
        stored when None), or of 1 when not ``weighted``."""
        branches = [mass_variable, "weight"] if weighted else [mass_variable]
        events = read_selected(path, branches, selection, friends=friends, luminosity=luminosity if weighted else None)
        masses = np.asarray(events[mass_variable], dtype=np.float64)
        masses = masses if masses.ndim == 2 else masses.reshape(-1, 1)
        weights = np.asarray(events["weight"], dtype=np.float64) if weighted else np.ones(len(masses))
        return cls(masses, weights)

    @classmethod
    def concatenate(cls, parts: list[Events]) -> Events:
        width = max((p.masses.shape[1] for p in parts), default=1)
        padded = [np.pad(p.masses, ((0, 0), (0, width - p.masses.shape[1])), constant_values=np.nan) for p in parts]
        return cls(np.concatenate(padded) if parts else np.empty((0, 1)),
                   np.concatenate([p.weights for p in parts]) if parts else np.empty(0))  # fmt: skip

    def in_window(self, low: float, high: float) -> np.ndarray:
        """Indices of the events with a candidate in [low, high]."""
        return np.flatnonzero(np.any((self.masses >= low) & (self.masses <= high), axis=1))


@dataclass(frozen=True)
class SignalMass:
    """The selected ALP events of one generated mass.

    ``truth`` holds the truth-matched candidate masses (what the window is made of);
    ``efficiency_per_weight`` turns summed event weights into the efficiency per produced
    ALP (the Born cross-section times the simulated luminosity, inverted).
    """

    mass: float
    events: Events
    truth: np.ndarray
    efficiency_per_weight: float


def signal_masses(path, selection: str, mass_variable: str, *, friends=()) -> list[SignalMass]:
    """The selected events of an ALP ntuple, by generated mass (every generated mass, also
    those none of whose events is selected)."""
    metadata = read_metadata(path)
    if "masses" not in metadata:
        raise NtupleError(f"{path}: metadata lacks the generated masses (not an ALP signal ntuple?)")
    luminosity = float(metadata["luminosity_pb_inv"])
    events = read_selected(path, ["gen_mass", mass_variable, "photon_origin", "weight"], selection, friends=friends)
    generated = np.round(events["gen_mass"], 9)
    order = np.argsort(generated, kind="stable")
    generated = generated[order]
    masses = np.asarray(events[mass_variable], dtype=np.float64)[order]
    if masses.ndim == 2:
        matched = truth_matched_pairs(events["photon_origin"][order])
    else:  # an empty ntuple
        masses, matched = masses.reshape(-1, 1), np.zeros((len(masses), 1), dtype=bool)
    weights = np.asarray(events["weight"], dtype=np.float64)[order]
    result = []
    for entry in metadata["masses"]:
        mass = round(float(entry["mass"]), 9)
        here = slice(np.searchsorted(generated, mass, "left"), np.searchsorted(generated, mass, "right"))
        truth = masses[here][matched[here]]
        result.append(SignalMass(mass, Events(masses[here], weights[here]), truth[np.isfinite(truth)],
                                 1.0 / (float(entry["born_cross_section_pb"]) * luminosity)))  # fmt: skip
    return result


def background_events(layout: OutputLayout, selection: str, mass_variable: str,
                      backgrounds=BACKGROUND_SAMPLES, *, luminosity: float | None = None) -> Events:  # fmt: skip
    """The selected events of the ``backgrounds`` samples after the kinematic fit, weighted to
    ``luminosity`` (pb^-1; as stored when None)."""
    paths = layout.existing_ntuples("kinfit", backgrounds)
    if not paths:
        raise NtupleError(f"{layout.kinfit_dir}: no background ntuples after the kinematic fit (run `bumphunt kinfit`)")
    parts = [
        Events.read(
            path,
            selection,
            mass_variable,
            friends=layout.friends(path.stem, branches_used(selection)),
            luminosity=luminosity,
        )
        for path in paths
    ]
    return Events.concatenate(parts)


def bootstrap_counts(events: Events, windows: list[np.ndarray], seeds) -> np.ndarray:
    """Events per window in pseudo-data sets drawn from weighted simulation: every event
    Poisson(weight) times (one data set per seed), so the count of a window is Poisson with
    the background's mean and windows that share events are correlated as in data.

    Parameters
    ----------
    events : Events
    windows : list of int arrays
        The events in each window (:meth:`Events.in_window`).
    seeds : sequence of SeedSequence

    Returns
    -------
    array (data sets, windows)
    """
    used = np.unique(np.concatenate(windows)) if windows else np.empty(0, dtype=np.int64)
    local = [np.searchsorted(used, window) for window in windows]
    weights = events.weights[used]
    counts = np.empty((len(seeds), len(windows)))
    for row, seed in enumerate(seeds):
        drawn = np.random.default_rng(seed).poisson(weights)
        counts[row] = [drawn[window].sum() for window in local]
    return counts
