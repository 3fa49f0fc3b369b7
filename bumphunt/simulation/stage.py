"""Toy Belle II simulation: generate, reconstruct and pre-select three-photon events.

Samples (:data:`bumphunt.ntuple.SAMPLE_IDS`): the ALP signal ``alp`` on a mass grid, the QED background
``ggg`` (e+e- -> gamma gamma gamma) and the peaking backgrounds ``pi0_gamma``,
``eta_gamma``, ``etaprime_gamma`` (e+e- -> gamma P, P -> gamma gamma). Each is written to
``<output_dir>/simulation/<sample>.root`` (:mod:`bumphunt.ntuple`), weighted to the
configured luminosity.

Reconstruction of every event: soft beam-background photons are overlaid; photons from a
displaced decay are seen at the point where they reach the calorimeter, in the direction
from the interaction point (decays beyond its inner surface are lost); photons closer than
the merging angle form one cluster; energies and angles are smeared; clusters in the
acceptance above threshold are kept; the event passes the pre-selection with at least three
of them and the three most energetic inside the M_ggg window.

Random numbers: each chunk of work draws from its own stream, derived from the master seed
and the chunk's identity (sample, mass index or chunk index), so results do not depend on
the number of worker processes.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import physics
from .._io import writable_folder
from .._parallel import executor, ordered_map
from .._progress import progress_bar
from .._version import __version__
from ..config import signal_masses
from ..errors import ConfigError
from ..kinematics import Beams, massless_four_vectors, polar_angles
from ..layout import OutputLayout
from ..ntuple import ORIGIN_BEAM_BACKGROUND, ORIGIN_DAUGHTER, ORIGIN_PROMPT, SAMPLE_IDS, SAMPLES, NtupleWriter
from .detector import Calorimeter, form_clusters, smear, three_photon_mass
from .generators import generate_two_photon_resonance, isotropic_directions
from .qed import GenerationCuts, ThreePhotonSampler, generation_cuts_for_acceptance

#: At most this many beam-background photons are overlaid on one event.
MAX_BEAM_BACKGROUND_PHOTONS = 3
_GGG_PILOT_TRIALS = 200_000


@dataclass(frozen=True)
class Reconstruction:
    """Everything needed to turn true photons into pre-selected photon candidates."""

    beams: Beams
    calorimeter: Calorimeter
    beam_background_mean: float
    beam_background_mean_energy: float
    beam_background_energy_min: float
    m_ggg_min: float
    m_ggg_max: float

    @classmethod
    def from_config(cls, config: dict) -> Reconstruction:
        beam_background = config["detector"]["beam_background"]
        beams = Beams.from_config(config)
        return cls(
            beams=beams,
            calorimeter=Calorimeter.from_config(config),
            beam_background_mean=beam_background["mean_photons"],
            beam_background_mean_energy=beam_background["mean_energy"],
            beam_background_energy_min=beam_background["energy_min"],
            m_ggg_min=config["preselection"]["m_ggg_min"] * beams.sqrt_s,
            m_ggg_max=config["preselection"]["m_ggg_max"] * beams.sqrt_s,
        )

    def overlay_beam_background(self, rng, photons, production, origin):
        """Append :data:`MAX_BEAM_BACKGROUND_PHOTONS` slots of soft photons from the IP.

        Returns photons, production points, origins and the mask of slots in use.
        """
        n = len(photons)
        k = MAX_BEAM_BACKGROUND_PHOTONS
        n_extra = np.minimum(rng.poisson(self.beam_background_mean, n), k)
        energy = self.beam_background_energy_min + rng.exponential(self.beam_background_mean_energy, (n, k))
        extra = massless_four_vectors(energy, isotropic_directions(rng, n * k).reshape(n, k, 3))
        valid = np.concatenate([np.ones(origin.shape, bool), np.arange(k) < n_extra[:, None]], axis=1)
        return (
            np.concatenate([photons, extra], axis=1),
            np.concatenate([production, np.zeros((n, k, 3))], axis=1),
            np.concatenate([origin, np.full((n, k), ORIGIN_BEAM_BACKGROUND)], axis=1),
            valid,
        )

    def __call__(self, rng, photons, production, origin) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reconstruct and pre-select events.

        Parameters
        ----------
        rng : numpy.random.Generator
        photons : array (n, k, 4)
            True photon four-momenta in the lab.
        production : array (n, k, 3)
            Where each photon is produced (cm).
        origin : array (n, k) of int
            Origin codes (``bumphunt.ntuple.ORIGIN_*``).

        Returns
        -------
        passed : array (n,) of bool
        branches : dict
            Photon and ``n_photons``/``m_ggg`` branches of the events that passed.
        """
        photons, production, origin, valid = self.overlay_beam_background(rng, photons, production, origin)
        energy = photons[..., 0]
        direction = photons[..., 1:] / energy[..., None]
        valid &= self.calorimeter.inside(production)
        displaced = valid & np.any(production != 0.0, axis=-1)
        if np.any(displaced):
            impact = self.calorimeter.impact_points(production[displaced], direction[displaced])
            direction[displaced] = impact / np.linalg.norm(impact, axis=-1, keepdims=True)
        energy, direction, origin, valid = form_clusters(energy, direction, origin, valid, self.calorimeter.merge_angle)
        true_theta, true_phi = polar_angles(direction)
        energy_or_one = np.where(valid, energy, 1.0)
        measured_e, measured_theta, measured_phi, covariance = smear(
            rng, energy_or_one, true_theta, true_phi, self.calorimeter.resolution
        )
        accepted = (
            valid
            & (measured_e > self.calorimeter.energy_min)
            & (measured_theta > self.calorimeter.theta_min)
            & (measured_theta < self.calorimeter.theta_max)
        )
        n_accepted = accepted.sum(axis=1)
        leading = np.argsort(-np.where(accepted, measured_e, -np.inf), axis=1, kind="stable")[:, :3]

        def take(array):
            index = leading if array.ndim == 2 else leading[..., None]
            return np.take_along_axis(array, index, axis=1)

        photon_e, photon_theta, photon_phi = take(measured_e), take(measured_theta), take(measured_phi)
        m_ggg = three_photon_mass(photon_e, photon_theta, photon_phi)
        passed = (n_accepted >= 3) & (m_ggg > self.m_ggg_min) & (m_ggg < self.m_ggg_max)
        branches = {
            "n_photons": n_accepted,
            "m_ggg": m_ggg,
            "photon_E": photon_e,
            "photon_theta": photon_theta,
            "photon_phi": photon_phi,
            "photon_cov": take(covariance),
            "photon_true_E": take(energy),
            "photon_true_theta": take(true_theta),
            "photon_true_phi": take(true_phi),
            "photon_origin": take(origin),
        }
        return passed, {name: array[passed] for name, array in branches.items()}


