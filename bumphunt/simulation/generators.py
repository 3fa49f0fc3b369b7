"""Event generators for e+e- -> gamma P, P -> gamma gamma (ALP signal and pi0/eta/eta').

Events are generated in the CM frame, with the polar angle measured from the electron
direction, then rotated and boosted to the lab (:class:`bumphunt.kinematics.Beams`), or in
the CM frame of each event's own collision when the beam-energy spread and ISR are on
(:class:`bumphunt.simulation.beam.Collisions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kinematics import Beams, boost, massless_four_vectors, unit_vectors
from .beam import Collisions


def sample_one_plus_cos2(rng: np.random.Generator, n: int) -> np.ndarray:
    """cos(theta) distributed as 1 + cos^2(theta) on [-1, 1], by inverting the CDF.

    The CDF is (c + c^3/3 + 4/3) / (8/3); c^3 + 3c + 4 - 8u = 0 has one real root (Cardano).
    """
    q = 4.0 - 8.0 * rng.random(n)
    root = np.sqrt(q * q / 4.0 + 1.0)
    return np.cbrt(-q / 2.0 + root) + np.cbrt(-q / 2.0 - root)


def isotropic_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors distributed uniformly on the sphere, shape (n, 3)."""
    return unit_vectors(rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n))


@dataclass(frozen=True)
class TwoPhotonResonanceEvents:
    """Truth of e+e- -> gamma P, P -> gamma gamma in the lab frame.

    Attributes
    ----------
    recoil : array (n, 4)
        The photon produced with P.
    daughters : array (n, 2, 4)
        The two photons from the P decay.
    decay_vertex : array (n, 3)
        P decay position (cm); the interaction point is the origin.
    proper_decay_length : array (n,)
        c t of each decay in the rest frame of P (cm): exponential with mean ``ctau``; the
        flight distance is (p / m) times it.
    cos_theta_cm : array (n,)
        cos(theta*) of the recoil photon to the electron direction in the CM frame.
    """

    recoil: np.ndarray
    daughters: np.ndarray
    decay_vertex: np.ndarray
    cos_theta_cm: np.ndarray
    proper_decay_length: np.ndarray


def generate_two_photon_resonance(
    rng: np.random.Generator,
    n: int,
    mass: float,
    beams: Beams,
    *,
    ctau: float = 0.0,
    collisions: Collisions | None = None,
) -> TwoPhotonResonanceEvents:
    """Generate e+e- -> gamma P with dsigma/dcos(theta*) ~ 1 + cos^2(theta*), P -> gamma gamma.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Number of events.
    mass : float
        Mass of P (GeV), below sqrt(s).
    beams : Beams
    ctau : float
        Proper decay length of P (cm); 0 for a prompt decay.
    collisions : Collisions, optional
        The ``n`` collisions (sqrt(s') and frame of each, :mod:`bumphunt.simulation.beam`);
        the nominal beams when None.
    """
    if collisions is None or collisions.nominal:
        sqrt_s = beams.sqrt_s
        if not 0.0 < mass < sqrt_s:
            raise ValueError(f"mass {mass} GeV outside (0, sqrt(s) = {sqrt_s:.4f} GeV)")
        recoil_energy = np.full(n, (sqrt_s**2 - mass**2) / (2.0 * sqrt_s))
        to_lab = beams.local_cm_to_lab
    else:
        sqrt_s = collisions.sqrt_s
        if not (mass > 0.0 and np.all(mass < sqrt_s)):
            raise ValueError(f"mass {mass} GeV outside (0, sqrt(s') = {sqrt_s.min():.4f} GeV) of some collision")
        recoil_energy = (sqrt_s**2 - mass**2) / (2.0 * sqrt_s)
        to_lab = collisions.local_cm_to_lab

    cos_theta = sample_one_plus_cos2(rng, n)
    recoil_direction = unit_vectors(cos_theta, rng.uniform(-np.pi, np.pi, n))
    recoil_cm = massless_four_vectors(recoil_energy, recoil_direction)
    parent_velocity = -recoil_direction * (recoil_energy / (sqrt_s - recoil_energy))[..., None]

    decay_axis = isotropic_directions(rng, n)
    half_mass = np.full(n, mass / 2.0)
    daughters_rest = np.stack(
        [massless_four_vectors(half_mass, decay_axis), massless_four_vectors(half_mass, -decay_axis)], axis=1
    )
    daughters_cm = boost(daughters_rest, parent_velocity[:, None, :])

    recoil = to_lab(recoil_cm)
    daughters = to_lab(daughters_cm)

    parent = daughters.sum(axis=1)
    parent_momentum = np.linalg.norm(parent[:, 1:], axis=1)
    proper = rng.exponential(1.0, n) * ctau if ctau > 0.0 else np.zeros(n)
    decay_vertex = parent[:, 1:] / parent_momentum[:, None] * (proper * parent_momentum / mass)[:, None]
    return TwoPhotonResonanceEvents(recoil, daughters, decay_vertex, cos_theta, proper)
