"""Leading-order QED e+e- -> gamma gamma gamma: matrix element, sampler and cross-section.

Matrix element (massless electrons) [Berends & Kleiss, NPB 186 (1981) 22]: with
a_i = p+ . k_i and b_i = p- . k_i, the spin- and polarisation-averaged squared amplitude is

    <|M|^2> = e^6 s sum_i a_i b_i (a_i^2 + b_i^2) / prod_i (a_i b_i),    e^2 = 4 pi alpha,

and sigma = 1/3! * 1/(2s) * integral <|M|^2> dPhi_3 (1/3! for identical photons). It
diverges for soft and beam-collinear photons, so it is only defined with cuts: every photon
with CM energy above ``energy_min`` and |cos theta*| to the beam axis below
``cos_theta_max`` (:class:`GenerationCuts`, derived from the detector acceptance by
:func:`generation_cuts_for_acceptance`).

The sampler is a three-channel importance sampler: in channel j photon j is drawn with
density ~ 1/(omega (1 - cos^2 theta)), the other two as a two-body decay of the recoiling
system with density ~ 1/(1 + delta - cos^2 theta') in its rest frame; the event weight
divides by the average of the three channel densities. Everything here is in the local CM
frame (z along the electron).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import ALPHA_EM, GEV2_TO_PB
from ..kinematics import Beams, boost, massless_four_vectors, minkowski_dot, unit_vectors


def me2_eeggg(p_minus: np.ndarray, p_plus: np.ndarray, photons: np.ndarray, alpha: float = ALPHA_EM) -> np.ndarray:
    """Spin-averaged squared matrix element of e-(p_minus) e+(p_plus) -> 3 photons.

    Parameters
    ----------
    p_minus, p_plus : array (..., 4)
        Massless electron and positron four-momenta.
    photons : array (..., 3, 4)
    alpha : float
        Fine-structure constant at the three vertices.
    """
    a = minkowski_dot(p_plus[..., None, :], photons)
    b = minkowski_dot(p_minus[..., None, :], photons)
    s = 2.0 * minkowski_dot(p_minus, p_plus)
    numerator = np.sum(a * b * (a * a + b * b), axis=-1)
    denominator = np.prod(a * b, axis=-1)
    e_squared = 4.0 * np.pi * alpha
    return e_squared**3 * s * numerator / denominator


@dataclass(frozen=True)
class GenerationCuts:
    """Phase-space cuts of the gamma gamma gamma generator, in the CM frame.

    Attributes
    ----------
    energy_min : float
        Minimum CM energy of every photon (GeV).
    cos_theta_max : float
        Maximum |cos theta*| of every photon to the beam axis.
    """

    energy_min: float
    cos_theta_max: float

    def to_dict(self) -> dict:
        return {"energy_min_cm": self.energy_min, "cos_theta_max_cm": self.cos_theta_max}


def generation_cuts_for_acceptance(
    beams: Beams, energy_min_lab: float, theta_min: float, theta_max: float, *, n_boundary: int = 7200
) -> GenerationCuts:
    """Loosest CM cuts that contain every photon the detector can accept.

    A photon with lab energy E has CM energy at least gamma (1 - beta) E. The lab-to-CM map
    of directions (aberration) is conformal with cos theta* extremal only along the beams,
    so over the acceptance band |cos theta*| peaks on its edges, which are scanned.

    Parameters
    ----------
    beams : Beams
    energy_min_lab : float
        Photon energy threshold in the lab (GeV).
    theta_min, theta_max : float
        Lab polar-angle acceptance (rad).
    """
    beta = np.linalg.norm(beams.boost_vector)
    gamma = 1.0 / np.sqrt(1.0 - beta**2)
    phi = np.linspace(-np.pi, np.pi, n_boundary, endpoint=False)
    edges = np.concatenate([unit_vectors(np.full_like(phi, np.cos(t)), phi) for t in (theta_min, theta_max)])
    local_cm = beams.lab_to_local_cm(massless_four_vectors(np.ones(len(edges)), edges))
    cos_theta = local_cm[:, 3] / local_cm[:, 0]
    margin = 1e-4
    return GenerationCuts(
        energy_min=float(gamma * (1.0 - beta) * energy_min_lab) * (1.0 - margin),
        cos_theta_max=min(float(np.max(np.abs(cos_theta))) + margin, 1.0 - 1e-6),
    )


class ThreePhotonSampler:
    """Importance sampler of e+e- -> gamma gamma gamma within :class:`GenerationCuts`.

    Parameters
    ----------
    sqrt_s : float
        Centre-of-mass energy (GeV).
    cuts : GenerationCuts
    alpha : float
        Fine-structure constant.
    """

    def __init__(self, sqrt_s: float, cuts: GenerationCuts, alpha: float = ALPHA_EM):
        if not 0.0 < cuts.energy_min < sqrt_s / 2.0:
            raise ValueError(f"energy_min {cuts.energy_min} GeV must lie in (0, sqrt(s)/2)")
        if not 0.0 < cuts.cos_theta_max < 1.0:
            raise ValueError(f"cos_theta_max {cuts.cos_theta_max} must lie in (0, 1)")
        self.sqrt_s = sqrt_s
        self.cuts = cuts
        self.alpha = alpha
        self.energy_max = sqrt_s / 2.0
        self._log_energy_range = np.log(self.energy_max / cuts.energy_min)
        self._rapidity_max = np.arctanh(cuts.cos_theta_max)
        self._delta = 1.0 - cuts.cos_theta_max**2
        self._decay_scale = np.sqrt(1.0 + self._delta)
        self._decay_rapidity_max = np.arctanh(1.0 / self._decay_scale)
        half = sqrt_s / 2.0
        self.p_minus = np.array([half, 0.0, 0.0, half])
        self.p_plus = np.array([half, 0.0, 0.0, -half])

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` weighted events.

        Returns
        -------
        photons : array (n, 3, 4)
            Photon four-momenta in the local CM frame.
        weight : array (n,)
            Cross-section weight in pb: the mean weight estimates sigma within the cuts;
            events outside the cuts have weight 0.
        """
        channel = rng.integers(0, 3, n)
        energy = self.cuts.energy_min * np.exp(self._log_energy_range * rng.random(n))
        cos_theta = np.tanh(rng.uniform(-self._rapidity_max, self._rapidity_max, n))
        radiated = massless_four_vectors(energy, unit_vectors(cos_theta, rng.uniform(-np.pi, np.pi, n)))

        recoil_energy = self.sqrt_s - energy
        recoil_velocity = -radiated[:, 1:] / recoil_energy[:, None]
        recoil_mass = np.sqrt(np.maximum(self.sqrt_s**2 - 2.0 * self.sqrt_s * energy, 0.0))
        cos_decay = self._decay_scale * np.tanh(rng.uniform(-self._decay_rapidity_max, self._decay_rapidity_max, n))
        decay_axis = unit_vectors(cos_decay, rng.uniform(-np.pi, np.pi, n))
        half_mass = recoil_mass / 2.0
        pair = np.stack(
            [massless_four_vectors(half_mass, decay_axis), massless_four_vectors(half_mass, -decay_axis)], 1
        )
        pair = boost(pair, recoil_velocity[:, None, :])

        photons = np.empty((n, 3, 4))
        rows = np.arange(n)
        photons[rows, channel] = radiated
        photons[rows, (channel + 1) % 3] = pair[:, 0]
        photons[rows, (channel + 2) % 3] = pair[:, 1]
        return photons, self.weight(photons)

    def weight(self, photons: np.ndarray) -> np.ndarray:
        """Cross-section weight (pb) of events drawn from this sampler, 0 outside the cuts."""
        energy = photons[..., 0]
        cos_theta = photons[..., 3] / energy
        inside = np.all((energy >= self.cuts.energy_min) & (np.abs(cos_theta) <= self.cuts.cos_theta_max), axis=-1)
        density = np.zeros(len(photons))
        for j in range(3):
            density += self._channel_density(photons, j, energy[:, j], cos_theta[:, j])
        density /= 3.0
        weight = np.zeros(len(photons))
        me2 = me2_eeggg(self.p_minus, self.p_plus, photons[inside], self.alpha)
        weight[inside] = me2 / (12.0 * self.sqrt_s**2) / density[inside] * GEV2_TO_PB
        return weight

    def _channel_density(self, photons, j, energy, cos_theta):
        """Density of channel j with respect to the Lorentz-invariant phase space dPhi_3."""
        in_range = (energy >= self.cuts.energy_min) & (energy <= self.energy_max)
        in_range &= np.abs(cos_theta) <= self.cuts.cos_theta_max
        p_energy = 1.0 / (energy * self._log_energy_range)
        p_cos = 1.0 / ((1.0 - cos_theta**2) * 2.0 * self._rapidity_max)

        recoil = np.array([self.sqrt_s, 0.0, 0.0, 0.0]) - photons[:, j]
        other = boost(photons[:, (j + 1) % 3], -recoil[:, 1:] / recoil[:, :1])
        cos_decay = other[:, 3] / other[:, 0]
        decay_norm = 2.0 * self._decay_rapidity_max / self._decay_scale
        p_decay = 1.0 / ((1.0 + self._delta - cos_decay**2) * decay_norm)

        azimuths = 1.0 / (2.0 * np.pi) ** 2
        jacobian = energy / (2.0 * (2.0 * np.pi) ** 3) / (32.0 * np.pi**2)
        return np.where(in_range, p_energy * p_cos * p_decay * azimuths / jacobian, 0.0)