@dataclass(frozen=True)
class ResonanceTask:
    """Generate e+e- -> gamma P, P -> gamma gamma at a few masses (one stream per mass)."""

    sample: str
    masses: tuple[float, ...]
    mass_indices: tuple[int, ...]
    events_per_mass: int
    ctaus: tuple[float, ...]
    weights: tuple[float, ...]
    seed: int
    reconstruction: Reconstruction

    @property
    def n_generated(self) -> int:
        return self.events_per_mass * len(self.masses)


@dataclass(frozen=True)
class GggTask:
    """Generate, unweight and reconstruct one chunk of gamma gamma gamma trials."""

    trials: int
    first_trial: int
    chunk_index: int
    cuts: GenerationCuts
    reference_weight: float
    weight_per_pb: float
    seed: int
    reconstruction: Reconstruction

    @property
    def n_generated(self) -> int:
        return self.trials


@dataclass
class ChunkResult:
    """Pre-selected events of one task, with counters for the sample metadata."""

    branches: dict[str, np.ndarray]
    n_generated: int
    n_selected_per_mass: list[int] = field(default_factory=list)
    weight_sum: float = 0.0
    weight_sum_sq: float = 0.0
    n_unweighted: int = 0
    n_overweight: int = 0


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def run_resonance_task(task: ResonanceTask) -> ChunkResult:
    """Simulate a :class:`ResonanceTask`."""
    sample_id = SAMPLE_IDS[task.sample]
    reconstruction = task.reconstruction
    pieces, selected = [], []
    n = task.events_per_mass
    for mass, mass_index, ctau, weight in zip(task.masses, task.mass_indices, task.ctaus, task.weights):
        rng = _stream(task.seed, sample_id, 0, mass_index)
        truth = generate_two_photon_resonance(rng, n, mass, reconstruction.beams, ctau=ctau)
        photons = np.concatenate([truth.recoil[:, None], truth.daughters], axis=1)
        production = np.zeros((n, 3, 3))
        production[:, 1:] = truth.decay_vertex[:, None, :]
        origin = np.tile(np.array([ORIGIN_PROMPT, ORIGIN_DAUGHTER, ORIGIN_DAUGHTER]), (n, 1))
        passed, branches = reconstruction(rng, photons, production, origin)
        n_passed = int(passed.sum())
        branches.update(
            event_id=mass_index * n + np.flatnonzero(passed),
            sample_id=np.full(n_passed, sample_id),
            weight=np.full(n_passed, weight),
            gen_mass=np.full(n_passed, mass),
            decay_vertex=truth.decay_vertex[passed],
        )
        pieces.append(branches)
        selected.append(n_passed)
    return ChunkResult(_concatenate(pieces), task.n_generated, n_selected_per_mass=selected)


