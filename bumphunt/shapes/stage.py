"""The signal-shape stage: read the signal ntuple, fit every generated mass, interpolate, save.

Reads the ALP ntuple after the kinematic fit, writes ``signal_shapes.json`` (the
:class:`~bumphunt.models.ShapeModel` the scan loads) and its plots, at the places
:class:`~bumphunt.layout.OutputLayout` names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import writable_folder
from .._progress import progress_bar
from ..cuts import branches_used, evaluate_cut
from ..errors import NtupleError
from ..kinematics import Beams
from ..layout import OutputLayout
from ..models.lifetime import LifetimeResponse
from ..models.signal import MassFit, ShapeModel
from ..models.splines import held_out_masses
from ..ntuple import check_branches, iterate_ntuple, read_metadata, truth_matched_pairs
from ..pipeline import refuse_disagreement
from ..plotting import plot_shape_fits, plot_shape_parameters, save_figure
from ..samples import signal_sample, user_samples
from .engines import PEAK_PARAMETERS
from .interpolation import build_shape_model
from .massfit import fit_mass, measure_endpoint_edge
from .validation import add_goodness_of_fit


@dataclass(frozen=True)
class ShapesSummary:
    """What :func:`run_shapes` produced."""

    model: ShapeModel
    path: Path
    plots: list[Path]
    seconds: float


def signal_candidates(path, mass_variable: str, selection: str = "", step_size: int = 500_000, friends=()):
    """Diphoton candidates of a signal ntuple, grouped by generated mass.

    ``friends``: friend ntuples holding branches the cut needs (the selection's decision).

    Without truth (:func:`has_truth`: a user's sample without a truth branch), the correct pair
    is found by :func:`nearest_pair_matching`.

    Returns
    -------
    dict mass -> (candidates (n, 3), truth-matched (n, 3)), and dict mass -> generated events.
    """
    metadata = read_metadata(path)
    if "masses" not in metadata:
        raise NtupleError(f"{path}: metadata lacks the generated masses (not an ALP signal ntuple?)")
    for entry in metadata["masses"]:
        if "n_generated" not in entry:
            raise NtupleError(f"{path}: metadata of the mass {entry.get('mass')} GeV lacks n_generated")
    generated = {round(float(m["mass"]), 9): int(m["n_generated"]) for m in metadata["masses"]}
    needed = sorted({"gen_mass", "photon_origin", mass_variable} | branches_used(selection))
    pieces: dict[float, list] = {}
    for chunk in iterate_ntuple(path, needed, step_size=step_size, friends=friends):
        keep = evaluate_cut(selection, chunk, len(chunk["gen_mass"]))
        if not keep.any():
            continue
        masses = np.round(chunk["gen_mass"][keep], 9)
        candidates = chunk[mass_variable][keep]
        matched = truth_matched_pairs(chunk["photon_origin"][keep])
        order = np.argsort(masses, kind="stable")
        masses, candidates, matched = masses[order], candidates[order], matched[order]
        starts = np.flatnonzero(np.r_[True, masses[1:] != masses[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(masses)]):
            pieces.setdefault(float(masses[start]), []).append((candidates[start:stop], matched[start:stop]))
    grouped = {
        mass: (np.concatenate([c for c, _ in parts]), np.concatenate([t for _, t in parts]))
        for mass, parts in sorted(pieces.items())
    }
    unknown = sorted(set(grouped) - set(generated))
    if unknown:
        raise NtupleError(f"{path}: events of the mass {unknown[0]} GeV, which its metadata does not list")
    if not has_truth(path):
        grouped = {mass: (c, nearest_pair_matching(c, mass)) for mass, (c, _) in grouped.items()}
    return grouped, generated


def has_truth(path) -> bool:
    """Whether a signal ntuple knows which photons come from the ALP: the toy's always do, a
    user's sample when its branch map names ``photon_truth``."""
    return bool(read_metadata(path).get("truth_matching", True))


#: Without truth, a pair counts as correct within this many robust standard deviations of the
#: generated mass (:func:`nearest_pair_matching`).
MATCHING_SIGMAS = 3.0


def nearest_pair_matching(candidates: np.ndarray, mass: float) -> np.ndarray:
    """(n, 3) mask of the correct pair of each event without truth information: the pair
    nearest the generated ``mass``, when it lies within :data:`MATCHING_SIGMAS` robust standard
    deviations (1.4826 x the median absolute distance of the nearest pairs at this mass, a
    resolution estimate that the wrong pairs, further away, barely move)."""
    distance = np.abs(np.nan_to_num(candidates, nan=np.inf) - mass)
    nearest = np.argmin(distance, axis=1)
    closest = distance[np.arange(len(candidates)), nearest]
    finite = np.isfinite(closest)
    matched = np.zeros(candidates.shape, dtype=bool)
    if not finite.any():
        return matched
    sigma = 1.4826 * float(np.median(closest[finite]))
    inside = finite & (closest <= MATCHING_SIGMAS * sigma)
    matched[np.flatnonzero(inside), nearest[inside]] = True
    return matched


def efficiency_scales(path, selection: str = "", step_size: int = 500_000, friends=()) -> dict[float, float]:
    """Per generated mass, what turns selected-per-simulated events into selected per produced ALP
    (the Born cross-section): the sample's ISR factor (simulated events stand for sigma_Born x
    isr_factor) times the mean trigger efficiency of the selected events. 1 for ntuples
    without them."""
    metadata = read_metadata(path)
    isr = {round(float(m["mass"]), 9): float(m.get("isr_factor", 1.0)) for m in metadata["masses"]}
    if "trigger_efficiency" not in check_branches(path, None):
        return isr
    sums: dict[float, list[float]] = {}
    needed = sorted({"gen_mass", "trigger_efficiency"} | branches_used(selection))
    for chunk in iterate_ntuple(path, needed, step_size=step_size, friends=friends):
        keep = evaluate_cut(selection, chunk, len(chunk["gen_mass"]))
        masses, trigger = np.round(chunk["gen_mass"][keep], 9), chunk["trigger_efficiency"][keep]
        for mass in np.unique(masses):
            at = masses == mass
            entry = sums.setdefault(float(mass), [0.0, 0.0])
            entry[0] += float(trigger[at].sum())
            entry[1] += float(at.sum())
    return {mass: factor * (sums[mass][0] / sums[mass][1] if sums.get(mass, [0, 0])[1] else 1.0)
            for mass, factor in isr.items()}  # fmt: skip


def lifetime_response(path, fits, mass_variable: str, selection: str = "", step_size: int = 500_000, friends=(),
                      long_lived=None, long_lived_friends=()) -> LifetimeResponse | None:  # fmt: skip
    """The efficiency versus lifetime (:class:`~bumphunt.models.lifetime.LifetimeResponse`) of the
    candidates the efficiency counts: the selected events' candidates in each fit's window.

    ``long_lived``: the ntuple of the long-lived ALPs (sample ``alp_long_lived``), whose
    candidates in the same windows extend the reach. None when the signal ntuple lacks proper
    decay lengths or the generated lifetimes (prompt samples).
    """
    windows = {round(f.mass, 9): (f.lower, f.upper) for f in fits if f.ok}
    sources: dict[float, list[tuple[float, int]]] = {}
    pieces: dict[float, list[np.ndarray]] = {m: [] for m in windows}
    for ntuple, ntuple_friends in ((path, friends), (long_lived, long_lived_friends)):
        if ntuple is None:
            continue
        for entry in read_metadata(ntuple).get("masses", []):
            mass = round(float(entry["mass"]), 9)
            # the signal's lifetime first (k = 1); long-lived ALPs only where the signal decays
            if mass in windows and float(entry.get("ctau_cm", 0.0)) > 0.0 and (ntuple is path or mass in sources):
                sources.setdefault(mass, []).append((float(entry["ctau_cm"]), int(entry["n_generated"])))
        if "proper_decay_length" not in check_branches(ntuple, None):
            if ntuple is path:
                return None
            continue
        _count_decay_lengths(ntuple, windows, pieces, mass_variable, selection, step_size, ntuple_friends)
    masses = sorted(m for m in windows if m in sources and sources[m][0][0] > 0.0)
    if not masses:
        return None
    lengths = [np.concatenate(pieces[m]) if pieces[m] else np.zeros(0) for m in masses]
    return LifetimeResponse.measure(masses, [sources[m] for m in masses], lengths)


def _count_decay_lengths(path, windows, pieces, mass_variable, selection, step_size, friends) -> None:
    """Append to ``pieces[mass]`` the proper decay length of every counted candidate of ``path``."""
    needed = sorted({"gen_mass", "proper_decay_length", mass_variable} | branches_used(selection))
    for chunk in iterate_ntuple(path, needed, step_size=step_size, friends=friends):
        keep = evaluate_cut(selection, chunk, len(chunk["gen_mass"]))
        masses = np.round(chunk["gen_mass"][keep], 9)
        candidates, lengths = chunk[mass_variable][keep], chunk["proper_decay_length"][keep]
        for mass in np.unique(masses):
            if mass not in windows:
                continue
            at = masses == mass
            lower, upper = windows[mass]
            counted = np.sum((candidates[at] >= lower) & (candidates[at] <= upper), axis=1)
            pieces[mass].append(np.repeat(lengths[at], counted))


def _peak_values(fit: MassFit) -> dict:
    return {name: fit.values[name] for name in PEAK_PARAMETERS if name in fit.values}


def _fit_or_flag(mass, grouped, generated, options, peak_starts, scales=None) -> MassFit:
    if mass not in grouped:
        return MassFit(float(mass), "no events pass the selection", generated[mass])
    candidates, matched = grouped[mass]
    fit = fit_mass(mass, candidates, matched, generated[mass], peak_starts=peak_starts, **options)
    scale = (scales or {}).get(mass, 1.0)
    if "efficiency" in fit.values:
        fit.values["efficiency"] *= scale
        fit.errors["efficiency"] *= scale
    return fit


def run_shapes(config: dict, input_path=None, output_dir=None, *, progress: bool = True) -> ShapesSummary:
    """The signal-shape stage: fit every generated mass, interpolate, validate, save.

    Parameters
    ----------
    config : dict
        Validated configuration (its ``shapes`` section).
    input_path : path, optional
        Signal ntuple with the kinematic fit; default ``<output_dir>/kinfit/alp.root``.
    output_dir : path, optional
        Default ``<output_dir>/shapes``; receives ``signal_shapes.json`` and the plots.
    """
    started = time.perf_counter()
    settings = config["shapes"]
    layout = OutputLayout.from_config(config).with_stage_dir("shapes", output_dir)
    if input_path is None:
        refuse_disagreement("shapes", config, layout)
    writable_folder(layout.shapes_dir)
    signal_name = signal_sample(config)
    input_path = Path(input_path) if input_path else layout.ntuple("kinfit", signal_name)
    check_branches(input_path, [])  # a missing or damaged input is the first thing to say
    friends = layout.friends(input_path.stem, branches_used(settings["selection"]))
    grouped, generated = signal_candidates(input_path, settings["mass_variable"], settings["selection"],
                                           friends=friends)  # fmt: skip
    matching = "truth" if has_truth(input_path) else "nearest pair"
    scales = efficiency_scales(input_path, settings["selection"], friends=friends)
    masses = np.array(sorted(generated))
    sqrt_s = Beams.from_config(config).sqrt_s
    edge = measure_endpoint_edge(grouped, sqrt_s, settings["window_sigmas"])
    options = dict(
        peak=settings["peak"],
        n_l=settings["n_left"],
        n_r=settings["n_right"],
        second_gaussian=settings["second_gaussian"],
        window_sigmas=settings["window_sigmas"],
        sqrt_s=sqrt_s,
        edge_shift=edge["shift"],
        edge_width=edge["width"],
        engine=settings["engine"],
    )
    with progress_bar(progress) as bar:
        # pass 1: each mass starts from its lower neighbour, which keeps near-degenerate
        # parameters on one solution along the grid
        advance = bar.add("fit signal shapes", len(masses))
        fits, previous = [], None
        for mass in masses:
            fits.append(_fit_or_flag(mass, grouped, generated, options, [previous] if previous else [], scales))
            if fits[-1].ok:
                previous = _peak_values(fits[-1])
            advance(1)
    model_settings = {
        "mass_variable": settings["mass_variable"],
        "peak": settings["peak"],
        "n_l": settings["n_left"],
        "n_r": settings["n_right"],
        "second_gaussian": settings["second_gaussian"],
        "window_sigmas": settings["window_sigmas"],
        "sqrt_s": sqrt_s,
        "edge_shift": edge["shift"],
        "edge_width": edge["width"],
        "edge_measurement": edge,
        "spline_basis": settings["spline_basis"],
        "spline_penalty": settings["spline_penalty"],
        "min_fit_pvalue": settings["min_fit_pvalue"],
        "selection": settings["selection"],
        "engine": settings["engine"],
        "source": str(input_path.resolve()),
        "truth_matching": matching,
    }
    held_out = held_out_masses(masses, settings["n_held_out"])
    truth = {mass: c[np.isfinite(c) & t] for mass, (c, t) in grouped.items()}
    # the final interpolation reports what is worth a warning
    model = build_shape_model(fits, held_out, model_settings, truth, report=False)
    with progress_bar(progress) as bar:
        # pass 2: every mass also starts from the interpolation; a fit stuck in a local
        # minimum of pass 1 moves to the better one
        advance = bar.add("refit from the interpolation", len(masses))
        for i, fit in enumerate(fits):
            if fit.ok:
                start = {name: float(model.splines[name](fit.mass)) for name in _peak_values(fit) if name != "mu"}
                refit = _fit_or_flag(fit.mass, grouped, generated, options, [start], scales)
                if refit.ok and refit.peak_nll < fit.peak_nll:
                    fits[i] = refit
            advance(1)
    model = build_shape_model(fits, held_out, model_settings, truth, initial=model)
    long_lived = layout.ntuple("kinfit", "alp_long_lived")
    long_lived = long_lived if long_lived.is_file() and not user_samples(config) else None
    long_lived_friends = layout.friends("alp_long_lived", branches_used(settings["selection"])) if long_lived else ()
    model.lifetime = lifetime_response(input_path, fits, settings["mass_variable"], settings["selection"],
                                       friends=friends, long_lived=long_lived,
                                       long_lived_friends=long_lived_friends)  # fmt: skip
    add_goodness_of_fit(model, {m: grouped[m][0][np.isfinite(grouped[m][0])] for m in model.held_out if m in grouped})
    path = model.save(layout.shapes_file)
    plots = []
    if settings["plots"]:
        plots.append(save_figure(plot_shape_parameters(model), layout.shape_parameters_plot, dpi=60))
        plots.append(plot_shape_fits(model, grouped, layout.shape_fits_plot))
    return ShapesSummary(model, path, plots, time.perf_counter() - started)
