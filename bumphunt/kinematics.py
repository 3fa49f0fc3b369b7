"""Four-vector arithmetic and the collider frame (beams, boosts, centre-of-mass axes).

Four-vectors are numpy arrays whose last axis is ``(E, px, py, pz)`` in GeV. The lab frame
has z along the solenoid axis, x in the plane of the two beams.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .constants import ELECTRON_MASS


def minkowski_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minkowski product a.b with metric (+, -, -, -) over the last axis."""
    return a[..., 0] * b[..., 0] - np.sum(a[..., 1:] * b[..., 1:], axis=-1)


def invariant_mass(p: np.ndarray) -> np.ndarray:
    """Invariant mass of four-vectors; slightly negative m^2 from rounding gives 0."""
    return np.sqrt(np.maximum(minkowski_dot(p, p), 0.0))


def boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Boost four-vectors ``p`` by velocity ``beta``.

    A particle at rest acquires velocity ``beta``; ``boost(p, -beta)`` is the inverse.

    Parameters
    ----------
    p : array (..., 4)
    beta : array (3,) or broadcastable to (..., 3), |beta| < 1
    """
    beta = np.asarray(beta, dtype=float)
    beta2 = np.sum(beta * beta, axis=-1)
    gamma = 1.0 / np.sqrt(1.0 - beta2)
    beta_dot_p = np.sum(beta * p[..., 1:], axis=-1)
    # (gamma - 1) / beta^2 written to stay finite at beta -> 0
    gamma_term = gamma * gamma / (1.0 + gamma)
    out = np.empty(np.broadcast_shapes(p.shape, beta.shape[:-1] + (4,)))
    out[..., 0] = gamma * (p[..., 0] + beta_dot_p)
    coefficient = gamma_term * beta_dot_p + gamma * p[..., 0]
    out[..., 1:] = p[..., 1:] + coefficient[..., None] * beta
    return out


def unit_vectors(cos_theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit three-vectors from polar cosine and azimuth, shape (..., 3)."""
    sin_theta = np.sqrt(np.clip(1.0 - cos_theta * cos_theta, 0.0, None))
    return np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=-1)


def massless_four_vectors(energy: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Four-vectors ``E (1, n)`` of massless particles with unit directions ``n``."""
    return np.concatenate([energy[..., None], energy[..., None] * direction], axis=-1)


def photon_four_vectors(energy: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Massless four-vectors from (E, theta, phi)."""
    return massless_four_vectors(energy, unit_vectors(np.cos(theta), phi))


def polar_angles(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar angle theta in [0, pi] and azimuth phi in (-pi, pi] of four- or three-vectors."""
    momentum = p[..., -3:]
    theta = np.arctan2(np.hypot(momentum[..., 0], momentum[..., 1]), momentum[..., 2])
    phi = np.arctan2(momentum[..., 1], momentum[..., 0])
    return theta, phi


def frame_with_z_along(axis: np.ndarray) -> np.ndarray:
    """Rotation matrix whose columns are an orthonormal right-handed basis with e_z = axis.

    ``R @ v_local`` expresses a vector given in the local frame (z' along ``axis``) in the
    frame ``axis`` is given in.
    """
    e_z = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    helper = np.array([0.0, 1.0, 0.0]) if abs(e_z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e_x = np.cross(helper, e_z)
    e_x /= np.linalg.norm(e_x)
    e_y = np.cross(e_z, e_x)
    return np.column_stack([e_x, e_y, e_z])


def rotate(p: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Apply a 3x3 rotation to the spatial part of four-vectors."""
    out = p.copy()
    out[..., 1:] = p[..., 1:] @ rotation.T
    return out


@dataclass(frozen=True)
class Beams:
    """Asymmetric e+e- beams crossing in the xz-plane of the lab frame.

    Parameters
    ----------
    e_minus_energy, e_plus_energy : float
        Beam energies (GeV): the high-energy ring (HER) carries the electrons.
    crossing_angle : float
        Full angle between the electron momentum and the reversed positron momentum (rad).
    her_angle : float
        Angle of the electron beam to the +z axis (rad); the positron beam makes
        ``crossing_angle - her_angle`` with the -z axis, both tilted towards +x.
    """

    e_minus_energy: float = 7.0
    e_plus_energy: float = 4.0
    crossing_angle: float = 0.083
    her_angle: float = 0.0415

    @classmethod
    def from_config(cls, config: dict) -> Beams:
        """Beams from the ``beam`` section of an analysis configuration."""
        beam = config["beam"]
        return cls(
            e_minus_energy=beam["e_minus_energy"],
            e_plus_energy=beam["e_plus_energy"],
            crossing_angle=beam["crossing_angle"],
            her_angle=beam["her_angle"],
        )

    @cached_property
    def electron(self) -> np.ndarray:
        """Electron four-momentum in the lab."""
        p = np.sqrt(self.e_minus_energy**2 - ELECTRON_MASS**2)
        a = self.her_angle
        return np.array([self.e_minus_energy, p * np.sin(a), 0.0, p * np.cos(a)])

    @cached_property
    def positron(self) -> np.ndarray:
        """Positron four-momentum in the lab."""
        p = np.sqrt(self.e_plus_energy**2 - ELECTRON_MASS**2)
        a = self.crossing_angle - self.her_angle
        return np.array([self.e_plus_energy, p * np.sin(a), 0.0, -p * np.cos(a)])

    @cached_property
    def four_momentum(self) -> np.ndarray:
        """Total initial-state four-momentum in the lab, (E, px, py, pz)."""
        return self.electron + self.positron

    @cached_property
    def sqrt_s(self) -> float:
        """Centre-of-mass energy (GeV)."""
        return float(invariant_mass(self.four_momentum))

    @property
    def s(self) -> float:
        """Centre-of-mass energy squared (GeV^2)."""
        return self.sqrt_s**2

    @cached_property
    def boost_vector(self) -> np.ndarray:
        """Velocity of the centre-of-mass frame in the lab."""
        return self.four_momentum[1:] / self.four_momentum[0]

    @cached_property
    def cm_rotation(self) -> np.ndarray:
        """Rotation from the local CM frame (z' along the electron) to CM-frame coordinates."""
        electron_cm = boost(self.electron, -self.boost_vector)
        return frame_with_z_along(electron_cm[1:])

    def local_cm_to_lab(self, p: np.ndarray) -> np.ndarray:
        """Four-vectors given in the local CM frame (z' along the electron) to the lab."""
        return boost(rotate(p, self.cm_rotation), self.boost_vector)

    def lab_to_local_cm(self, p: np.ndarray) -> np.ndarray:
        """Lab four-vectors to the local CM frame (z' along the electron); inverse of
        :meth:`local_cm_to_lab`."""
        return rotate(boost(p, -self.boost_vector), self.cm_rotation.T)