def run_ggg_task(task: GggTask) -> ChunkResult:
    """Simulate a :class:`GggTask`: importance-sample, unweight against the reference weight,
    reconstruct. Events above the reference weight keep their larger weight."""
    rng = _stream(task.seed, SAMPLE_IDS["ggg"], 0, task.chunk_index)
    reconstruction = task.reconstruction
    sampler = ThreePhotonSampler(reconstruction.beams.sqrt_s, task.cuts)
    photons_cm, weight_pb = sampler.sample(rng, task.trials)
    kept = (weight_pb > 0.0) & (rng.random(task.trials) * task.reference_weight < weight_pb)
    unweighted_pb = np.maximum(weight_pb[kept], task.reference_weight)
    photons = reconstruction.beams.local_cm_to_lab(photons_cm[kept])
    n = len(photons)
    production = np.zeros((n, 3, 3))
    origin = np.full((n, 3), ORIGIN_PROMPT)
    passed, branches = reconstruction(rng, photons, production, origin)
    n_passed = int(passed.sum())
    branches.update(
        event_id=task.first_trial + np.flatnonzero(kept)[passed],
        sample_id=np.full(n_passed, SAMPLE_IDS["ggg"]),
        weight=unweighted_pb[passed] * task.weight_per_pb,
        gen_mass=np.full(n_passed, np.nan),
        decay_vertex=np.zeros((n_passed, 3)),
    )
    return ChunkResult(
        branches,
        task.trials,
        weight_sum=float(weight_pb.sum()),
        weight_sum_sq=float(np.sum(weight_pb**2)),
        n_unweighted=n,
        n_overweight=int(np.sum(weight_pb > task.reference_weight)),
    )


def _concatenate(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}


@dataclass(frozen=True)
class SamplePlan:
    """The tasks of one sample and the metadata known before running them."""

    sample: str
    tasks: list
    run: Callable[[object], ChunkResult]
    metadata: dict
    n_generated: int


