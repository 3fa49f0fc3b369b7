"""Radiative Bhabha scattering e+e- -> e+e- gamma at tree level: matrix element, cuts, sampler.

Approximation
-------------
Lowest-order QED with photon exchange only (s and t channel, all eight single-bremsstrahlung
diagrams and their interferences; no Z, no loops, one real photon), massless kinematics:
every event is an exact massless three-body final state, four-momentum is conserved to
rounding. The electron mass enters only where it regulates a photon collinear to a lepton.

Matrix element. For massless fermions [Berends, Kleiss, De Causmaecker, Gastmans, Troost,
Wu, Nucl. Phys. B 206 (1982) 61, the CALKUL result for e+e- -> e+e- gamma] with
e-(p-) e+(p+) -> e-(q-) e+(q+) gamma(k),

    <|M|^2> = e^6 W X,
    X = [s s'(s^2 + s'^2) + t t'(t^2 + t'^2) + u u'(u^2 + u'^2)] / (s s' t t'),
    W = s/((p+.k)(p-.k)) + s'/((q+.k)(q-.k)) - t/((p+.k)(q+.k)) - t'/((p-.k)(q-.k))
        + u/((p+.k)(q-.k)) + u'/((p-.k)(q+.k)),

with s = (p+ + p-)^2, s' = (q+ + q-)^2, t = (p+ - q+)^2, t' = (p- - q-)^2,
u = (p+ - q-)^2, u' = (p- - q+)^2, e^2 = 4 pi alpha. It is exact at tree level (checked in
tests/test_bhabha.py against the eight Feynman diagrams evaluated with Dirac matrices).
W = -J^2 is the eikonal factor of the four charged legs [Jackson, Classical Electrodynamics,
3rd ed., sec. 15.2; Yennie, Frautschi, Suura, Ann. Phys. 13 (1961) 379], J the sum of
eta_i p_i / (p_i.k) over the legs, and for a soft photon e^4 X tends to the Born Bhabha
<|M_0|^2>(s, t) = 2 e^4 (s^4 + t^4 + u^4) / (s^2 t^2) (:func:`me2_bhabha`), so
<|M|^2> -> e^2 (-J^2) <|M_0|^2>.

Electron mass. The massless form diverges for a photon collinear to a lepton. As in BABAMC
[Berends & Kleiss, Nucl. Phys. B 228 (1983) 537], the mass is restored at leading power:
each photon-lepton product p_i.k in W becomes E_i omega (1 - beta_i cos theta_ik), the value
for a lepton of mass m and the same energy, and for each leg the term
-e^2 m^2 / (p_i.k)^2 <|M_0|^2> at the Born kinematics that leg radiates from is added
(incoming e-: (s', t); incoming e+: (s', t'); outgoing e-: (s, t); outgoing e+: (s, t')). This
is the quasi-collinear limit with the massive splitting function [Catani, Dittmaier,
Trocsanyi, Phys. Lett. B 500 (2001) 149]: a photon within theta ~ m/E of a lepton is
distributed as beta^2 sin^2 theta / (1 - beta cos theta)^2, and a cone of half-angle delta
around a lepton of energy E holds (alpha/pi) ln(w2/w1) [ln(delta^2 E^2/m^2) - 1] times the Born
cross-section of soft photons in [w1, w2]. Corrections are O(m^2/(E^2 theta^2)) away from
the collinear region.

Validity and what is missing. Exact tree level for hard photons at any angle and for soft
ones (the soft limit is the eikonal factor times the Born cross-section); leading power in
m/E near the collinear directions. Missing: Z exchange (gamma-Z interference, below 1 % at
10.58 GeV), loop and second-photon corrections (of relative order (alpha/pi) ln(s/m^2) = 5 %
times logarithms of the energy cuts, i.e. 10-20 % on the rate: a normalisation uncertainty
of the sample), vacuum polarisation (alpha(0) at every vertex, as everywhere in bumphunt:
alpha(t) in the t-channel photon would raise the rate by a few per cent), and the lepton
masses in the kinematics. A nearly collinear e+e- pair (s' ~ m^2, an internal conversion
gamma* -> e+e-) is not described by the massless form; it is removed by a minimum pair
opening angle (0.01 rad by default; 0.001 rad would add 0.2 % to the cross-section).

Generation cuts (:class:`RadiativeBhabhaCuts`, :func:`radiative_bhabha_cuts_for_acceptance`):
the photon above an energy threshold and inside the polar acceptance of photons; both leptons
above the same energy threshold, inside the polar range where they hit the calorimeter
(the ECL, 12.4-155.1 deg in the lab, wider than the tracking acceptance 17-150 deg), and
separated by a minimum opening angle; the photon at any angle to the leptons (the mass
regulates it). Three clusters need the photon and both leptons in the calorimeter above
threshold, so the cuts contain every event that can fake three photons on its own; a lepton
escaping along the beam (the t-channel pole) or below threshold leaves at most two clusters
of the hard process.

Sampler (:class:`RadiativeBhabhaSampler`): a seven-channel importance sampler on the massless
three-body phase space, parametrised by the energy and direction of one particle (A) and
the direction of a second (B): the third follows from momentum conservation, with

    dPhi_3 = E_A dE_A dOmega_A E_B dOmega_B / (8 (2 pi)^5 (sqrt(s) - E_A (1 - cos theta_AB))).

The channels map the peaks of the matrix element: initial-state-like radiation (photon
~ 1/(omega (1 - cos^2 theta)), the electron or the positron at its t-channel peak),
final-state radiation (photon ~ 1/(omega (1 + eps - cos theta_l-gamma)) around the
electron or the positron, eps the mass regulator), the soft-lepton (quasi-real Compton)
region of either lepton, and the nearly collinear pair. Everything here is in the local CM
frame (z along the incoming electron); units GeV and pb.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import ALPHA_EM, ELECTRON_MASS, GEV2_TO_PB
from ..kinematics import Beams, unit_vectors
from .qed import generation_cuts_for_acceptance

#: Polar-angle coverage of the Belle II electromagnetic calorimeter in the lab, degrees:
#: forward end cap from 12.4, backward end cap to 155.1 [Belle II Technical Design Report,
#: arXiv:1011.0352; Belle II Physics Book, PTEP 2019 (2019) 123C01].
ECL_THETA_MIN_DEG = 12.4
ECL_THETA_MAX_DEG = 155.1

#: Default minimum opening angle of the e+e- pair in the CM frame (rad).
LEPTON_PAIR_ANGLE_MIN = 0.01

#: Order of the particles in an event.
ELECTRON, POSITRON, PHOTON = 0, 1, 2

_PHASE_SPACE_CONSTANT = 8.0 * (2.0 * np.pi) ** 5


def me2_bhabha(s, t, alpha: float = ALPHA_EM):
    """Spin-averaged squared matrix element of Bhabha scattering at lowest order.

    Massless QED, s- and t-channel photon exchange and their interference:
    <|M_0|^2> = 2 e^4 (s^4 + t^4 + u^4) / (s^2 t^2) with u = -s - t, e^2 = 4 pi alpha
    [e.g. Berestetskii, Lifshitz, Pitaevskii, Quantum Electrodynamics, sec. 81]; with
    dsigma/dOmega = <|M_0|^2> / (64 pi^2 s) it is the textbook
    alpha^2/(2s) [(1 + cos^4(theta/2))/sin^4(theta/2) - 2 cos^4(theta/2)/sin^2(theta/2) + (1 + cos^2 theta)/2].

    Parameters
    ----------
    s, t : array_like
        Squared CM energy and momentum transfer (GeV^2), t < 0.
    alpha : float
        Fine-structure constant.
    """
    s = np.asarray(s, dtype=float)
    t = np.asarray(t, dtype=float)
    s2, t2 = s * s, t * t
    u2 = (s + t) * (s + t)
    e_squared = 4.0 * np.pi * alpha
    return 2.0 * e_squared**2 * (s2 * s2 + t2 * t2 + u2 * u2) / (s2 * t2)


def bhabha_cross_section(sqrt_s: float, cos_theta_min: float, cos_theta_max: float, alpha: float = ALPHA_EM) -> float:
    """Lowest-order Bhabha cross-section (pb) with the electron's cos(theta) in a range.

    Integral of :func:`me2_bhabha` / (64 pi^2 s) over the solid angle: with y = 1 - cos(theta),
    dsigma/dcos(theta) = (pi alpha^2 / s) (8/y^2 - 8/y + 6 - 2y + y^2/2), whose primitive in y is
    G(y) = -8/y - 8 ln y + 6y - y^2 + y^3/6.

    Parameters
    ----------
    sqrt_s : float
        Centre-of-mass energy (GeV).
    cos_theta_min, cos_theta_max : float
        Range of the electron's polar cosine to the incoming electron, cos_theta_max < 1.
    alpha : float
        Fine-structure constant.
    """
    if not -1.0 <= cos_theta_min < cos_theta_max < 1.0:
        raise ValueError(f"need -1 <= cos_theta_min < cos_theta_max < 1, got {cos_theta_min}, {cos_theta_max}")

    def primitive(y):
        return -8.0 / y - 8.0 * np.log(y) + 6.0 * y - y**2 + y**3 / 6.0

    integral = primitive(1.0 - cos_theta_min) - primitive(1.0 - cos_theta_max)
    return float(np.pi * alpha**2 / sqrt_s**2 * integral * GEV2_TO_PB)


def _energies_and_directions(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies (...) and unit directions (..., 3) of four-vectors."""
    momentum = p[..., 1:]
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero momentum gives NaN, which fails every cut
        return p[..., 0], momentum / np.linalg.norm(momentum, axis=-1, keepdims=True)


