"""Toy Belle II simulation: generate, reconstruct and pre-select three-photon events.

Samples (:data:`bumphunt.ntuple.SAMPLE_IDS`): the ALP signal ``alp`` on a mass grid, the QED background
``ggg`` (e+e- -> gamma gamma gamma) and the peaking backgrounds ``pi0_gamma``,
``eta_gamma``, ``etaprime_gamma`` (e+e- -> gamma P, P -> gamma gamma). Each is written to
``<output_dir>/simulation/<sample>.root`` (:mod:`bumphunt.ntuple`), weighted to the
configured luminosity.

Every event is generated in its own collision (beam-energy spread and ISR,
:mod:`bumphunt.simulation.beam`). Reconstruction of every event: soft beam-background photons
are overlaid; electrons and positrons leave tracks (a good track vetoes the event, a found
track takes their cluster) or, without a track, clusters like photons; photons from a
displaced decay are seen at the point where they reach the calorimeter, in the direction
from the interaction point (decays beyond its inner surface are lost); photons closer than
the merging angle form one cluster; energies, angles and cluster times are smeared; clusters
in the acceptance above threshold and within the time window are kept; the event passes the
pre-selection with at least three of them, the three most energetic simultaneous and inside
the M_ggg window; its weight includes the trigger efficiency.

Random numbers: each chunk of work draws from its own stream, derived from the master seed
and the chunk's identity (sample, mass index or chunk index), so results do not depend on
the number of worker processes; the collisions come from a second stream of the same
identity (key 2), so switching the beam effects off leaves the other draws unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import physics
from .._io import atomic_write_text, writable_folder
from .._parallel import dask_scheduler, executor, ordered_map, task_slots
from .._progress import progress_bar
from .._version import __version__
from ..config import signal_masses
from ..errors import ConfigError
from ..kinematics import Beams, massless_four_vectors, polar_angles
from ..layout import OutputLayout
from ..models.lifetime import K_MAX, lifetime_ladder
from ..ntuple import (
    BACKGROUND_SAMPLES,
    ORIGIN_BEAM_BACKGROUND,
    ORIGIN_DAUGHTER,
    ORIGIN_ELECTRON,
    ORIGIN_PROMPT,
    PAIRS,
    SAMPLE_IDS,
    SAMPLES,
    SIGNAL_SAMPLES,
    NtupleWriter,
)
from ..plotting import plot_composition, save_figure
from .beam import MASSLESS_SCALING, MESON_POWER, BeamEffects, Collisions, CrossSectionScaling
from .bhabha import RadiativeBhabhaSampler, radiative_bhabha_cuts_for_acceptance
from .composition import Composition, composition_of_layout
from .detector import Calorimeter, ClusterTiming, Tracking, Trigger, merge_clusters, smear, three_photon_mass
from .generators import generate_two_photon_resonance, isotropic_directions
from .processes import MesonGammaGammaSampler, RadiativeReturnSampler, TwoPhotonSampler, radiative_return_channels
from .qed import ThreePhotonSampler, generation_cuts_for_acceptance

#: At most this many beam-background photons are overlaid on one event.
MAX_BEAM_BACKGROUND_PHOTONS = 3
_PILOT_TRIALS = 200_000


@dataclass(frozen=True)
class Reconstruction:
    """Everything needed to turn true particles into pre-selected photon candidates.

    ``beam_effects`` draws the collisions of the generators (nominal beams when None);
    ``timing``, ``tracking`` and ``trigger`` model the cluster time, the good-track veto and
    the trigger efficiency; ``cluster_time_max`` (ns) and ``cluster_time_sigmas`` are the
    pre-selection's cluster-time cuts.
    """

    beams: Beams
    calorimeter: Calorimeter
    beam_background_mean: float
    beam_background_mean_energy: float
    beam_background_energy_min: float
    m_ggg_min: float
    m_ggg_max: float
    beam_effects: BeamEffects | None = None
    timing: ClusterTiming = ClusterTiming()
    tracking: Tracking = Tracking()
    trigger: Trigger = Trigger()
    cluster_time_max: float = 200.0
    cluster_time_sigmas: float = 5.0

    def __post_init__(self):
        if self.beam_effects is None:
            object.__setattr__(self, "beam_effects", BeamEffects(self.beams))

    @classmethod
    def from_config(cls, config: dict) -> Reconstruction:
        beam_background = config["detector"]["beam_background"]
        beams = Beams.from_config(config)
        preselection = config["preselection"]
        return cls(
            beams=beams,
            calorimeter=Calorimeter.from_config(config),
            beam_background_mean=beam_background["mean_photons"],
            beam_background_mean_energy=beam_background["mean_energy"],
            beam_background_energy_min=beam_background["energy_min"],
            m_ggg_min=preselection["m_ggg_min"] * beams.sqrt_s,
            m_ggg_max=preselection["m_ggg_max"] * beams.sqrt_s,
            beam_effects=BeamEffects.from_config(config),
            timing=ClusterTiming.from_config(config),
            tracking=Tracking.from_config(config),
            trigger=Trigger.from_config(config),
            cluster_time_max=preselection["cluster_time_max"],
            cluster_time_sigmas=preselection["cluster_time_sigmas"],
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

    def __call__(
        self, rng, photons, production, origin, collisions: Collisions | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reconstruct and pre-select events.

        Parameters
        ----------
        rng : numpy.random.Generator
        photons : array (n, k, 4)
            True four-momenta in the lab of the photons and of the electrons and positrons
            (origin :data:`~bumphunt.ntuple.ORIGIN_ELECTRON`), in any order.
        production : array (n, k, 3)
            Where each particle is produced (cm).
        origin : array (n, k) of int
            Origin codes (``bumphunt.ntuple.ORIGIN_*``).
        collisions : Collisions, optional
            The collisions the events were generated in, for ``sqrt_s_true``; nominal if None.

        Returns
        -------
        passed : array (n,) of bool
        branches : dict
            Photon, ``n_photons``, ``m_ggg``, ``trigger_efficiency`` and ``sqrt_s_true``
            branches of the events that passed; the caller multiplies its weights by
            ``trigger_efficiency``.

        An electron or positron with a found track is no photon candidate, and a good track
        vetoes the event; one without a track leaves a cluster like a photon's. Random numbers
        are drawn in a fixed order (beam background, track finding when there are charged
        particles, smearing, cluster times), so samples without charged particles draw as
        before timing and tracks existed.
        """
        n = len(photons)
        photons, production, origin, valid = self.overlay_beam_background(rng, photons, production, origin)
        energy = photons[..., 0]
        direction = photons[..., 1:] / energy[..., None]
        charged = origin == ORIGIN_ELECTRON
        found, good = self.tracking.find(rng, photons[..., 1:], production, charged)
        if np.any(charged):
            momentum = photons[..., 1:][charged]
            direction[charged] = momentum / np.linalg.norm(momentum, axis=-1, keepdims=True)
        valid &= self.calorimeter.inside(production) & ~found
        displaced = valid & np.any(production != 0.0, axis=-1)
        if np.any(displaced):
            impact = self.calorimeter.impact_points(production[displaced], direction[displaced])
            direction[displaced] = impact / np.linalg.norm(impact, axis=-1, keepdims=True)
        slot_origin = origin
        clusters = merge_clusters(energy, direction, origin, valid, self.calorimeter.merge_angle)
        energy, direction, origin, valid = clusters.energy, clusters.direction, clusters.origin, clusters.valid
        true_theta, true_phi = polar_angles(direction)
        energy_or_one = np.where(valid, energy, 1.0)
        measured_e, measured_theta, measured_phi, covariance = smear(
            rng, energy_or_one, true_theta, true_phi, self.calorimeter.resolution
        )
        window = self.timing.readout_window
        slot_time = np.where(slot_origin == ORIGIN_BEAM_BACKGROUND, rng.uniform(-window, window, origin.shape), 0.0)
        true_time = np.take_along_axis(slot_time, clusters.seed, axis=1)
        measured_time = true_time + self.timing.resolution(energy_or_one) * rng.standard_normal(origin.shape)
        accepted = (
            valid
            & (measured_e > self.calorimeter.energy_min)
            & (measured_theta > self.calorimeter.theta_min)
            & (measured_theta < self.calorimeter.theta_max)
            & (np.abs(measured_time) < self.cluster_time_max)
        )
        n_accepted = accepted.sum(axis=1)
        leading = np.argsort(-np.where(accepted, measured_e, -np.inf), axis=1, kind="stable")[:, :3]

        def take(array):
            index = leading if array.ndim == 2 else leading[..., None]
            return np.take_along_axis(array, index, axis=1)

        photon_e, photon_theta, photon_phi = take(measured_e), take(measured_theta), take(measured_phi)
        m_ggg = three_photon_mass(photon_e, photon_theta, photon_phi)
        photon_time = take(measured_time)
        passed = (n_accepted >= 3) & (m_ggg > self.m_ggg_min) & (m_ggg < self.m_ggg_max)
        passed &= ~np.any(good, axis=1) & self._simultaneous(photon_time, photon_e)
        energy_sum = np.sum(np.where(accepted, measured_e, 0.0), axis=1)
        sqrt_s_true = np.full(n, self.beams.sqrt_s) if collisions is None else collisions.sqrt_s
        branches = {
            "n_photons": n_accepted,
            "m_ggg": m_ggg,
            "photon_E": photon_e,
            "photon_theta": photon_theta,
            "photon_phi": photon_phi,
            "photon_time": photon_time,
            "photon_cov": take(covariance),
            "photon_true_E": take(energy),
            "photon_true_theta": take(true_theta),
            "photon_true_phi": take(true_phi),
            "photon_origin": take(origin),
            "trigger_efficiency": self.trigger.efficiency(energy_sum),
            "sqrt_s_true": sqrt_s_true,
        }
        return passed, {name: array[passed] for name, array in branches.items()}

    def _simultaneous(self, time: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """True where the three candidates' times agree pairwise within ``cluster_time_sigmas``
        times the resolution of their difference (at the measured energies)."""
        sigma = self.timing.resolution(np.where(energy > 0.0, energy, np.nan))
        ok = np.ones(len(time), bool)
        for i, j in PAIRS:
            ok &= np.abs(time[:, i] - time[:, j]) < self.cluster_time_sigmas * np.hypot(sigma[:, i], sigma[:, j])
        return ok


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
    #: sigma(e+e- -> gamma P) ~ (1 - m^2/s)^3 s^-power: 0 for the ALP, 2 for a meson (ISR weighting).
    cross_section_power: float = 0.0

    @property
    def n_generated(self) -> int:
        return self.events_per_mass * len(self.masses)


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
        scaling = CrossSectionScaling(mass, task.cross_section_power)
        collisions = reconstruction.beam_effects.collisions(_stream(task.seed, sample_id, 2, mass_index), n, scaling)
        truth = generate_two_photon_resonance(rng, n, mass, reconstruction.beams, ctau=ctau, collisions=collisions)
        photons = np.concatenate([truth.recoil[:, None], truth.daughters], axis=1)
        production = np.zeros((n, 3, 3))
        production[:, 1:] = truth.decay_vertex[:, None, :]
        origin = np.tile(np.array([ORIGIN_PROMPT, ORIGIN_DAUGHTER, ORIGIN_DAUGHTER]), (n, 1))
        passed, branches = reconstruction(rng, photons, production, origin, collisions)
        n_passed = int(passed.sum())
        branches.update(
            event_id=mass_index * n + np.flatnonzero(passed),
            sample_id=np.full(n_passed, sample_id),
            weight=weight * branches["trigger_efficiency"],
            gen_mass=np.full(n_passed, mass),
            decay_vertex=truth.decay_vertex[passed],
            proper_decay_length=truth.proper_decay_length[passed],
        )
        pieces.append(branches)
        selected.append(n_passed)
    return ChunkResult(_concatenate(pieces), task.n_generated, n_selected_per_mass=selected)


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
    return _plan_alp("alp", config, reconstruction, [signal["coupling"]], signal["events_per_mass"])


def plan_long_lived_signal(config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """ALPs of smaller couplings (longer lifetimes) on the same mass grid, for the reach of the
    efficiency's lifetime reweighting only (``simulation.signal.long_lived``,
    :func:`long_lived_couplings`)."""
    long_lived = config["simulation"]["signal"]["long_lived"]
    couplings = long_lived_couplings(config)
    plan = _plan_alp("alp_long_lived", config, reconstruction, couplings, long_lived["events_per_mass"])
    # the smallest coupling whose efficiency the reweighting measures: K_MAX times the longest lifetime
    smallest = min([float(config["simulation"]["signal"]["coupling"]), *couplings])
    plan.metadata["lifetime_reach_gev_inv"] = smallest / math.sqrt(K_MAX)
    return plan


def long_lived_couplings(config: dict) -> list[float]:
    """The couplings (GeV^-1, decreasing) of the long-lived ALPs: the ladder down to
    ``simulation.signal.long_lived.down_to`` (:func:`bumphunt.models.lifetime.lifetime_ladder`;
    none when null or absent) and any listed in ``couplings``. Independent of the luminosity."""
    signal = config["simulation"]["signal"]
    long_lived = signal["long_lived"]
    down_to = long_lived.get("down_to")
    ladder = lifetime_ladder(float(signal["coupling"]), float(down_to)) if down_to is not None else []
    return sorted({*ladder, *(float(g) for g in long_lived["couplings"])}, reverse=True)


def _plan_alp(sample: str, config: dict, reconstruction: Reconstruction, couplings, n_per_mass: int) -> SamplePlan:
    """Tasks for ALPs on the mass grid at each of ``couplings``: groups of about ``chunk_size``
    events; every (coupling, mass) has its own random stream."""
    grid = signal_masses(config)
    masses = np.tile(grid, len(couplings))
    coupling = np.repeat(np.asarray(couplings, dtype=np.float64), len(grid))
    luminosity = config["luminosity"]
    sqrt_s = reconstruction.beams.sqrt_s
    born_cross_sections = physics.alp_cross_section(masses, coupling, sqrt_s)
    beam_effects = reconstruction.beam_effects
    isr_factors = np.array([beam_effects.cross_section_factor(CrossSectionScaling(m, 0.0)) for m in grid])
    isr_factors = np.tile(isr_factors, len(couplings))
    cross_sections = born_cross_sections * isr_factors
    ctaus = physics.alp_ctau(masses, coupling)
    weights = cross_sections * luminosity / max(n_per_mass, 1)
    per_task = max(1, config["simulation"]["chunk_size"] // max(n_per_mass, 1))
    tasks = []
    for start in range(0, len(masses), per_task):
        group = slice(start, start + per_task)
        tasks.append(
            ResonanceTask(
                sample,
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
        "coupling_gev_inv": float(couplings[0]) if len(couplings) == 1 else [float(c) for c in couplings],
        "purpose": "signal" if sample == "alp" else "efficiency versus lifetime only (bumphunt.models.lifetime)",
        "beam_effects": beam_effects.to_dict(),
        "masses": [
            {
                "mass": float(m),
                "coupling_gev_inv": float(g),
                "cross_section_pb": float(x),
                "born_cross_section_pb": float(born),
                "isr_factor": float(factor),
                "ctau_cm": float(c),
                "n_generated": n_per_mass,
            }
            for m, g, x, born, factor, c in zip(
                masses, coupling, cross_sections, born_cross_sections, isr_factors, ctaus
            )  # fmt: skip
        ],
    }
    return SamplePlan(sample, tasks, run_resonance_task, metadata, n_per_mass * len(masses))


def plan_meson(sample: str, config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """Tasks for one peaking background e+e- -> gamma P, P -> gamma gamma."""
    meson = physics.MESONS[sample]
    n_events = config["simulation"]["backgrounds"][sample]["events"]
    born_cross_section = meson.cross_section(reconstruction.beams.sqrt_s)
    beam_effects = reconstruction.beam_effects
    isr_factor = beam_effects.cross_section_factor(CrossSectionScaling(meson.mass, MESON_POWER))
    cross_section = born_cross_section * isr_factor
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
            MESON_POWER,
        )
        for index, start in enumerate(range(0, n_events, chunk))
    ]
    metadata = {
        "description": f"e+e- -> gamma {meson.name}, {meson.name} -> gamma gamma",
        "cross_section_pb": cross_section,
        "born_cross_section_pb": born_cross_section,
        "isr_factor": isr_factor,
        "beam_effects": beam_effects.to_dict(),
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
    metadata = {
        "description": "e+e- -> gamma gamma gamma, leading-order QED (Berends & Kleiss 1981), massless electrons",
        "generation_cuts": cuts.to_dict(),
    }
    sampler = ThreePhotonSampler(beams.sqrt_s, cuts)
    return _plan_massless("ggg", sampler, (ORIGIN_PROMPT,) * 3, config, reconstruction, metadata)


@dataclass(frozen=True)
class MasslessTask:
    """Generate, unweight and reconstruct one chunk of a process with a massless final state
    (e+e- -> gamma gamma, e+e- -> e+e- gamma): the sampler's events in the local CM frame are
    scaled to each collision's sqrt(s') (exact kinematics; sigma ~ 1/s')."""

    sample: str
    trials: int
    first_trial: int
    chunk_index: int
    sampler: object  # sample(rng, n) -> (particles (n, k, 4) in the local CM frame, weight_pb (n,))
    origin: tuple[int, ...]
    reference_weight: float
    weight_per_pb: float
    seed: int
    reconstruction: Reconstruction
    forced_track_loss: bool = False

    @property
    def n_generated(self) -> int:
        return self.trials


def run_massless_task(task: MasslessTask) -> ChunkResult:
    """Simulate a :class:`MasslessTask`.

    With ``forced_track_loss`` no track is ever found and every event instead carries the
    probability that all its charged particles inside the tracking acceptance lose their
    tracks, (1 - efficiency)^k: the rare events that fake photons are all kept, weighted.
    """
    sample_id = SAMPLE_IDS[task.sample]
    rng = _stream(task.seed, sample_id, 0, task.chunk_index)
    reconstruction = task.reconstruction
    particles_cm, weight_pb = task.sampler.sample(rng, task.trials)
    kept, unweighted_pb = _unweight(rng, weight_pb, task.reference_weight)
    particles_cm = particles_cm[kept]
    n = len(particles_cm)
    collisions = reconstruction.beam_effects.collisions(_stream(task.seed, sample_id, 2, task.chunk_index), n)
    if not collisions.nominal:
        particles_cm = particles_cm * (collisions.sqrt_s / reconstruction.beams.sqrt_s)[:, None, None]
    particles = collisions.local_cm_to_lab(particles_cm)
    origin = np.tile(np.array(task.origin), (n, 1))
    loss_weight = np.ones(n)
    if task.forced_track_loss:
        tracking = reconstruction.tracking
        charged_inside = (origin == ORIGIN_ELECTRON) & tracking.in_acceptance(particles[..., 1:])
        loss_weight = (1.0 - tracking.efficiency) ** charged_inside.sum(axis=1)
        reconstruction = dataclasses.replace(reconstruction, tracking=dataclasses.replace(tracking, efficiency=0.0))
    return _reconstructed_chunk(task, reconstruction, rng, particles, origin, collisions, kept, weight_pb,
                                unweighted_pb, task.first_trial, loss_weight)  # fmt: skip


def _unweight(rng: np.random.Generator, weight_pb: np.ndarray, reference_weight: float):
    """Hit-or-miss unweighting against ``reference_weight``: the mask of kept trials and
    their weights (events above the reference keep their larger weight)."""
    kept = (weight_pb > 0.0) & (rng.random(len(weight_pb)) * reference_weight < weight_pb)
    return kept, np.maximum(weight_pb[kept], reference_weight)


def _reconstructed_chunk(task, reconstruction, rng, particles, origin, collisions, kept, weight_pb, event_pb,
                         first_event_id, factor=None) -> ChunkResult:  # fmt: skip
    """Reconstruct the kept events of an unweighted chunk: ``event_pb`` is each kept event's
    weight in pb, ``factor`` an optional weight factor of its own, ``first_event_id`` the id of
    the chunk's first trial."""
    n = len(particles)
    passed, branches = reconstruction(rng, particles, np.zeros((n, origin.shape[1], 3)), origin, collisions)
    n_passed = int(passed.sum())
    branches.update(
        event_id=first_event_id + np.flatnonzero(kept)[passed],
        sample_id=np.full(n_passed, SAMPLE_IDS[task.sample]),
        weight=event_pb[passed]
        * task.weight_per_pb
        * (1.0 if factor is None else factor[passed])
        * branches["trigger_efficiency"],
        gen_mass=np.full(n_passed, np.nan),
        decay_vertex=np.zeros((n_passed, 3)),
        proper_decay_length=np.zeros(n_passed),
    )
    return ChunkResult(
        branches,
        task.trials,
        weight_sum=float(weight_pb.sum()),
        weight_sum_sq=float(np.sum(weight_pb**2)),
        n_unweighted=n,
        n_overweight=int(np.sum(weight_pb > task.reference_weight)),
    )


@dataclass(frozen=True)
class _Unweighting:
    """How a weighted sampler is unweighted: against the largest weight of a pilot run, with
    enough trials to keep about the wanted number of events."""

    reference_weight: float
    n_trials: int
    trials_per_chunk: int


def _unweighting(pilot: np.ndarray, n_events: float, chunk_size: int) -> _Unweighting:
    reference_weight = float(pilot.max())
    acceptance = float(np.minimum(pilot, reference_weight).mean()) / reference_weight
    n_trials = math.ceil(n_events / acceptance) if n_events else 0
    return _Unweighting(reference_weight, n_trials, max(1, math.ceil(chunk_size / acceptance)))


def _plan_massless(sample, sampler, origin, config, reconstruction, metadata, *, forced_track_loss=False):
    """Tasks of a massless-final-state sample after a pilot run that fixes the unweighting
    (its largest weight), so that about ``events`` events are kept."""
    n_events = config["simulation"]["backgrounds"][sample]["events"]
    _, pilot = sampler.sample(_stream(config["seed"], SAMPLE_IDS[sample], 1), _PILOT_TRIALS)
    plan = _unweighting(pilot, n_events, config["simulation"]["chunk_size"])
    reference_weight, n_trials, trials_per_chunk = plan.reference_weight, plan.n_trials, plan.trials_per_chunk
    isr_factor = reconstruction.beam_effects.cross_section_factor(MASSLESS_SCALING)
    weight_per_pb = config["luminosity"] * isr_factor / max(n_trials, 1)
    tasks = [
        MasslessTask(
            sample,
            min(trials_per_chunk, n_trials - first),
            first,
            index,
            sampler,
            origin,
            reference_weight,
            weight_per_pb,
            config["seed"],
            reconstruction,
            forced_track_loss,
        )  # fmt: skip
        for index, first in enumerate(range(0, n_trials, trials_per_chunk))
    ]
    metadata = {
        **metadata,
        "reference_weight_pb": reference_weight,
        "isr_factor": isr_factor,
        "beam_effects": reconstruction.beam_effects.to_dict(),
    }
    return SamplePlan(sample, tasks, run_massless_task, metadata, n_trials)


def plan_two_photon(config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """Tasks for e+e- -> gamma gamma: the third photon is a beam-background photon or a
    cluster merging artefact, as the reconstruction makes them."""
    beams, calorimeter = reconstruction.beams, reconstruction.calorimeter
    cuts = generation_cuts_for_acceptance(beams, calorimeter.energy_min, calorimeter.theta_min, calorimeter.theta_max)
    sampler = TwoPhotonSampler(beams.sqrt_s, cuts.cos_theta_max)
    metadata = {
        "description": "e+e- -> gamma gamma, leading-order QED, massless electrons; a third photon from the "
        "beam-background overlay or cluster merging",
        "cross_section_source": "dsigma/dOmega = alpha^2/s (1 + cos^2)/(1 - cos^2) (Berestetskii, Lifshitz, "
        "Pitaevskii, QED, sec. 88), each event counted once",
        "generation_cuts": sampler.generation_cuts(),
    }
    return _plan_massless("gg", sampler, (ORIGIN_PROMPT, ORIGIN_PROMPT), config, reconstruction, metadata)


def plan_radiative_bhabha(config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """Tasks for e+e- -> e+e- gamma, every track forced lost and weighted by its probability."""
    beams, calorimeter = reconstruction.beams, reconstruction.calorimeter
    cuts = radiative_bhabha_cuts_for_acceptance(
        beams, calorimeter.energy_min, calorimeter.theta_min, calorimeter.theta_max
    )
    sampler = RadiativeBhabhaSampler(beams.sqrt_s, cuts)
    metadata = {
        "description": "radiative Bhabha e+e- -> e+e- gamma, tree-level QED (Berends, Kleiss et al., Nucl. Phys. B "
        "206 (1982) 61), massless leptons with the electron mass regulating collinear photons; tracks of "
        "leptons inside the tracking acceptance forced lost, each event weighted by (1 - efficiency)^k",
        "generation_cuts": cuts.to_dict(),
        "track_efficiency": reconstruction.tracking.efficiency,
    }
    origin = (ORIGIN_ELECTRON, ORIGIN_ELECTRON, ORIGIN_PROMPT)
    return _plan_massless("eeg", sampler, origin, config, reconstruction, metadata, forced_track_loss=True)


#: Flat in s: collisions drawn from the radiator alone, the sampler weighting each s'.
_FLAT_SCALING = CrossSectionScaling(0.0, 0.0)


@dataclass(frozen=True)
class WeightedProcessTask:
    """Generate, unweight and reconstruct one chunk of a process whose sampler takes each
    collision's own sqrt(s') (e+e- -> P gamma gamma: a massive final state, not scalable)."""

    sample: str
    channel: int
    trials: int
    first_trial: int
    chunk_index: int
    make_sampler: Callable  # sqrt_s (float or (n,)) -> sampler with sample(rng, n) -> (particles, weight_pb)
    origin: tuple[int, ...]
    reference_weight: float
    weight_per_pb: float
    seed: int
    reconstruction: Reconstruction

    @property
    def n_generated(self) -> int:
        return self.trials


def run_weighted_process_task(task: WeightedProcessTask) -> ChunkResult:
    """Simulate a :class:`WeightedProcessTask`: collisions first, the process at their sqrt(s')."""
    sample_id = SAMPLE_IDS[task.sample]
    rng = _stream(task.seed, sample_id, 0, task.channel, task.chunk_index)
    reconstruction = task.reconstruction
    beams = reconstruction.beams
    collisions = reconstruction.beam_effects.collisions(
        _stream(task.seed, sample_id, 2, task.channel, task.chunk_index), task.trials, _FLAT_SCALING
    )
    sqrt_s = beams.sqrt_s if collisions.nominal else collisions.sqrt_s
    particles_cm, weight_pb = task.make_sampler(sqrt_s).sample(rng, task.trials)
    kept, unweighted_pb = _unweight(rng, weight_pb, task.reference_weight)
    particles = collisions.local_cm_to_lab(particles_cm)[kept]
    if not collisions.nominal:
        collisions = Collisions(beams, int(kept.sum()), collisions.electron[kept], collisions.positron[kept],
                                collisions.isr_fraction[kept])  # fmt: skip
    origin = np.tile(np.array(task.origin), (len(particles), 1))
    first_event_id = task.channel * 10**12 + task.first_trial
    return _reconstructed_chunk(task, reconstruction, rng, particles, origin, collisions, kept, weight_pb,
                                unweighted_pb, first_event_id)  # fmt: skip


def plan_meson_gamma_gamma(sample: str, config: dict, reconstruction: Reconstruction) -> SamplePlan:
    """Tasks for e+e- -> P gamma gamma, P -> gamma gamma, in channels: radiative return to a
    vector meson, e+e- -> gamma_ISR V, V -> P gamma (:class:`~bumphunt.simulation.processes.RadiativeReturnSampler`,
    channels of :func:`~bumphunt.simulation.processes.radiative_return_channels`), and the continuum
    e+e- -> gamma_ISR gamma*, gamma* -> P gamma above sqrt(s') = 4 GeV
    (:class:`~bumphunt.simulation.processes.MesonGammaGammaSampler`). The events of the sample
    are shared among the channels as their cross-sections, each channel keeping at least 5 %."""
    beams, calorimeter = reconstruction.beams, reconstruction.calorimeter
    meson = physics.MESONS[sample.removesuffix("_gamma")]
    cuts = generation_cuts_for_acceptance(beams, calorimeter.energy_min, calorimeter.theta_min, calorimeter.theta_max)
    channels = {f"gamma_ISR gamma* -> {meson.name} gamma": functools.partial(_meson_gamma_gamma_sampler, meson, cuts)}
    for vector, pseudoscalar in radiative_return_channels(sample):
        label = f"gamma_ISR {vector.name}, {vector.name} -> {pseudoscalar.name} gamma"
        channels[label] = functools.partial(_radiative_return_sampler, vector, pseudoscalar, cuts)
    pilots = {}
    for index, (label, make_sampler) in enumerate(channels.items()):
        rng = _stream(config["seed"], SAMPLE_IDS[sample], 1, index)
        pilots[label] = make_sampler(beams.sqrt_s).sample(rng, _PILOT_TRIALS // 10)[1]
    sigma = {label: float(weights.mean()) for label, weights in pilots.items()}
    n_events = config["simulation"]["backgrounds"][sample]["events"]
    share = np.maximum(np.array(list(sigma.values())) / sum(sigma.values()), 0.05)
    share /= share.sum()
    factor = reconstruction.beam_effects.cross_section_factor(_FLAT_SCALING)
    origin = (ORIGIN_PROMPT, ORIGIN_PROMPT, ORIGIN_DAUGHTER, ORIGIN_DAUGHTER)
    tasks, n_total, channel_metadata = [], 0, {}
    for index, ((label, make_sampler), fraction) in enumerate(zip(channels.items(), share)):
        plan = _unweighting(pilots[label], n_events * fraction, config["simulation"]["chunk_size"])
        reference_weight, n_trials, trials_per_chunk = plan.reference_weight, plan.n_trials, plan.trials_per_chunk
        weight_per_pb = config["luminosity"] * factor / max(n_trials, 1)
        tasks += [
            WeightedProcessTask(
                sample,
                index,
                min(trials_per_chunk, n_trials - first),
                first,
                chunk,
                make_sampler,
                origin,
                reference_weight,
                weight_per_pb,
                config["seed"],
                reconstruction,
            )  # fmt: skip
            for chunk, first in enumerate(range(0, n_trials, trials_per_chunk))
        ]
        n_total += n_trials
        channel_metadata[label] = {"cross_section_pb": sigma[label], "trials": n_trials}
    metadata = {
        "description": f"e+e- -> {meson.name} gamma gamma, {meson.name} -> gamma gamma: radiative return to vector "
        "mesons (narrow width; Druzhinin et al., Rev. Mod. Phys. 83 (2011) 1545) and the continuum "
        "gamma_ISR gamma* -> P gamma above sqrt(s') = 4 GeV (LO radiator of Bonneau & Martin, Nucl. Phys. B 27 "
        "(1971) 381)",
        "cross_section_pb": sum(sigma.values()) * factor,
        "channels": channel_metadata,
        "generation_cuts": cuts.to_dict(),
        "beam_effects": reconstruction.beam_effects.to_dict(),
    }
    return SamplePlan(sample, tasks, run_weighted_process_task, metadata, n_total)


def _meson_gamma_gamma_sampler(meson, cuts, sqrt_s):
    return MesonGammaGammaSampler(meson, sqrt_s, cuts)


def _radiative_return_sampler(vector, meson, cuts, sqrt_s):
    return RadiativeReturnSampler(vector, meson, sqrt_s, cuts)


#: Sample -> the function that plans its tasks (config, reconstruction) -> SamplePlan.
PLANNERS: dict[str, Callable[[dict, Reconstruction], SamplePlan]] = {
    "alp": plan_signal,
    "alp_long_lived": plan_long_lived_signal,
    "ggg": plan_ggg,
    **{meson: functools.partial(plan_meson, meson) for meson in ("pi0_gamma", "eta_gamma", "etaprime_gamma")},
    "gg": plan_two_photon,
    "eeg": plan_radiative_bhabha,
    **{
        sample: functools.partial(plan_meson_gamma_gamma, sample)
        for sample in ("pi0_gamma_gamma", "eta_gamma_gamma", "etaprime_gamma_gamma")
    },
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
    scheduler: str | None = None,
    progress: bool = True,
) -> list[SampleSummary]:
    """Simulate the samples of an analysis and write one ntuple per sample.

    The chunks of every sample run in process, on local worker processes or on the workers of
    a Dask cluster; each draws from its own random stream, and the ntuples are written here in
    the chunks' order, so every way gives the same ntuples.

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
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``) whose workers run the chunks; the
        configuration's ``dask.scheduler`` by default. Overrides ``workers``.
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
    summaries = []
    with executor(workers, dask_scheduler(config, scheduler)) as pool:  # an unreachable cluster fails at once
        plans = plan_samples(config, samples)
        with progress_bar(progress) as bar:
            for plan in plans:
                started = time.perf_counter()
                path = layout.ntuple("simulation", plan.sample)
                advance = bar.add(f"simulate {plan.sample}", plan.n_generated)
                totals = _Totals()
                with NtupleWriter(path) as writer:
                    for result in ordered_map(pool, plan.run, plan.tasks, max_in_flight=2 * task_slots(pool, workers)):
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
    if any(summary.sample in BACKGROUND_SAMPLES for summary in summaries):
        write_composition(layout)
    return summaries


def write_composition(layout: OutputLayout) -> Composition:
    """The background composition of the simulated samples: ``composition.csv`` (expected
    candidates per process in mass ranges) and ``composition.png`` (M_gg stacked by process)."""
    composition = composition_of_layout(layout, "simulation")
    atomic_write_text(layout.composition_table, composition.to_csv())
    save_figure(plot_composition(composition), layout.composition_plot)
    return composition


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
    if plan.sample in SIGNAL_SAMPLES:
        for entry, n_sel in zip(metadata["masses"], counters.n_selected_per_mass):
            entry["n_selected"] = n_sel
    if "reference_weight_pb" in plan.metadata and counters.n_generated:  # weighted, then unweighted samples
        n_trials = counters.n_generated
        mean = counters.weight_sum / n_trials
        variance = max(counters.weight_sum_sq / n_trials - mean**2, 0.0)
        isr_factor = plan.metadata.get("isr_factor", 1.0)
        metadata.update(
            cross_section_pb=mean * isr_factor,
            born_cross_section_pb=mean,
            cross_section_error_pb=math.sqrt(variance / n_trials) * isr_factor,
            n_trials=n_trials,
            n_generated=counters.n_unweighted,
            overweight_fraction=counters.n_overweight / max(counters.n_unweighted, 1),
        )
    metadata["config"] = config
    return metadata