def plan_signal(config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """Tasks for the ALP signal grid: groups of masses of about ``chunk_size`` events."""
    signal = config["simulation"]["signal"]
    masses = signal_masses(config)
    n_per_mass = signal["events_per_mass"]
    coupling = signal["coupling"]
    luminosity = config["luminosity"]
    sqrt_s = reconstruction.beams.sqrt_s
    cross_sections = physics.alp_cross_section(masses, coupling, sqrt_s)
    ctaus = physics.alp_ctau(masses, coupling)
    weights = cross_sections * luminosity / max(n_per_mass, 1)
    per_task = max(1, config["simulation"]["chunk_size"] // max(n_per_mass, 1))
    tasks = []
    for start in range(0, len(masses), per_task):
        group = slice(start, start + per_task)
        tasks.append(
            ResonanceTask(
                "alp",
                tuple(float(m) for m in masses[group]),
                tuple(range(start, min(start + per_task, len(masses)))),
                n_per_mass,
                tuple(float(c) for c in ctaus[group]),
                tuple(float(w) for w in weights[group]),
                config["seed"],
                reconstruction,
            )
        )
    metadata = {
        "description": "e+e- -> gamma a, a -> gamma gamma (ALP, 1 + cos^2 theta*, isotropic decay)",
        "coupling_gev_inv": coupling,
        "masses": [
            {"mass": float(m), "cross_section_pb": float(x), "ctau_cm": float(c), "n_generated": n_per_mass}
            for m, x, c in zip(masses, cross_sections, ctaus)
        ],
    }
    return SamplePlan("alp", tasks, run_resonance_task, metadata, n_per_mass * len(masses))


def plan_meson(sample: str, config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """Tasks for one peaking background e+e- -> gamma P, P -> gamma gamma."""
    meson = physics.MESONS[sample]
    n_events = config["simulation"]["backgrounds"][sample]["events"]
    cross_section = meson.cross_section(reconstruction.beams.sqrt_s)
    weight = cross_section * config["luminosity"] / max(n_events, 1)
    chunk = config["simulation"]["chunk_size"]
    tasks = [
        ResonanceTask(
            sample,
            (meson.mass,),
            (index,),
            min(chunk, n_events - start),
            (0.0,),
            (weight,),
            config["seed"],
            reconstruction,
        )
        for index, start in enumerate(range(0, n_events, chunk))
    ]
    metadata = {
        "description": f"e+e- -> gamma {meson.name}, {meson.name} -> gamma gamma",
        "cross_section_pb": cross_section,
        "cross_section_note": f"sigma(e+e- -> gamma P) B(P -> gamma gamma), q^2|F| = {meson.q2_form_factor} GeV "
        f"({meson.form_factor_source}), B = {meson.branching_gg}",
    }
    return SamplePlan(sample, tasks, run_resonance_task, metadata, n_events)


def plan_ggg(config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """Tasks for gamma gamma gamma, after a pilot run that fixes the unweighting.

    The pilot sets the reference weight (its largest weight) and the expected acceptance
    of the unweighting, hence the number of trials that yields about ``events`` events.
    """
    beams, calorimeter = reconstruction.beams, reconstruction.calorimeter
    cuts = generation_cuts_for_acceptance(beams, calorimeter.energy_min, calorimeter.theta_min, calorimeter.theta_max)
    n_events = config["simulation"]["backgrounds"]["ggg"]["events"]
    sampler = ThreePhotonSampler(beams.sqrt_s, cuts)
    _, pilot_weights = sampler.sample(_stream(config["seed"], SAMPLE_IDS["ggg"], 1), _GGG_PILOT_TRIALS)
    reference_weight = float(pilot_weights.max())
    acceptance = float(np.minimum(pilot_weights, reference_weight).mean()) / reference_weight
    n_trials = math.ceil(n_events / acceptance) if n_events else 0
    trials_per_chunk = max(1, math.ceil(config["simulation"]["chunk_size"] / acceptance))
    weight_per_pb = config["luminosity"] / max(n_trials, 1)
    tasks = [
        GggTask(
            min(trials_per_chunk, n_trials - first),
            first,
            index,
            cuts,
            reference_weight,
            weight_per_pb,
            config["seed"],
            reconstruction,
        )
        for index, first in enumerate(range(0, n_trials, trials_per_chunk))
    ]
    metadata = {
        "description": "e+e- -> gamma gamma gamma, leading-order QED (Berends & Kleiss 1981), massless electrons",
        "generation_cuts": cuts.to_dict(),
        "reference_weight_pb": reference_weight,
    }
    return SamplePlan("ggg", tasks, run_ggg_task, metadata, n_trials)


#: Sample -> the function that plans its tasks (config, reconstruction) -> SamplePlan.
PLANNERS: dict[str, Callable[[dict, Reconstruction], SamplePlan]] = {
    "alp": plan_signal,
    "ggg": plan_ggg,
    **{meson: functools.partial(plan_meson, meson) for meson in ("pi0_gamma", "eta_gamma", "etaprime_gamma")},
}


def plan_samples(config: dict, samples: Iterable[str] | None = None) -> list[SamplePlan]:
    """Plans of the requested samples (all that can be simulated by default), skipping those
    with no events."""
    samples = [s for s in SAMPLES if s in PLANNERS] if samples is None else list(samples)
    unknown = [s for s in samples if s not in PLANNERS]
    if unknown:
        raise ConfigError(f"unknown sample {unknown[0]!r}; choose from {', '.join(PLANNERS)}")
    reconstruction = Reconstruction.from_config(config)
    plans = [PLANNERS[sample](config, reconstruction) for sample in samples]
    return [plan for plan in plans if plan.n_generated > 0]


@dataclass(frozen=True)
class SampleSummary:
    """What :func:`run_simulation` wrote for one sample."""

    sample: str
    path: Path
    n_generated: int
    n_selected: int
    expected_events: float
    cross_section_pb: float
    seconds: float

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def run_simulation(
    config: dict,
    *,
    samples: Iterable[str] | None = None,
    output_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[SampleSummary]:
    """Simulate the samples of an analysis and write one ntuple per sample.

    Parameters
    ----------
    config : dict
        A validated configuration (:func:`bumphunt.config.load_config`).
    samples : iterable of str, optional
        Subset of :data:`bumphunt.ntuple.SAMPLES`; all by default.
    output_dir : str or Path, optional
        Directory of the ntuples; ``<config output_dir>/simulation`` by default.
    workers : int, optional
        Worker processes; ``simulation.workers`` by default (0 = one per core).
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of SampleSummary
    """
    layout = OutputLayout.from_config(config).with_stage_dir("simulation", output_dir)
    writable_folder(layout.simulation_dir)
    workers = config["simulation"]["workers"] if workers is None else workers
    workers = workers or os.cpu_count() or 1
    plans = plan_samples(config, samples)
    summaries = []
    with progress_bar(progress) as bar, executor(workers) as pool:
        for plan in plans:
            started = time.perf_counter()
            path = layout.ntuple("simulation", plan.sample)
            advance = bar.add(f"simulate {plan.sample}", plan.n_generated)
            totals = _Totals()
            with NtupleWriter(path) as writer:
                for result in ordered_map(pool, plan.run, plan.tasks, max_in_flight=2 * workers):
                    writer.extend(result.branches)
                    totals.add(result)
                    advance(result.n_generated)
                metadata = _sample_metadata(plan, totals, config, writer.entries)
                writer.metadata = metadata
            summaries.append(
                SampleSummary(
                    plan.sample,
                    path,
                    metadata["n_generated"],
                    writer.entries,
                    totals.expected_events,
                    metadata.get("cross_section_pb", float("nan")),
                    time.perf_counter() - started,
                )
            )
    return summaries


@dataclass
class _Totals:
    """Counters summed over the chunks of a sample."""

    n_generated: int = 0
    n_selected_per_mass: list[int] = field(default_factory=list)
    weight_sum: float = 0.0
    weight_sum_sq: float = 0.0
    n_unweighted: int = 0
    n_overweight: int = 0
    expected_events: float = 0.0

    def add(self, result: ChunkResult) -> None:
        self.n_generated += result.n_generated
        self.n_selected_per_mass += result.n_selected_per_mass
        self.weight_sum += result.weight_sum
        self.weight_sum_sq += result.weight_sum_sq
        self.n_unweighted += result.n_unweighted
        self.n_overweight += result.n_overweight
        self.expected_events += float(result.branches["weight"].sum()) if result.branches else 0.0


def _sample_metadata(plan: SamplePlan, counters: _Totals, config: dict, n_selected: int) -> dict:
    metadata = {
        "sample": plan.sample,
        "sample_id": SAMPLE_IDS[plan.sample],
        "bumphunt_version": __version__,
        "luminosity_pb_inv": config["luminosity"],
        "seed": config["seed"],
        "n_generated": counters.n_generated,
        "n_selected": n_selected,
        "expected_events": counters.expected_events,
        **plan.metadata,
    }
    if plan.sample == "alp":
        for entry, n_sel in zip(metadata["masses"], counters.n_selected_per_mass):
            entry["n_selected"] = n_sel
    if plan.sample == "ggg":
        n_trials = counters.n_generated
        mean = counters.weight_sum / n_trials
        variance = max(counters.weight_sum_sq / n_trials - mean**2, 0.0)
        metadata.update(
            cross_section_pb=mean,
            cross_section_error_pb=math.sqrt(variance / n_trials),
            n_trials=n_trials,
            n_generated=counters.n_unweighted,
            overweight_fraction=counters.n_overweight / max(counters.n_unweighted, 1),
        )
    metadata["config"] = config
    return metadata
