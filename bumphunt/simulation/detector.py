"""A Belle II-like electromagnetic calorimeter: geometry, clustering, resolution, acceptance.

Photon candidates carry (E, theta, phi) measured in the lab and their 3x3 covariance,
packed as the six upper-triangle elements ``(EE, E theta, E phi, theta theta, theta phi,
phi phi)`` (:data:`COVARIANCE_ELEMENTS`).

Resolution models (E in GeV):

* ``belle2``: basf2 ``eclCovarianceMatrix`` parameterisation of the barrel,
  sigma_E/E [%] = -0.0473/E + 1.0202/sqrt(E) - 0.7052/E^0.25 + 1.7709,
  sigma_theta [mrad] = -0.2211/E + 2.1988/sqrt(E) + 1.5083/E^0.25 + 0.3596,
  sigma_phi [mrad] = -0.2184/E + 0.6490/sqrt(E) + 7.1901/E^0.25 - 3.1003;
* ``belle``: the older Belle form sigma_E/E = 0.066%/E (+) 0.81%/E^0.25 (+) 1.34%
  (in quadrature), with the ``belle2`` angular resolution.

Beyond the calorimeter's energy and position (:class:`ClusterTiming`, :class:`Tracking`,
:class:`Trigger`):

* **cluster time**: a cluster takes the true time of its most energetic photon (0 for photons
  of the collision, uniform over the readout window for beam background) measured with
  sigma_t(E) = (a / E) (+) b in quadrature, a = 2 ns GeV, b = 1 ns: about 2.2 ns at 1 GeV, 20 ns
  at 100 MeV. A toy parameterisation of the CsI(Tl) waveform-fit timing (noise term ~ 1/E
  dominating below 1 GeV, a constant term above), of the size of the Belle II ECL's (a few ns
  at GeV energies, tens of ns at the 100 MeV threshold), not a fit to its calibration;
* **tracks**: an electron or positron inside the CDC acceptance (17-150 deg) whose straight
  line from its production point passes within dr < 1 cm and |dz| < 3 cm of the interaction
  point leaves a good track with a per-track efficiency (default 0.995); without a track its
  cluster counts as a photon candidate. Bending in the 1.5 T field is not modelled (the
  cluster lies along the initial direction);
* **trigger**: an ECL energy-sum turn-on, epsilon = plateau Phi((E_sum - threshold) / width)
  on the energy of the in-time clusters in the acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ..kinematics import invariant_mass, photon_four_vectors
from ..ntuple import ORIGIN_DAUGHTER, ORIGIN_MERGED, ORIGIN_OTHER_MERGED

#: Order of the packed covariance elements of one photon.
COVARIANCE_ELEMENTS = ("EE", "Etheta", "Ephi", "thetatheta", "thetaphi", "phiphi")

RESOLUTION_MODELS = ("belle2", "belle")


def energy_resolution(energy: np.ndarray, model: str = "belle2") -> np.ndarray:
    """Absolute energy resolution sigma_E (GeV)."""
    e = np.asarray(energy, dtype=float)
    if model == "belle2":
        relative_percent = -0.0473 / e + 1.0202 / np.sqrt(e) - 0.7052 / e**0.25 + 1.7709
    elif model == "belle":
        relative_percent = np.sqrt((0.066 / e) ** 2 + (0.81 / e**0.25) ** 2 + 1.34**2)
    else:
        raise ValueError(f"unknown resolution model {model!r}; choose one of {RESOLUTION_MODELS}")
    return relative_percent / 100.0 * e


def theta_resolution(energy: np.ndarray) -> np.ndarray:
    """Polar-angle resolution sigma_theta (rad)."""
    e = np.asarray(energy, dtype=float)
    return (-0.2211 / e + 2.1988 / np.sqrt(e) + 1.5083 / e**0.25 + 0.3596) * 1e-3


def phi_resolution(energy: np.ndarray) -> np.ndarray:
    """Azimuthal resolution sigma_phi (rad)."""
    e = np.asarray(energy, dtype=float)
    return (-0.2184 / e + 0.6490 / np.sqrt(e) + 7.1901 / e**0.25 - 3.1003) * 1e-3


def packed_covariance(energy: np.ndarray, model: str = "belle2") -> np.ndarray:
    """Diagonal photon covariance at ``energy``, packed as :data:`COVARIANCE_ELEMENTS`."""
    energy = np.asarray(energy, dtype=float)
    cov = np.zeros(energy.shape + (6,))
    cov[..., 0] = energy_resolution(energy, model) ** 2
    cov[..., 3] = theta_resolution(energy) ** 2
    cov[..., 5] = phi_resolution(energy) ** 2
    return cov


def unpack_covariance(packed: np.ndarray) -> np.ndarray:
    """Packed covariances (..., 6) to full symmetric matrices (..., 3, 3)."""
    packed = np.asarray(packed)
    full = np.empty(packed.shape[:-1] + (3, 3), dtype=packed.dtype)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]):
        full[..., i, j] = packed[..., k]
        full[..., j, i] = packed[..., k]
    return full


@dataclass(frozen=True)
class Calorimeter:
    """ECL geometry and response, from the ``detector`` section of a configuration.

    Attributes
    ----------
    resolution : str
        Resolution model, one of :data:`RESOLUTION_MODELS`.
    energy_min : float
        Photon energy threshold (GeV), applied to the measured energy.
    theta_min, theta_max : float
        Polar-angle acceptance (rad), applied to the measured direction.
    merge_angle : float
        Photons closer than this opening angle (rad) form one cluster.
    barrel_radius, z_forward, z_backward : float
        Inner surface of the calorimeter (cm): a cylinder closed by two end-cap planes.
    """

    resolution: str = "belle2"
    energy_min: float = 0.1
    theta_min: float = np.radians(17.0)
    theta_max: float = np.radians(150.0)
    merge_angle: float = 0.04
    barrel_radius: float = 125.0
    z_forward: float = 196.0
    z_backward: float = -102.0

    @classmethod
    def from_config(cls, config: dict) -> Calorimeter:
        det = config["detector"]
        return cls(
            resolution=det["resolution"],
            energy_min=det["photon_energy_min"],
            theta_min=np.radians(det["theta_min_deg"]),
            theta_max=np.radians(det["theta_max_deg"]),
            merge_angle=det["cluster_merge_angle"],
            barrel_radius=det["ecl"]["barrel_radius"],
            z_forward=det["ecl"]["z_forward"],
            z_backward=det["ecl"]["z_backward"],
        )

    def inside(self, position: np.ndarray) -> np.ndarray:
        """True for positions (..., 3) in front of the calorimeter's inner surface."""
        radius = np.hypot(position[..., 0], position[..., 1])
        z = position[..., 2]
        return (radius < self.barrel_radius) & (z < self.z_forward) & (z > self.z_backward)

    def impact_points(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Where rays from ``origin`` (inside) along unit ``direction`` meet the inner surface.

        Both arrays have shape (..., 3); the result too.
        """
        d_perp2 = direction[..., 0] ** 2 + direction[..., 1] ** 2
        o_dot_d = origin[..., 0] * direction[..., 0] + origin[..., 1] * direction[..., 1]
        o_perp2 = origin[..., 0] ** 2 + origin[..., 1] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            discriminant = o_dot_d**2 + d_perp2 * (self.barrel_radius**2 - o_perp2)
            t_barrel = np.where(d_perp2 > 0, (-o_dot_d + np.sqrt(np.maximum(discriminant, 0))) / d_perp2, np.inf)
            dz = direction[..., 2]
            t_endcap = np.where(
                dz > 0,
                (self.z_forward - origin[..., 2]) / dz,
                np.where(dz < 0, (self.z_backward - origin[..., 2]) / dz, np.inf),
            )
        t = np.minimum(t_barrel, t_endcap)
        return origin + t[..., None] * direction


@dataclass(frozen=True)
class ClusterTiming:
    """Cluster time: resolution sigma_t(E) = (noise / E) (+) constant, beam background out of time.

    Attributes
    ----------
    noise : float
        Noise term of the time resolution (ns GeV).
    constant : float
        Constant term (ns).
    readout_window : float
        Beam-background photons arrive uniformly in (-readout_window, +readout_window) ns.
    """

    noise: float = 2.0
    constant: float = 1.0
    readout_window: float = 1000.0

    @classmethod
    def from_config(cls, config: dict) -> ClusterTiming:
        timing = config["detector"]["timing"]
        return cls(timing["resolution_noise"], timing["resolution_constant"], timing["readout_window"])

    def resolution(self, energy: np.ndarray) -> np.ndarray:
        """sigma_t (ns) at ``energy`` (GeV)."""
        return np.hypot(self.noise / np.asarray(energy, dtype=float), self.constant)


@dataclass(frozen=True)
class Tracking:
    """Good tracks of charged particles: CDC acceptance, impact parameters, per-track efficiency.

    Attributes
    ----------
    efficiency : float
        Probability that a charged particle inside the acceptance leaves a good track.
    theta_min, theta_max : float
        CDC acceptance in the true lab polar angle (rad).
    dr_max, dz_max : float
        A good track passes within ``dr_max`` of the beam line and ``dz_max`` of the
        interaction point along it (cm), for a straight line from the production point.
    """

    efficiency: float = 0.995
    theta_min: float = np.radians(17.0)
    theta_max: float = np.radians(150.0)
    dr_max: float = 1.0
    dz_max: float = 3.0

    @classmethod
    def from_config(cls, config: dict) -> Tracking:
        tracking = config["detector"]["tracking"]
        return cls(
            efficiency=tracking["efficiency"],
            theta_min=np.radians(tracking["theta_min_deg"]),
            theta_max=np.radians(tracking["theta_max_deg"]),
            dr_max=tracking["dr_max"],
            dz_max=tracking["dz_max"],
        )

    def in_acceptance(self, momentum: np.ndarray) -> np.ndarray:
        """True where momenta (..., 3) point into the CDC acceptance."""
        theta = np.arctan2(np.hypot(momentum[..., 0], momentum[..., 1]), momentum[..., 2])
        return (theta > self.theta_min) & (theta < self.theta_max)

    def impact_parameters(self, momentum: np.ndarray, production: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dr and dz (cm) of straight lines from ``production`` along ``momentum`` (both (..., 3)):
        distance of closest approach to the beam line (z axis) and z at that point."""
        px, py, pz = momentum[..., 0], momentum[..., 1], momentum[..., 2]
        x0, y0, z0 = production[..., 0], production[..., 1], production[..., 2]
        pt2 = px * px + py * py
        with np.errstate(divide="ignore", invalid="ignore"):
            dr = np.abs(x0 * py - y0 * px) / np.sqrt(pt2)
            dz = z0 - (x0 * px + y0 * py) / pt2 * pz
        return dr, dz

    def find(
        self, rng: np.random.Generator, momentum: np.ndarray, production: np.ndarray, charged: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tracks of the ``charged`` particles among (n, k) slots.

        Returns ``found`` (a track, whose cluster is then matched to it and is no photon
        candidate) and ``good`` (found and within the impact-parameter cuts: the event is
        vetoed). Draws one uniform number per slot, only when some slot is charged.
        """
        if not np.any(charged):
            return np.zeros(charged.shape, bool), np.zeros(charged.shape, bool)
        found = charged & self.in_acceptance(momentum) & (rng.random(charged.shape) < self.efficiency)
        dr, dz = self.impact_parameters(momentum, production)
        return found, found & (dr < self.dr_max) & (np.abs(dz) < self.dz_max)


@dataclass(frozen=True)
class Trigger:
    """L1 trigger efficiency from the ECL energy sum: plateau * Phi((E_sum - threshold) / width).

    Attributes
    ----------
    energy_threshold : float
        Energy sum at half the plateau (GeV).
    energy_width : float
        Width of the Gaussian turn-on (GeV).
    plateau : float
        Efficiency far above the threshold.
    """

    energy_threshold: float = 1.0
    energy_width: float = 0.1
    plateau: float = 0.97

    @classmethod
    def from_config(cls, config: dict) -> Trigger:
        trigger = config["detector"]["trigger"]
        return cls(trigger["energy_threshold"], trigger["energy_width"], trigger["plateau"])

    def efficiency(self, energy_sum: np.ndarray) -> np.ndarray:
        """Trigger efficiency of events with the given ECL energy sums (GeV)."""
        z = (np.asarray(energy_sum, dtype=float) - self.energy_threshold) / (self.energy_width * np.sqrt(2.0))
        return self.plateau * 0.5 * special.erfc(-z)


@dataclass(frozen=True)
class Clusters:
    """Calorimeter clusters in photon slots (:func:`merge_clusters`); arrays (n, k[, 3]).

    ``seed`` is the slot of each cluster's most energetic photon (its own slot unless merged).
    """

    energy: np.ndarray
    direction: np.ndarray
    origin: np.ndarray
    seed: np.ndarray
    valid: np.ndarray


def form_clusters(
    energy: np.ndarray, direction: np.ndarray, origin: np.ndarray, valid: np.ndarray, merge_angle: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge photons closer than ``merge_angle`` into one cluster.

    Parameters
    ----------
    energy : array (n, k)
    direction : array (n, k, 3)
        Unit vectors of the cluster positions seen from the interaction point.
    origin : array (n, k) of int
        Origin codes; merged clusters get :data:`ORIGIN_MERGED` or :data:`ORIGIN_OTHER_MERGED`.
    valid : array (n, k) of bool
        Slots holding a photon.

    Returns
    -------
    energy, direction, origin, valid
        Updated copies; a photon merged into another slot becomes invalid.
    """
    clusters = merge_clusters(energy, direction, origin, valid, merge_angle)
    return clusters.energy, clusters.direction, clusters.origin, clusters.valid


def merge_clusters(
    energy: np.ndarray, direction: np.ndarray, origin: np.ndarray, valid: np.ndarray, merge_angle: float
) -> Clusters:
    """:func:`form_clusters`, also returning for each cluster the slot of its most energetic
    photon (its seed: a cluster's time is that of its seed crystal)."""
    energy, direction, origin, valid = energy.copy(), direction.copy(), origin.copy(), valid.copy()
    seed = np.broadcast_to(np.arange(energy.shape[1]), energy.shape).copy()
    seed_energy = energy.copy()
    cos_merge = np.cos(merge_angle)
    k = energy.shape[1]
    for i in range(k):
        for j in range(i + 1, k):
            close = valid[:, i] & valid[:, j] & (np.sum(direction[:, i] * direction[:, j], axis=-1) > cos_merge)
            if not np.any(close):
                continue
            e_i, e_j = energy[close, i], energy[close, j]
            summed = direction[close, i] * e_i[:, None] + direction[close, j] * e_j[:, None]
            direction[close, i] = summed / np.linalg.norm(summed, axis=-1, keepdims=True)
            energy[close, i] = e_i + e_j
            both_daughters = (origin[close, i] == ORIGIN_DAUGHTER) & (origin[close, j] == ORIGIN_DAUGHTER)
            origin[close, i] = np.where(both_daughters, ORIGIN_MERGED, ORIGIN_OTHER_MERGED)
            j_seeds = seed_energy[close, j] > seed_energy[close, i]
            seed[close, i] = np.where(j_seeds, seed[close, j], seed[close, i])
            seed_energy[close, i] = np.maximum(seed_energy[close, i], seed_energy[close, j])
            valid[close, j] = False
    return Clusters(energy, direction, origin, seed, valid)


def smear(
    rng: np.random.Generator, energy: np.ndarray, theta: np.ndarray, phi: np.ndarray, model: str = "belle2"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian smearing of true (E, theta, phi) with the resolution at the true energy.

    Returns the measured energy, theta, phi (wrapped to (-pi, pi]) and the packed covariance
    evaluated at the measured energy, as an analysis would compute it.
    """
    shape = np.shape(energy)
    measured_energy = energy + energy_resolution(energy, model) * rng.standard_normal(shape)
    measured_theta = theta + theta_resolution(energy) * rng.standard_normal(shape)
    measured_phi = phi + phi_resolution(energy) * rng.standard_normal(shape)
    measured_phi = (measured_phi + np.pi) % (2.0 * np.pi) - np.pi
    positive = np.where(measured_energy > 0, measured_energy, np.nan)
    return measured_energy, measured_theta, measured_phi, packed_covariance(positive, model)


def three_photon_mass(energy: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Invariant mass of the photons along the last axis, from (E, theta, phi)."""
    return invariant_mass(photon_four_vectors(energy, theta, phi).sum(axis=-2))
