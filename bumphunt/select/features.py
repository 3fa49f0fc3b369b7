"""The inputs of the Punzi-net: nine event-shape and photon features in the centre-of-mass frame.

The features follow the Belle II ALP search (Belle II, PRL 125 (2020) 161806; Abudinen et
al., EPJC 82 (2022) 121). They are computed from the three photons of an event: the
kinematically fitted ones where the fit converged (``fit_status == 0``), the measured ones
otherwise (flagged by ``fit_used``). The photons are boosted to the local CM frame of
:meth:`bumphunt.kinematics.Beams.lab_to_local_cm` (nominal beams, z' along the electron
beam), where ``E_i`` is the CM energy, ``p_i`` the CM three-momentum and
``cos(theta_i) = p_z'/|p_i|``. Photons are ranked by CM energy: h (highest), m (middle),
l (lowest). Units: GeV.

======================  ====================================================================
``E_high``, ``E_low``   E_h, E_l
``u_h``, ``u_l``        u = E^2 (1 + cos theta) of photons h and l (GeV^2)
``t_l``, ``t_m``        t = E^2 (1 - cos theta) of photons l and m (GeV^2)
``sphericity``          S = 3/2 (lambda_2 + lambda_3), eigenvalues lambda_1 >= lambda_2 >=
                        lambda_3 of S^ab = sum_i p_i^a p_i^b / sum_i |p_i|^2
``R2``                  Fox-Wolfram R2 = H2/H0, H_l = sum_ij |p_i||p_j| P_l(cos theta_ij) /
                        E_vis^2 with E_vis = sum_i |p_i|
``cleo_cone_0``         sum of |p_i| of the photons within 10 degrees of the thrust axis
                        (either direction), divided by E_vis = sum_i |p_i|
======================  ====================================================================

Thrust: T = max_n sum_i |p_i . n| / sum_i |p_i| over unit vectors n. Since
sum_i |p_i . n| = max_eps (sum_i eps_i p_i) . n over signs eps_i = +-1, the maximum is
max_eps |sum_i eps_i p_i|, attained at n along the best signed sum: for three photons the
four candidates p1 + p2 + p3, p1 + p2 - p3, p1 - p2 + p3, -p1 + p2 + p3 (an overall sign
flips n only). This holds whether or not the momenta add to zero, so it is exact for
measured photons too (for a balanced three-photon event the axis is along the most
energetic photon).

CLEO cone normalisation: by the visible energy E_vis = sum_i |p_i|, so ``cleo_cone_0`` is
dimensionless in [0, 1], independent of the photon energy scale (E_vis = sqrt(s) for fitted
photons; the energy itself is in ``E_high``).

An event with a non-finite energy or angle, or a non-positive energy, of a used photon gets
NaN features; :attr:`FeatureTable.n_invalid` counts them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import NtupleError
from ..kinematics import Beams, photon_four_vectors

__all__ = [
    "CLEO_CONE_HALF_ANGLE",
    "FEATURES",
    "FEATURE_BRANCHES",
    "MEASURED_BRANCHES",
    "CMPhotons",
    "FeatureTable",
    "Thrust",
    "cleo_cone",
    "compute_features",
    "fox_wolfram_r2",
    "photon_kinematics",
    "sphericity",
    "thrust",
]

#: Feature names, in the column order of :attr:`FeatureTable.values`.
FEATURES = ("E_high", "E_low", "u_h", "u_l", "t_l", "t_m", "sphericity", "R2", "cleo_cone_0")

#: Branches of the measured photons (lab frame).
MEASURED_BRANCHES = ("photon_E", "photon_theta", "photon_phi")
#: Branches of the kinematic fit (written by the kinfit stage; names only, no import).
_FIT_BRANCHES = ("fit_status", "fit_photon_E", "fit_photon_theta", "fit_photon_phi")
#: The ntuple branches :func:`compute_features` reads (with ``use_fit=True``).
FEATURE_BRANCHES = MEASURED_BRANCHES + _FIT_BRANCHES

#: Half-angle of the CLEO cone around the thrust axis (rad).
CLEO_CONE_HALF_ANGLE = np.radians(10.0)

_N_PHOTONS = 3


class CMPhotons(NamedTuple):
    """The photons of each event in the local CM frame, arrays (n, 3) in GeV."""

    E: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    #: (n,) True where the kinematically fitted photons were used.
    fit_used: np.ndarray

    @property
    def momenta(self) -> np.ndarray:
        """Three-momenta, shape (n, 3, 3): event, photon, (px, py, pz)."""
        return np.stack([self.px, self.py, self.pz], axis=-1)


class Thrust(NamedTuple):
    """Thrust axis (n, 3) unit vectors (sign arbitrary) and thrust value T (n,)."""

    axis: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class FeatureTable:
    """The Punzi-net inputs of a set of events.

    Attributes
    ----------
    values : array (n, 9), float64
        Features, columns in :data:`FEATURES` order; NaN rows for invalid events.
    names : tuple of str
        Column names (:data:`FEATURES`).
    fit_used : array (n,), bool
        True where the kinematically fitted photons were used, False for measured ones.
    """

    values: np.ndarray
    names: tuple[str, ...]
    fit_used: np.ndarray

    @property
    def invalid(self) -> np.ndarray:
        """(n,) True for events whose features are NaN (bad photon input)."""
        return np.isnan(self.values).any(axis=1)

    @property
    def n_invalid(self) -> int:
        """Number of events with NaN features."""
        return int(np.count_nonzero(self.invalid))

    def as_dict(self) -> dict[str, np.ndarray]:
        """Feature name -> column (n,)."""
        return {name: self.values[:, k] for k, name in enumerate(self.names)}


def _require(branches: Mapping[str, np.ndarray], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in branches]
    if missing:
        raise NtupleError(f"features need branch(es) {', '.join(missing)}, missing from the input")


def _photon_arrays(branches: Mapping[str, np.ndarray], names: tuple[str, ...]) -> list[np.ndarray]:
    arrays = [np.asarray(branches[name], dtype=float) for name in names]
    n = len(arrays[0])
    for name, array in zip(names, arrays, strict=True):
        if array.shape != (n, _N_PHOTONS):
            raise NtupleError(f"branch {name}: shape {array.shape}, expected ({n}, {_N_PHOTONS})")
    return arrays


def photon_kinematics(branches: Mapping[str, np.ndarray], beams: Beams, *, use_fit: bool = True) -> CMPhotons:
    """The three photons of each event in the local CM frame.

    Parameters
    ----------
    branches : mapping of str to array
        :data:`FEATURE_BRANCHES` (only :data:`MEASURED_BRANCHES` when ``use_fit`` is False);
        lab-frame (E, theta, phi), arrays (n, 3).
    beams : Beams
        Nominal beams defining the local CM frame (z' along the electron beam).
    use_fit : bool
        Use the fitted photons of events with ``fit_status == 0``.

    Returns
    -------
    CMPhotons
        E, px, py, pz (n, 3) in GeV, and ``fit_used`` (n,).

    Raises
    ------
    NtupleError
        A needed branch is missing or has the wrong shape.
    """
    _require(branches, FEATURE_BRANCHES if use_fit else MEASURED_BRANCHES)
    energy, theta, phi = _photon_arrays(branches, MEASURED_BRANCHES)
    n = len(energy)
    if use_fit:
        fit_energy, fit_theta, fit_phi = _photon_arrays(branches, _FIT_BRANCHES[1:])
        status = np.asarray(branches["fit_status"])
        if status.shape != (n,) or len(fit_energy) != n:
            raise NtupleError(f"branches fit_status and fit_photon_*: not {n} events like photon_E")
        fit_used = status == 0
        energy, theta, phi = (
            np.where(fit_used[:, None], fitted, measured)
            for fitted, measured in ((fit_energy, energy), (fit_theta, theta), (fit_phi, phi))
        )
    else:
        fit_used = np.zeros(n, dtype=bool)
    cm = beams.lab_to_local_cm(photon_four_vectors(energy, theta, phi))
    return CMPhotons(cm[..., 0], cm[..., 1], cm[..., 2], cm[..., 3], fit_used)


def sphericity(momenta: np.ndarray) -> np.ndarray:
    """Sphericity S = 3/2 (lambda_2 + lambda_3) of momenta (n, k, 3); see the module docstring."""
    tensor = np.matmul(momenta.transpose(0, 2, 1), momenta)
    tensor /= np.trace(tensor, axis1=1, axis2=2)[:, None, None]
    eigenvalues = np.linalg.eigvalsh(tensor)  # ascending
    return 1.5 * (eigenvalues[:, 0] + eigenvalues[:, 1])


def fox_wolfram_r2(momenta: np.ndarray) -> np.ndarray:
    """Fox-Wolfram ratio R2 = H2/H0 of momenta (n, k, 3); see the module docstring."""
    size = np.linalg.norm(momenta, axis=-1)
    weights = size[:, :, None] * size[:, None, :]  # |p_i||p_j|
    cos_ij = np.matmul(momenta, momenta.transpose(0, 2, 1)) / weights
    legendre_2 = 1.5 * cos_ij * cos_ij - 0.5
    return np.sum(weights * legendre_2, axis=(1, 2)) / np.sum(weights, axis=(1, 2))


def thrust(momenta: np.ndarray) -> Thrust:
    """Thrust axis and value of momenta (n, k, 3), exactly, by the best signed sum.

    max_n sum_i |p_i . n| = max over signs eps of |sum_i eps_i p_i|: 2^(k-1) candidates.
    """
    k = momenta.shape[1]
    signs = np.array([(1.0, *rest) for rest in itertools.product((1.0, -1.0), repeat=k - 1)])
    candidates = np.matmul(signs, momenta)  # (n, 2^(k-1), 3)
    lengths = np.linalg.norm(candidates, axis=-1)
    best = np.argmax(lengths, axis=1)
    rows = np.arange(len(momenta))
    length = lengths[rows, best]
    axis = candidates[rows, best] / length[:, None]
    return Thrust(axis, length / np.linalg.norm(momenta, axis=-1).sum(axis=1))


def cleo_cone(momenta: np.ndarray, axis: np.ndarray, half_angle: float = CLEO_CONE_HALF_ANGLE) -> np.ndarray:
    """Sum of |p| within ``half_angle`` of ``axis`` (either direction) over sum of |p|.

    Parameters
    ----------
    momenta : array (n, k, 3)
    axis : array (n, 3), unit vectors
    half_angle : float
        Cone half-angle (rad).
    """
    size = np.linalg.norm(momenta, axis=-1)
    cos_to_axis = np.abs(np.matmul(momenta, axis[:, :, None])[:, :, 0]) / size
    inside = cos_to_axis >= np.cos(half_angle)
    return np.sum(np.where(inside, size, 0.0), axis=1) / np.sum(size, axis=1)


def _one_minus_plus_cos(momenta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1 - cos theta, 1 + cos theta), both without cancellation near |cos theta| = 1."""
    pz = momenta[..., 2]
    size = np.linalg.norm(momenta, axis=-1)
    pt2 = momenta[..., 0] ** 2 + momenta[..., 1] ** 2
    near = pt2 / (size * (size + np.abs(pz)))  # 1 - |cos theta|
    far = (size + np.abs(pz)) / size  # 1 + |cos theta|
    forward = pz >= 0
    return np.where(forward, near, far), np.where(forward, far, near)


def _features(energy: np.ndarray, momenta: np.ndarray) -> np.ndarray:
    """Feature matrix (n, 9) from CM energies (n, 3) and momenta (n, 3, 3)."""
    valid = np.all(np.isfinite(energy) & (energy > 0), axis=1) & np.all(np.isfinite(momenta), axis=(1, 2))
    valid &= np.all(np.any(momenta != 0, axis=2), axis=1)
    if not valid.all():  # a harmless stand-in event, its features set to NaN at the end
        energy = np.where(valid[:, None], energy, 1.0)
        momenta = np.where(valid[:, None, None], momenta, np.eye(_N_PHOTONS))
    order = np.argsort(energy, axis=1)  # low, middle, high
    energy = np.take_along_axis(energy, order, axis=1)
    momenta = np.take_along_axis(momenta, order[:, :, None], axis=1)
    one_minus_cos, one_plus_cos = _one_minus_plus_cos(momenta)
    e2 = energy * energy
    low, middle, high = 0, 1, 2
    columns = {
        "E_high": energy[:, high],
        "E_low": energy[:, low],
        "u_h": e2[:, high] * one_plus_cos[:, high],
        "u_l": e2[:, low] * one_plus_cos[:, low],
        "t_l": e2[:, low] * one_minus_cos[:, low],
        "t_m": e2[:, middle] * one_minus_cos[:, middle],
        "sphericity": sphericity(momenta),
        "R2": fox_wolfram_r2(momenta),
        "cleo_cone_0": cleo_cone(momenta, thrust(momenta).axis),
    }
    values = np.column_stack([columns[name] for name in FEATURES]).astype(np.float64, copy=False)
    values[~valid] = np.nan
    return values


def compute_features(branches: Mapping[str, np.ndarray], beams: Beams, *, use_fit: bool = True) -> FeatureTable:
    """The Punzi-net features of every event, vectorised.

    Parameters
    ----------
    branches : mapping of str to array
        :data:`FEATURE_BRANCHES` (only :data:`MEASURED_BRANCHES` when ``use_fit`` is False).
    beams : Beams
        Nominal beams defining the local CM frame.
    use_fit : bool
        Use the fitted photons of events with ``fit_status == 0``.

    Returns
    -------
    FeatureTable
        Columns in :data:`FEATURES` order; NaN rows (counted by ``n_invalid``) for events
        with a non-finite or non-positive photon input.

    Raises
    ------
    NtupleError
        A needed branch is missing or has the wrong shape.
    """
    photons = photon_kinematics(branches, beams, use_fit=use_fit)
    return FeatureTable(_features(photons.E, photons.momenta), FEATURES, photons.fit_used)
