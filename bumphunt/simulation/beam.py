"""Beam-energy spread and initial-state radiation: the four-momentum of every collision.

The nominal beams (:class:`bumphunt.kinematics.Beams`) collide at sqrt(s) = 10.574 GeV. A real
collision differs in two ways, both drawn per event by :meth:`BeamEffects.collisions`:

* **Beam-energy spread**: each beam energy is smeared by a Gaussian of the same relative width
  delta = sqrt(2) sigma_W / sqrt(s), so that sqrt(s) ~ 2 sqrt(E- E+) spreads by sigma_W
  (``beam.energy_spread``, default 5 MeV: SuperKEKB's relative beam-energy spreads of
  6-8e-4 give 5-5.5 MeV).
* **Initial-state radiation** (``beam.isr``): one beam, electron or positron with equal
  probability, radiates a fraction x of its energy along its own direction; the photon is lost
  in the beam pipe, so s' = (1 - x) s and the collision frame moves along that beam. x follows
  the radiator function of Kuraev and Fadin [Sov. J. Nucl. Phys. 41 (1985) 466], in its
  leading-logarithm form with the soft photons exponentiated,

      W(x) = beta x^(beta - 1) (1 + 3 beta / 4) - beta (1 - x/2),
      beta = (2 alpha / pi) (ln(s / m_e^2) - 1)   (0.0877 at 10.574 GeV),

  normalised to one on (0, 1): radiation moves events to lower s' without changing the total
  rate. It is weighted with the process's own sigma(s') / sigma(s) (:class:`CrossSectionScaling`):
  x is drawn with density W(x) sigma(s') / sigma(s) on (0, x_max] by accept-reject (x = u^(1/beta)
  with u uniform is the envelope), so every event of a sample keeps the same weight, and the
  sample's cross-section becomes sigma_eff = sigma(s) integral_0^x_max W(x) sigma(s')/sigma(s) dx
  (:meth:`BeamEffects.cross_section_factor`, Gauss-Legendre quadrature in u = x^beta).

x_max = 1 - (0.9 m_ggg_min)^2 (0.48 with the default pre-selection, at most 0.95): above it
sqrt(s') < 0.72 sqrt(s), 10 % below the M_ggg window, which the three photons of a collision
cannot reach (the M_ggg resolution is 1.2 %), so no event above it would pass the
pre-selection and leaving them out does not bias the selected sample.

Events are generated in the collision's own CM frame (z' along its electron) and taken to the
lab by :meth:`Collisions.local_cm_to_lab`. With no spread and no ISR the collisions are the
nominal beams, no random number is drawn and the lab transformation is
:meth:`Beams.local_cm_to_lab` itself, so the events are bit for bit those without this module.
The cross-sections of the samples are those at the nominal sqrt(s): the spread changes them
at order (sigma_W / sqrt(s))^2 ~ 3e-7.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from ..constants import ALPHA_EM, ELECTRON_MASS
from ..kinematics import Beams, boost

#: x_max = 1 - (ISR_MASS_MARGIN * m_ggg_min)^2: collisions below 90 % of the M_ggg window.
ISR_MASS_MARGIN = 0.9
#: x_max never exceeds this (a pre-selection without a lower M_ggg edge).
ISR_X_MAX_CAP = 0.95
_QUADRATURE_NODES = 256


def radiator_beta(s: float) -> float:
    """beta = (2 alpha / pi) (ln(s / m_e^2) - 1) of the radiator function, s in GeV^2."""
    return 2.0 * ALPHA_EM / np.pi * (np.log(s / ELECTRON_MASS**2) - 1.0)


def radiator(x, beta: float) -> np.ndarray:
    """Kuraev-Fadin radiator W(x) = beta x^(beta-1) (1 + 3 beta/4) - beta (1 - x/2), 0 < x < 1."""
    x = np.asarray(x, dtype=float)
    return beta * x ** (beta - 1.0) * (1.0 + 0.75 * beta) - beta * (1.0 - x / 2.0)


def isr_x_max(m_ggg_min: float) -> float:
    """Largest ISR energy fraction simulated, from the lower edge of the M_ggg window / sqrt(s)."""
    return min(max(1.0 - (ISR_MASS_MARGIN * m_ggg_min) ** 2, 0.0), ISR_X_MAX_CAP)


@dataclass(frozen=True)
class CrossSectionScaling:
    """How a cross-section depends on s: sigma(s') / sigma(s) = [(1 - m^2/s') / (1 - m^2/s)]^3 (s/s')^power.

    * ALP, e+e- -> gamma a: ``mass`` = m_a, ``power`` 0 (alpha g^2/24 (1 - m^2/s)^3);
    * e+e- -> gamma P with |F(s)| = (q^2 F)/s: ``power`` 2;
    * massless final states generated within cuts that scale with sqrt(s) (gamma gamma gamma):
      ``mass`` 0, ``power`` 1 (a dimensionless sigma s).
    """

    mass: float = 0.0
    power: float = 0.0

    def ratio(self, s_prime, s: float) -> np.ndarray:
        """sigma(s') / sigma(s); 0 below the threshold s' = m^2."""
        s_prime = np.asarray(s_prime, dtype=float)
        m2 = self.mass**2
        threshold = np.clip(1.0 - m2 / s_prime, 0.0, None) / (1.0 - m2 / s)
        return threshold**3 * (s / s_prime) ** self.power

    def bound(self, s_min: float, s_max: float, s: float) -> float:
        """An upper bound of :meth:`ratio` for s_min <= s' <= s_max."""
        m2 = self.mass**2
        threshold = max(1.0 - m2 / s_max, 0.0) / (1.0 - m2 / s)
        return threshold**3 * (s / s_min) ** self.power


#: The massless final state of e+e- -> gamma gamma gamma (cuts scaled with sqrt(s')).
MASSLESS_SCALING = CrossSectionScaling(0.0, 1.0)
#: e+e- -> gamma P with a transition form factor falling as 1/s.
MESON_POWER = 2.0


@dataclass(frozen=True, eq=False)
class Collisions:
    """The e+e- collisions of ``n`` events: their four-momentum, sqrt(s') and frame.

    Parameters
    ----------
    beams : Beams
        The nominal beams.
    n : int
        Number of events.
    electron, positron : array (n, 4), optional
        The colliding electron and positron in the lab (after spread and ISR); None for the
        nominal beams.
    isr_fraction : array (n,), optional
        Energy fraction x radiated by the beam that radiated (0 without ISR).
    """

    beams: Beams
    n: int
    electron: np.ndarray | None = None
    positron: np.ndarray | None = None
    isr_fraction: np.ndarray | None = None

    @property
    def nominal(self) -> bool:
        """True when every collision is the nominal one."""
        return self.electron is None

    @cached_property
    def four_momentum(self) -> np.ndarray:
        """Lab four-momentum of each collision, (n, 4)."""
        if self.nominal:
            return np.tile(self.beams.four_momentum, (self.n, 1))
        return self.electron + self.positron

    @cached_property
    def sqrt_s(self) -> np.ndarray:
        """sqrt(s') of each collision (GeV), (n,)."""
        if self.nominal:
            return np.full(self.n, self.beams.sqrt_s)
        p = self.four_momentum
        return np.sqrt(p[:, 0] ** 2 - np.sum(p[:, 1:] ** 2, axis=1))

    @cached_property
    def boost_vector(self) -> np.ndarray:
        """Velocity of each collision's CM frame in the lab, (n, 3)."""
        p = self.four_momentum
        return p[:, 1:] / p[:, :1]

    @cached_property
    def cm_rotation(self) -> np.ndarray:
        """Per-event rotation from the local CM frame (z' along the electron) to CM-frame
        coordinates, (n, 3, 3): columns e_x = y x e_z / |y x e_z|, e_y = e_z x e_x, e_z (as
        :func:`~bumphunt.kinematics.frame_with_z_along`; the beams lie in the xz-plane)."""
        if self.nominal:
            return np.broadcast_to(self.beams.cm_rotation, (self.n, 3, 3))
        e_z = boost(self.electron, -self.boost_vector)[:, 1:]
        e_z /= np.linalg.norm(e_z, axis=1, keepdims=True)
        e_x = np.stack([e_z[:, 2], np.zeros(self.n), -e_z[:, 0]], axis=1)
        e_x /= np.linalg.norm(e_x, axis=1, keepdims=True)
        e_y = np.stack(
            [
                e_z[:, 1] * e_x[:, 2] - e_z[:, 2] * e_x[:, 1],
                e_z[:, 2] * e_x[:, 0] - e_z[:, 0] * e_x[:, 2],
                e_z[:, 0] * e_x[:, 1] - e_z[:, 1] * e_x[:, 0],
            ],
            axis=1,
        )
        return np.stack([e_x, e_y, e_z], axis=-1)

    @cached_property
    def lorentz_matrix(self) -> np.ndarray:
        """Per-event Lorentz transformation from the local CM frame to the lab, (n, 4, 4):
        the rotation :attr:`cm_rotation`, then the boost by :attr:`boost_vector`."""
        beta = self.boost_vector
        beta2 = np.sum(beta * beta, axis=1)
        gamma = 1.0 / np.sqrt(1.0 - beta2)
        boost_matrix = np.empty((self.n, 4, 4))
        boost_matrix[:, 0, 0] = gamma
        boost_matrix[:, 0, 1:] = boost_matrix[:, 1:, 0] = gamma[:, None] * beta
        boost_matrix[:, 1:, 1:] = np.eye(3) + (gamma * gamma / (1.0 + gamma))[:, None, None] * (
            beta[:, :, None] * beta[:, None, :]
        )
        rotation = np.zeros((self.n, 4, 4))
        rotation[:, 0, 0] = 1.0
        rotation[:, 1:, 1:] = self.cm_rotation
        return boost_matrix @ rotation

    def local_cm_to_lab(self, p: np.ndarray) -> np.ndarray:
        """Four-vectors (n, ..., 4), given in each collision's local CM frame, to the lab."""
        if self.nominal:
            return self.beams.local_cm_to_lab(p)
        flat = p.reshape(self.n, int(np.prod(p.shape[1:-1])), 4)
        return (flat @ np.swapaxes(self.lorentz_matrix, 1, 2)).reshape(p.shape)


@dataclass(frozen=True)
class BeamEffects:
    """Beam-energy spread and ISR, from the ``beam`` section of a configuration.

    Attributes
    ----------
    beams : Beams
    energy_spread : float
        Gaussian spread of sqrt(s) (GeV); 0 for none.
    isr : bool
        Initial-state radiation on or off.
    x_max : float
        Largest ISR energy fraction (:func:`isr_x_max`).
    """

    beams: Beams
    energy_spread: float = 0.0
    isr: bool = False
    x_max: float = isr_x_max(0.8)

    @classmethod
    def from_config(cls, config: dict) -> BeamEffects:
        beam = config["beam"]
        return cls(
            beams=Beams.from_config(config),
            energy_spread=float(beam["energy_spread"]),
            isr=bool(beam["isr"]),
            x_max=isr_x_max(config["preselection"]["m_ggg_min"]),
        )

    @property
    def enabled(self) -> bool:
        """False when every collision is the nominal one."""
        return self.energy_spread > 0.0 or self.isr

    @property
    def relative_beam_spread(self) -> float:
        """Relative Gaussian spread of each beam energy, sqrt(2) sigma_W / sqrt(s)."""
        return np.sqrt(2.0) * self.energy_spread / self.beams.sqrt_s

    @cached_property
    def beta(self) -> float:
        """The radiator's beta at the nominal s."""
        return radiator_beta(self.beams.s)

    def cross_section_factor(self, scaling: CrossSectionScaling = MASSLESS_SCALING) -> float:
        """sigma_eff / sigma(s) = integral_0^x_max W(x) sigma((1-x) s) / sigma(s) dx (1 without ISR).

        In u = x^beta the integrand W dx = [A - (1 - x/2) x^(1-beta)] du (A = 1 + 3 beta/4) is
        smooth, and Gauss-Legendre quadrature up to min(x_max, 1 - m^2/s) is exact to ~1e-13.
        """
        if not self.isr:
            return 1.0
        s, beta = self.beams.s, self.beta
        x_high = min(self.x_max, 1.0 - scaling.mass**2 / s)
        if x_high <= 0.0:
            return 0.0
        nodes, weights = _gauss_legendre(_QUADRATURE_NODES)
        u_high = x_high**beta
        u = (nodes + 1.0) * u_high / 2.0
        x = u ** (1.0 / beta)
        integrand = (1.0 + 0.75 * beta - (1.0 - x / 2.0) * x ** (1.0 - beta)) * scaling.ratio((1.0 - x) * s, s)
        return float(np.sum(weights * integrand) * u_high / 2.0)

    def collisions(
        self, rng: np.random.Generator, n: int, scaling: CrossSectionScaling = MASSLESS_SCALING
    ) -> Collisions:
        """Draw the collisions of ``n`` events of a process whose cross-section scales as ``scaling``.

        Draws nothing when the effects are off (nominal collisions). Otherwise, in this order:
        the two beam energies (``energy_spread`` > 0), then x by accept-reject and the radiating
        beam (``isr``).
        """
        if not self.enabled:
            return Collisions(self.beams, n)
        e_minus = np.full(n, self.beams.e_minus_energy)
        e_plus = np.full(n, self.beams.e_plus_energy)
        if self.energy_spread > 0.0:
            delta = self.relative_beam_spread
            e_minus = e_minus * (1.0 + delta * rng.standard_normal(n))
            e_plus = e_plus * (1.0 + delta * rng.standard_normal(n))
        x = np.zeros(n)
        if self.isr:
            s_beams = _invariant_mass_squared(self._beam(e_minus, "electron") + self._beam(e_plus, "positron"))
            x = self._sample_isr_fraction(rng, s_beams, scaling)
            from_positron = rng.random(n) < 0.5
            e_minus = np.where(from_positron, e_minus, e_minus * (1.0 - x))
            e_plus = np.where(from_positron, e_plus * (1.0 - x), e_plus)
        return Collisions(self.beams, n, self._beam(e_minus, "electron"), self._beam(e_plus, "positron"), x)

    def _beam(self, energy: np.ndarray, which: str) -> np.ndarray:
        """Four-momenta of electrons or positrons of the given energies along the nominal beam."""
        nominal = getattr(self.beams, which)
        direction = nominal[1:] / np.linalg.norm(nominal[1:])
        momentum = np.sqrt(energy**2 - ELECTRON_MASS**2)
        return np.concatenate([energy[:, None], momentum[:, None] * direction], axis=1)

    def _sample_isr_fraction(
        self, rng: np.random.Generator, s_beams: np.ndarray, scaling: CrossSectionScaling
    ) -> np.ndarray:
        """x per event with density W(x) sigma((1-x) s_beams) / sigma(s) on (0, x_max].

        Envelope beta x^(beta-1) A ratio_max (x = u^(1/beta), u uniform on (0, x_max^beta));
        the events still without an x draw again until all have one.
        """
        s, beta = self.beams.s, self.beta
        if len(s_beams) == 0:
            return np.empty(0)
        if np.any(scaling.ratio(s_beams, s) <= 0.0):
            raise ValueError(f"a collision below the threshold of a {scaling.mass} GeV resonance")
        a = 1.0 + 0.75 * beta
        u_max = self.x_max**beta
        bound = a * scaling.bound((1.0 - self.x_max) * s_beams.min(), s_beams.max(), s)
        x = np.empty(len(s_beams))
        pending = np.arange(len(s_beams))
        while pending.size:
            candidate = (u_max * rng.random(pending.size)) ** (1.0 / beta)
            density = a - (1.0 - candidate / 2.0) * candidate ** (1.0 - beta)
            density *= scaling.ratio((1.0 - candidate) * s_beams[pending], s)
            accepted = rng.random(pending.size) * bound < density
            x[pending[accepted]] = candidate[accepted]
            pending = pending[~accepted]
        return x

    def to_dict(self) -> dict:
        """The settings, for the metadata of a sample."""
        return {
            "energy_spread_gev": self.energy_spread,
            "isr": self.isr,
            "isr_x_max": self.x_max if self.isr else 0.0,
            "radiator": "Kuraev-Fadin, beta x^(beta-1) (1 + 3 beta/4) - beta (1 - x/2)",
            "radiator_beta": self.beta,
        }


@cache
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _invariant_mass_squared(p: np.ndarray) -> np.ndarray:
    return p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, axis=-1)