def _one_minus_cos(n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """1 - cos of the angle between unit vectors, as |n1 - n2|^2 / 2 (accurate for small angles)."""
    difference = n1 - n2
    return 0.5 * np.einsum("...i,...i->...", difference, difference)


def _one_minus_beta(energy, mass: float):
    """1 - beta of a particle of ``mass`` and ``energy``, without cancellation."""
    ratio = (mass / np.asarray(energy, dtype=float)) ** 2
    return ratio / (1.0 + np.sqrt(np.clip(1.0 - ratio, 0.0, None)))


def me2_eeg(
    p_minus: np.ndarray,
    p_plus: np.ndarray,
    particles: np.ndarray,
    alpha: float = ALPHA_EM,
    electron_mass: float = ELECTRON_MASS,
) -> np.ndarray:
    """Spin- and polarisation-averaged squared matrix element of e-(p-) e+(p+) -> e- e+ gamma.

    The massless tree-level result of Berends et al., Nucl. Phys. B 206 (1982) 61,
    <|M|^2> = e^6 W X (module docstring), with the photon-lepton products regulated by the
    electron mass and the mass terms -e^2 m^2/(p_i.k)^2 <|M_0|^2> of each leg added
    [Berends & Kleiss, Nucl. Phys. B 228 (1983) 537]. ``electron_mass=0`` gives the exact
    massless matrix element.

    Parameters
    ----------
    p_minus, p_plus : array (..., 4)
        Incoming electron and positron (massless).
    particles : array (..., 3, 4)
        Outgoing electron, positron and photon (massless), in that order.
    alpha : float
        Fine-structure constant at the three vertices.
    electron_mass : float
        Electron mass (GeV) used as the collinear regulator.
    """
    energy_in_minus, n_in_minus = _energies_and_directions(np.asarray(p_minus, dtype=float))
    energy_in_plus, n_in_plus = _energies_and_directions(np.asarray(p_plus, dtype=float))
    energy, n = _energies_and_directions(np.asarray(particles, dtype=float))
    e_out, e_pos, omega = energy[..., ELECTRON], energy[..., POSITRON], energy[..., PHOTON]
    n_out, n_pos, n_k = n[..., ELECTRON, :], n[..., POSITRON, :], n[..., PHOTON, :]

    s = 2.0 * energy_in_minus * energy_in_plus * _one_minus_cos(n_in_minus, n_in_plus)
    s_prime = 2.0 * e_out * e_pos * _one_minus_cos(n_out, n_pos)
    t = -2.0 * energy_in_plus * e_pos * _one_minus_cos(n_in_plus, n_pos)
    t_prime = -2.0 * energy_in_minus * e_out * _one_minus_cos(n_in_minus, n_out)
    u = -2.0 * energy_in_plus * e_out * _one_minus_cos(n_in_plus, n_out)
    u_prime = -2.0 * energy_in_minus * e_pos * _one_minus_cos(n_in_minus, n_pos)

    def photon_product(leg_energy, leg_direction):
        one_minus_beta = _one_minus_beta(leg_energy, electron_mass)
        return leg_energy * omega * (one_minus_beta + (1.0 - one_minus_beta) * _one_minus_cos(leg_direction, n_k))

    k_in_minus = photon_product(energy_in_minus, n_in_minus)
    k_in_plus = photon_product(energy_in_plus, n_in_plus)
    k_out = photon_product(e_out, n_out)
    k_pos = photon_product(e_pos, n_pos)

    w = (
        s / (k_in_plus * k_in_minus)
        + s_prime / (k_pos * k_out)
        - t / (k_in_plus * k_pos)
        - t_prime / (k_in_minus * k_out)
        + u / (k_in_plus * k_out)
        + u_prime / (k_in_minus * k_pos)
    )
    x = (
        s * s_prime * (s * s + s_prime * s_prime)
        + t * t_prime * (t * t + t_prime * t_prime)
        + u * u_prime * (u * u + u_prime * u_prime)
    ) / (s * s_prime * t * t_prime)
    e_squared = 4.0 * np.pi * alpha
    me2 = e_squared**3 * w * x
    if electron_mass > 0.0:
        mass_terms = (
            me2_bhabha(s_prime, t, alpha) / k_in_minus**2
            + me2_bhabha(s_prime, t_prime, alpha) / k_in_plus**2
            + me2_bhabha(s, t, alpha) / k_out**2
            + me2_bhabha(s, t_prime, alpha) / k_pos**2
        )
        me2 = me2 - e_squared * electron_mass**2 * mass_terms
    return me2


@dataclass(frozen=True)
class RadiativeBhabhaCuts:
    """Phase-space cuts of the radiative Bhabha generator, in the CM frame.

    Attributes
    ----------
    photon_energy_min : float
        Minimum CM energy of the photon (GeV).
    photon_cos_theta_max : float
        Maximum |cos theta*| of the photon to the beam axis.
    lepton_energy_min : float
        Minimum CM energy of the electron and of the positron (GeV).
    lepton_cos_theta_max : float
        Maximum |cos theta*| of the electron and of the positron: the t-channel cut.
    photon_lepton_angle_min : float
        Minimum CM angle between the photon and either lepton (rad); 0 generates photons
        collinear to the leptons, regulated by the electron mass.
    lepton_pair_angle_min : float
        Minimum CM opening angle of the e+e- pair (rad), > 0.
    """

    photon_energy_min: float
    photon_cos_theta_max: float
    lepton_energy_min: float
    lepton_cos_theta_max: float
    photon_lepton_angle_min: float = 0.0
    lepton_pair_angle_min: float = LEPTON_PAIR_ANGLE_MIN

    def to_dict(self) -> dict:
        return {
            "photon_energy_min_cm": self.photon_energy_min,
            "photon_cos_theta_max_cm": self.photon_cos_theta_max,
            "lepton_energy_min_cm": self.lepton_energy_min,
            "lepton_cos_theta_max_cm": self.lepton_cos_theta_max,
            "photon_lepton_angle_min_cm": self.photon_lepton_angle_min,
            "lepton_pair_angle_min_cm": self.lepton_pair_angle_min,
        }


def radiative_bhabha_cuts_for_acceptance(
    beams: Beams,
    energy_min_lab: float,
    theta_min: float,
    theta_max: float,
    lepton_theta_min: float = np.radians(ECL_THETA_MIN_DEG),
    lepton_theta_max: float = np.radians(ECL_THETA_MAX_DEG),
    *,
    photon_lepton_angle_min: float = 0.0,
    lepton_pair_angle_min: float = LEPTON_PAIR_ANGLE_MIN,
) -> RadiativeBhabhaCuts:
    """Loosest CM cuts that contain every e+e- gamma event whose three particles can give clusters.

    The photon must lie in the photon acceptance and above threshold; a lepton gives a
    cluster when it hits the calorimeter (by default the ECL coverage, wider than the
    tracking acceptance) above the same threshold. Each lab range is turned into CM cuts by
    :func:`bumphunt.simulation.qed.generation_cuts_for_acceptance`.

    Parameters
    ----------
    beams : Beams
    energy_min_lab : float
        Cluster energy threshold in the lab (GeV), for the photon and the leptons.
    theta_min, theta_max : float
        Lab polar-angle acceptance of photons (rad).
    lepton_theta_min, lepton_theta_max : float
        Lab polar range in which a lepton gives a calorimeter cluster (rad).
    photon_lepton_angle_min, lepton_pair_angle_min : float
        See :class:`RadiativeBhabhaCuts`.
    """
    photon = generation_cuts_for_acceptance(beams, energy_min_lab, theta_min, theta_max)
    lepton = generation_cuts_for_acceptance(beams, energy_min_lab, lepton_theta_min, lepton_theta_max)
    return RadiativeBhabhaCuts(
        photon_energy_min=photon.energy_min,
        photon_cos_theta_max=photon.cos_theta_max,
        lepton_energy_min=lepton.energy_min,
        lepton_cos_theta_max=lepton.cos_theta_max,
        photon_lepton_angle_min=photon_lepton_angle_min,
        lepton_pair_angle_min=lepton_pair_angle_min,
    )


@dataclass(frozen=True)
class _Channel:
    """One importance-sampling channel: particle A (energy and direction), particle B (direction).

    Energy kinds: ``log`` (~1/E) or ``flat``. Direction kinds: ``beam`` (~1/(1 - cos^2 theta)),
    ``forward`` / ``backward`` (t-channel peak along +z / -z, :meth:`RadiativeBhabhaSampler._direction_density`),
    ``around`` (A only: ~1/(1 + eps - cos theta_AB) around B).
    """

    a: int
    energy: str
    a_direction: str
    b: int
    b_direction: str
    fraction: float


#: Channels and their shares of the events: initial-state-like radiation (electron or
#: positron at its t-channel peak), final-state radiation around the electron or the
#: positron, a soft positron or electron (quasi-real Compton scattering), the collinear pair.
_CHANNELS = (
    _Channel(PHOTON, "log", "beam", ELECTRON, "forward", 0.06),
    _Channel(PHOTON, "log", "beam", POSITRON, "backward", 0.06),
    _Channel(PHOTON, "log", "around", ELECTRON, "forward", 0.4),
    _Channel(PHOTON, "log", "around", POSITRON, "backward", 0.4),
    _Channel(POSITRON, "log", "backward", PHOTON, "beam", 0.03),
    _Channel(ELECTRON, "log", "forward", PHOTON, "beam", 0.03),
    _Channel(ELECTRON, "flat", "around", POSITRON, "beam", 0.02),
)

#: Shares of the components 1/(1 - c)^2, 1/(1 - c) and flat of the t-channel peak density.
_PEAK_COMPONENTS = (0.85, 0.1, 0.05)


class RadiativeBhabhaSampler:
    """Importance sampler of e+e- -> e+e- gamma within :class:`RadiativeBhabhaCuts`.

    In the Belle II cuts (:func:`radiative_bhabha_cuts_for_acceptance`) the weights stay below
    8 times their mean (a third of the trials fall outside the cuts, weight 0), and about
    700,000 weighted events per second are drawn on one core.

    Parameters
    ----------
    sqrt_s : float
        Centre-of-mass energy (GeV).
    cuts : RadiativeBhabhaCuts
    alpha : float
        Fine-structure constant.
    electron_mass : float
        Collinear regulator of :func:`me2_eeg` (GeV); 0 needs ``photon_lepton_angle_min > 0``.
    """

    channels = _CHANNELS

    def __init__(
        self, sqrt_s: float, cuts: RadiativeBhabhaCuts, alpha: float = ALPHA_EM, electron_mass: float = ELECTRON_MASS
    ):
        for name in ("photon_energy_min", "lepton_energy_min"):
            if not 0.0 < getattr(cuts, name) < sqrt_s / 2.0:
                raise ValueError(f"{name} {getattr(cuts, name)} GeV must lie in (0, sqrt(s)/2)")
        for name in ("photon_cos_theta_max", "lepton_cos_theta_max"):
            if not 0.0 < getattr(cuts, name) < 1.0:
                raise ValueError(f"{name} {getattr(cuts, name)} must lie in (0, 1)")
        if not 0.0 < cuts.lepton_pair_angle_min < np.pi / 2:
            raise ValueError(f"lepton_pair_angle_min {cuts.lepton_pair_angle_min} rad must lie in (0, pi/2)")
        if not 0.0 <= cuts.photon_lepton_angle_min < np.pi / 2:
            raise ValueError(f"photon_lepton_angle_min {cuts.photon_lepton_angle_min} rad must lie in [0, pi/2)")
        if electron_mass < 0.0 or (electron_mass == 0.0 and cuts.photon_lepton_angle_min == 0.0):
            raise ValueError("a massless electron needs photon_lepton_angle_min > 0 (collinear photons)")
        self.sqrt_s = sqrt_s
        self.s = sqrt_s**2
        self.cuts = cuts
        self.alpha = alpha
        self.electron_mass = electron_mass
        half = sqrt_s / 2.0
        self.energy_max = half
        self.p_minus = np.array([half, 0.0, 0.0, half])
        self.p_plus = np.array([half, 0.0, 0.0, -half])
        lepton_energy_min, lepton_cos_max = cuts.lepton_energy_min, cuts.lepton_cos_theta_max
        self._energy_min = {PHOTON: cuts.photon_energy_min, ELECTRON: lepton_energy_min, POSITRON: lepton_energy_min}
        self._cos_max = {PHOTON: cuts.photon_cos_theta_max, ELECTRON: lepton_cos_max, POSITRON: lepton_cos_max}
        # 1 - cos of the minimum angles, as 2 sin^2(angle/2)
        self._photon_lepton_x_min = 2.0 * np.sin(cuts.photon_lepton_angle_min / 2.0) ** 2
        self._pair_x_min = 2.0 * np.sin(cuts.lepton_pair_angle_min / 2.0) ** 2
        self._fractions = np.array([channel.fraction for channel in self.channels])
        self._fractions /= self._fractions.sum()

    # ------------------------------------------------------------------ sampling

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` weighted events.

        Returns
        -------
        particles : array (n, 3, 4)
            Electron, positron and photon four-momenta in the local CM frame (z along the
            incoming electron).
        weight : array (n,)
            Cross-section weight in pb: the mean weight estimates sigma within the cuts;
            events outside the cuts have weight 0.
        """
        channel = rng.choice(len(self.channels), size=n, p=self._fractions)
        uniforms = rng.random((n, 7))
        particles = np.empty((n, 3, 4))
        total = np.array([self.sqrt_s, 0.0, 0.0, 0.0])
        for index, spec in enumerate(self.channels):
            rows = np.flatnonzero(channel == index)
            if len(rows) == 0:
                continue
            u = uniforms[rows]
            energy_a = self._sample_energy(spec, u[:, 0])
            n_b = self._sample_direction(spec.b_direction, self._cos_max[spec.b], u[:, 4], u[:, 5], u[:, 6])
            if spec.a_direction == "around":
                n_a = self._sample_around(
                    n_b, self._around_regulator(spec, energy_a), self._around_x_min(spec), u[:, 1:4]
                )
            else:
                n_a = self._sample_direction(spec.a_direction, self._cos_max[spec.a], u[:, 1], u[:, 2], u[:, 3])
            x_ab = _one_minus_cos(n_a, n_b)
            energy_b = (self.s - 2.0 * self.sqrt_s * energy_a) / (2.0 * (self.sqrt_s - energy_a * x_ab))
            a = np.concatenate([energy_a[:, None], energy_a[:, None] * n_a], axis=1)
            b = np.concatenate([energy_b[:, None], energy_b[:, None] * n_b], axis=1)
            c = 3 - spec.a - spec.b
            particles[rows, spec.a] = a
            particles[rows, spec.b] = b
            particles[rows, c] = total - a - b
        return particles, self.weight(particles)

    def cross_section(self, rng: np.random.Generator, n: int, chunk_size: int = 500_000) -> tuple[float, float]:
        """Cross-section within the cuts: the mean weight of ``n`` trials, drawn in chunks.

        Returns
        -------
        sigma, error : float
            Cross-section (pb) and its statistical error.
        """
        total = total_sq = 0.0
        done = 0
        while done < n:
            size = min(chunk_size, n - done)
            weight = self.sample(rng, size)[1]
            total += float(weight.sum())
            total_sq += float(np.sum(weight * weight))
            done += size
        mean = total / n
        variance = max(total_sq / n - mean * mean, 0.0)
        return mean, float(np.sqrt(variance / n))

    def _sample_energy(self, spec: _Channel, u: np.ndarray) -> np.ndarray:
        low = self._energy_min[spec.a]
        if spec.energy == "log":
            return low * (self.energy_max / low) ** u
        return low + (self.energy_max - low) * u

    @staticmethod
    def _sample_direction(kind, cos_max, u_component, u_value, u_phi):
        phi = 2.0 * np.pi * u_phi - np.pi
        if kind == "beam":
            rapidity_max = np.arctanh(cos_max)
            return unit_vectors(np.tanh(rapidity_max * (2.0 * u_value - 1.0)), phi)
        f_double, f_single, _ = _PEAK_COMPONENTS
        inverse_low, inverse_high = 1.0 / (1.0 + cos_max), 1.0 / (1.0 - cos_max)
        double_pole = 1.0 - 1.0 / (inverse_low + (inverse_high - inverse_low) * u_value)
        single_pole = 1.0 - (1.0 - cos_max) * ((1.0 + cos_max) / (1.0 - cos_max)) ** u_value
        flat = cos_max * (2.0 * u_value - 1.0)
        cos_theta = np.where(
            u_component < f_double, double_pole, np.where(u_component < f_double + f_single, single_pole, flat)
        )
        if kind == "backward":
            cos_theta = -cos_theta
        return unit_vectors(cos_theta, phi)

    def _around_regulator(self, spec: _Channel, energy_a) -> np.ndarray:
        """eps of the collinear density: 1 - beta of B when A is collinear to it (photon around a lepton)."""
        if spec.a != PHOTON:
            return np.zeros_like(energy_a)
        lepton_energy = np.maximum(self.energy_max - energy_a, self.cuts.lepton_energy_min)
        return _one_minus_beta(lepton_energy, self.electron_mass)

    def _around_x_min(self, spec: _Channel) -> float:
        return self._photon_lepton_x_min if spec.a == PHOTON else self._pair_x_min

    @staticmethod
    def _sample_around(n_b, eps, x_min, u):
        """Directions with 1 - cos theta = x drawn ~ 1/(eps + x) on [x_min, 2] around ``n_b``."""
        low, high = eps + x_min, eps + 2.0
        x = low * (high / low) ** u[:, 1] - eps
        x = np.clip(x, x_min, 2.0)
        sin_theta = np.sqrt(x * (2.0 - x))
        phi = 2.0 * np.pi * u[:, 2]
        helper = np.where(np.abs(n_b[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
        e1 = helper - np.sum(helper * n_b, axis=1, keepdims=True) * n_b
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        e2 = np.cross(n_b, e1)
        transverse = np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2
        return n_b - x[:, None] * n_b + sin_theta[:, None] * transverse

    # ------------------------------------------------------------------ weights

    def inside(self, particles: np.ndarray) -> np.ndarray:
        """True for events within the cuts."""
        energy, n = _energies_and_directions(particles)
        cos_theta = n[..., 2]
        cuts = self.cuts
        ok = (energy[:, PHOTON] >= cuts.photon_energy_min) & (np.abs(cos_theta[:, PHOTON]) <= cuts.photon_cos_theta_max)
        for lepton in (ELECTRON, POSITRON):
            ok &= (energy[:, lepton] >= cuts.lepton_energy_min) & (
                np.abs(cos_theta[:, lepton]) <= cuts.lepton_cos_theta_max
            )
            ok &= _one_minus_cos(n[:, lepton], n[:, PHOTON]) >= self._photon_lepton_x_min
        ok &= _one_minus_cos(n[:, ELECTRON], n[:, POSITRON]) >= self._pair_x_min
        return ok

    def weight(self, particles: np.ndarray) -> np.ndarray:
        """Cross-section weight (pb) of events drawn from this sampler, 0 outside the cuts."""
        inside = self.inside(particles)
        weight = np.zeros(len(particles))
        if not np.any(inside):
            return weight
        selected = particles[inside]
        me2 = me2_eeg(self.p_minus, self.p_plus, selected, self.alpha, self.electron_mass)
        weight[inside] = me2 / (2.0 * self.s) / self.density(selected) * GEV2_TO_PB
        return weight

    def density(self, particles: np.ndarray) -> np.ndarray:
        """Probability density of the sampler with respect to the phase space dPhi_3."""
        energy, n = _energies_and_directions(particles)
        density = np.zeros(len(particles))
        for spec, fraction in zip(self.channels, self._fractions):
            density += fraction * self._channel_density(spec, energy, n)
        return density

    def _channel_density(self, spec: _Channel, energy, n):
        energy_a, energy_b = energy[:, spec.a], energy[:, spec.b]
        n_a, n_b = n[:, spec.a], n[:, spec.b]
        x_ab = _one_minus_cos(n_a, n_b)
        low = self._energy_min[spec.a]
        in_range = (energy_a >= low) & (energy_a <= self.energy_max)
        if spec.energy == "log":
            p_energy = 1.0 / (energy_a * np.log(self.energy_max / low))
        else:
            p_energy = np.full_like(energy_a, 1.0 / (self.energy_max - low))
        p_b, in_b = self._direction_density(spec.b_direction, self._cos_max[spec.b], n_b[:, 2])
        if spec.a_direction == "around":
            eps = self._around_regulator(spec, energy_a)
            x_min = self._around_x_min(spec)
            p_a = 1.0 / ((eps + x_ab) * np.log((eps + 2.0) / (eps + x_min)))
            in_a = x_ab >= x_min
        else:
            p_a, in_a = self._direction_density(spec.a_direction, self._cos_max[spec.a], n_a[:, 2])
        # dPhi_3 / (dE_A dOmega_A dOmega_B) = E_A E_B / (8 (2 pi)^5 (sqrt(s) - E_A (1 - cos theta_AB))), inverted
        inverse_jacobian = (
            _PHASE_SPACE_CONSTANT * np.maximum(self.sqrt_s - energy_a * x_ab, 0.0) / (energy_a * energy_b)
        )
        density = p_energy * p_a * p_b / (2.0 * np.pi) ** 2 * inverse_jacobian
        return np.where(in_range & in_a & in_b, density, 0.0)

    @staticmethod
    def _direction_density(kind, cos_max, cos_theta):
        """Density in cos(theta) of :meth:`_sample_direction` and whether it is in its range."""
        in_range = np.abs(cos_theta) <= cos_max
        if kind == "beam":
            return 1.0 / ((1.0 - cos_theta**2) * 2.0 * np.arctanh(cos_max)), in_range
        if kind == "backward":
            cos_theta = -cos_theta
        f_double, f_single, f_flat = _PEAK_COMPONENTS
        one_minus = 1.0 - cos_theta
        norm_double = 1.0 / (1.0 - cos_max) - 1.0 / (1.0 + cos_max)
        norm_single = np.log((1.0 + cos_max) / (1.0 - cos_max))
        density = (
            f_double / (one_minus**2 * norm_double) + f_single / (one_minus * norm_single) + f_flat / (2.0 * cos_max)
        )
        return density, in_range
