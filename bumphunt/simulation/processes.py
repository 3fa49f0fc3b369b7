"""e+e- -> gamma gamma and e+e- -> P gamma gamma (P = pi0, eta, eta'): samplers and cross-sections.

Both processes are generated in the local CM frame of the colliding e+e- (z along the
electron, as in :mod:`~bumphunt.simulation.qed`), with massless electrons and
alpha = alpha(0). ``sqrt_s`` may be one value or one per event (beam-energy spread, ISR);
the events are then in the rest frame of each collision. Cuts derived from the acceptance
for the nominal boost contain it only up to any extra boost of that frame (from ISR).

e+e- -> gamma gamma (leading order)
-----------------------------------
dsigma/dOmega = alpha^2/s (1 + cos^2 theta)/(1 - cos^2 theta) for one photon at Omega
[Berestetskii, Lifshitz & Pitaevskii, QED, section 88; the massless limit of
<|M|^2> = 2 e^4 (u/t + t/u)]. The photons are identical, so an event is counted once:
with both photons inside |cos theta*| < c (the same condition, they are back to back),

    sigma = 1/2 * 2 pi * alpha^2/s * integral_{-c}^{c} (1 + x^2)/(1 - x^2) dx
          = (2 pi alpha^2 / s) (2 artanh c - c).

:class:`TwoPhotonSampler` draws cos theta* of the first photon from this distribution by
exact inversion of its CDF (so every event has weight sigma), the second photon opposite.
Its cut comes from the lab acceptance through
:func:`~bumphunt.simulation.qed.generation_cuts_for_acceptance` (``.cos_theta_max``), so it
contains the acceptance; the energy cut is irrelevant (each photon has sqrt(s)/2). At the
default Belle II beams and 17-150 deg, c = 0.9434: sigma = 3.02 nb at sqrt(s) = 10.5739 GeV.
In bumphunt the third photon of such an event comes from the beam-background overlay (and
cluster merging) of the detector simulation.

e+e- -> P gamma gamma
---------------------
Approximation: e+e- -> gamma* gamma_ISR, gamma* -> P gamma, i.e. e+e- -> gamma P at the
reduced energy s' = s - 2 sqrt(s) omega with one initial-state photon (CM energy omega,
polar angle theta to the electron) in the leading-order QED radiator of Bonneau & Martin,
NPB 27 (1971) 381 (massless form as in Rodrigo, Czyz, Kuhn & Szopa, EPJC 24 (2002) 71):
with x = 2 omega / sqrt(s) and c = cos theta,

    dsigma/(dx dc) = sigma(e+e- -> gamma P; s') * B(P -> gamma gamma)
                     * (alpha/pi) [ (1 + (1 - x)^2) / (x (1 - c^2)) - x/2 ].

This is exact at tree level for the rate integrated over the P gamma angles (the gamma*
couples to a conserved current); for a soft photon it becomes the eikonal factor
dsigma(P gamma) (alpha / 4 pi^2) |J(k)|^2 d^3k/omega, |J|^2 = 2 p+.p- / ((p+.k)(p-.k)),
i.e. sigma(P gamma) (2 alpha/pi) (domega/omega) dc / (1 - c^2). sigma(e+e- -> gamma P; s') is
:func:`bumphunt.physics.pseudoscalar_gamma_cross_section` with the constant q^2 F of
:data:`bumphunt.physics.MESONS` (Brodsky-Lepage scaling, F ~ 1/q^2). The P gamma system
recoils against the ISR photon: it is generated in its rest frame, the photon with
1 + cos^2 theta to the beam axis and P opposite, then boosted, so four-momentum is
conserved exactly; P decays to gamma gamma isotropically in its rest frame.

What it leaves out, and where it holds:

* the time-like form factor below ``recoil_mass_min`` (default 4 GeV): there the rate is
  dominated by radiative return to vector mesons decaying to P gamma (omega, rho, phi ->
  pi0 gamma / eta gamma; J/psi, psi(2S) -> gamma eta(')), which this model does not have
  (the 1/q^2 form factor is unphysical at low q^2), so those events are not generated;
* the interference between the two assignments of the identical photons (which one is
  radiated by the beams, which one comes from gamma* -> P gamma): small where one photon is
  soft (one assignment dominates there), not estimated where both are hard. Without it,
  counting the ISR-assigned photon once (no 1/2!) over all phase space is exact, so this
  sample and an e+e- -> gamma P sample with ISR outside the cuts below do not overlap;
* the polarisation of the gamma* after hard radiation: in the P gamma rest frame the photon
  follows 1 + cos^2 theta to the beam axis as in e+e- -> gamma P (exact in the soft limit);
* electron-mass terms (O(m_e^2 / (s (1 - c^2))) < 1e-6 inside the angular cut) and
  higher orders in alpha.

Generation cuts (on the ISR photon only): CM energy above ``cuts.energy_min`` and
|cos theta*| < ``cuts.cos_theta_max`` (:class:`~bumphunt.simulation.qed.GenerationCuts`,
from the acceptance by :func:`~bumphunt.simulation.qed.generation_cuts_for_acceptance`),
and P gamma mass sqrt(s') >= ``recoil_mass_min``. An ISR photon outside these cuts (soft or
along the beams) belongs to the e+e- -> gamma P sample with ISR: that sample's ISR must
then be restricted to photons outside them, or the region is counted twice.

At sqrt(s) = 10.5739 GeV with the Belle II acceptance (CM cuts E* > 0.0753 GeV,
|cos theta*| < 0.9434) and sqrt(s') > 4 GeV: sigma(pi0 gamma gamma) = 0.332 fb,
sigma(eta gamma gamma) = 0.199 fb, sigma(eta' gamma gamma) = 0.01293 fb, including
B(P -> gamma gamma) (pi0: 0.236 and 0.178 fb above sqrt(s') = 6 and 8 GeV, 2.07 fb above
1 GeV where the model no longer holds). The Belle II analysis (PRL 125 (2020) 161806, as
quoted in issue 11) has sigma_eff(pi0 gamma gamma) ~ 1.7 pb at ~1.3 % efficiency, some
5000 times more. That rate most likely comes from what this model leaves out: a narrow-width
estimate of the radiative return e+e- -> gamma omega, omega -> pi0 gamma (PDG
Gamma_ee = 0.64 keV, B = 8.4 %) gives ~0.17 pb with the photon in these cuts and ~1.2 pb
over all photon angles, the same order as 1.7 pb. Nothing here is tuned to that number.

e+e- -> gamma_ISR V, V -> P gamma (radiative return)
----------------------------------------------------
Below the continuum model's recoil_mass_min the P gamma gamma rate comes from radiative return
to the narrow vector mesons of :data:`bumphunt.physics.VECTOR_MESONS` (PDG 2024): one ISR
photon brings s' down to M_V^2, V decays to P gamma, P to gamma gamma. With the radiator
H(x, c) of :func:`isr_radiator` and e+e- -> V in the narrow-width approximation,
sigma_V(s') = 12 pi^2 Gamma_ee / M_V delta(s' - M_V^2) (the limit Gamma -> 0 of the Breit-Wigner
12 pi Gamma_ee Gamma / ((s' - M_V^2)^2 + M_V^2 Gamma^2)) [radiative return: Benayoun et al.,
Mod. Phys. Lett. A 14 (1999) 2605; Druzhinin et al., Rev. Mod. Phys. 83 (2011) 1545],

    dsigma/(dx dc) = H(x, c) sigma_V(s (1 - x)) B(V -> P gamma) B(P -> gamma gamma):

the ISR photon has the fixed CM energy omega = (s - M_V^2)/(2 sqrt s), x_V = 1 - M_V^2/s, and

    sigma = 12 pi^2 Gamma_ee / (M_V s) (alpha/pi) [(1 + (1 - x_V)^2)/x_V 2 artanh c - x_V c] B B

with the photon in |cos theta*| < c (:func:`isr_radiator_in_cut`, massless electrons). Over
all photon angles the electron mass cuts off the collinear peak and the angular integral of the
radiator is (alpha/pi)(ln(s/m_e^2) - 1)(1 + (1 - x_V)^2)/x_V (:func:`isr_radiator_all_angles`).

The V decay keeps its spin correlation with the beams, exactly at tree level. In the V rest
frame the e+e- -> gamma gamma* leptonic tensor (massless electrons, summed over spins and the
ISR photon's polarisation), with y_1,2 = 2 p_-,+ . k / s = x (1 -+ c)/2, q^2 = M_V^2/s and
P_1,2 the beam momenta in that frame, is L_0mu = 0 and

    L_ij ~ (2 q^2 + y_1^2 + y_2^2) delta_ij - 4 q^2 (P_1i P_1j + P_2i P_2j) / s,

and the magnetic-dipole vertex V -> P gamma (epsilon^{mu nu rho sigma} q_nu k_rho) gives the
photon direction n the density Tr L - n.L.n, which is

    dN/dOmega ~ (1 - y_1)^2 (1 + cos^2 theta_1) + (1 - y_2)^2 (1 + cos^2 theta_2),

theta_a the angle between the photon and beam a in the V rest frame (derived here and checked
against a Dirac-matrix evaluation of the tensor in tests/test_processes.py). It is sampled
exactly as a mixture of the two 1 + cos^2 distributions. For collinear ISR it is 1 + cos^2
about the beam axis; for M_V^2/s -> 0 both beams point along the V line of flight in its rest
frame and it becomes 1 + cos^2 about the flight direction (a transversely polarised V), with
corrections O(M_V^2/s): 0.2 % in <cos^2> for the omega, 3 % for the J/psi at 10.58 GeV. P
decays isotropically. Events: the ISR photon, the photon of V -> P gamma, the two photons of
P (the ISR photon comes first, unlike :class:`MesonGammaGammaSampler`). Generation cuts apply
to the ISR photon only: |cos theta*| < ``cuts.cos_theta_max``, and its fixed energy is above
``cuts.energy_min`` for sqrt(s) above :meth:`RadiativeReturnSampler.sqrt_s_threshold`.

Cross-sections at sqrt(s) = 10.5739 GeV including both branching fractions, in fb, with the
ISR photon in the Belle II acceptance cuts (|cos theta*| < 0.9434) / over all angles; the
channels with B(V -> P gamma) > 1e-4 (:func:`radiative_return_channels`) per sample:

* pi0 gamma gamma 183.9 / 1333: omega 169.2 / 1227, rho 10.57 / 76.7, phi 4.09 / 29.6;
* eta gamma gamma 21.39 / 153.9: phi 16.08 / 116.2, rho 2.69 / 19.5, J/psi 2.26 / 15.5,
  omega 0.364 / 2.64;
* eta' gamma gamma 0.610 / 4.18: J/psi 0.605 / 4.15, psi(2S) 0.0054 / 0.036.

Below B = 1e-4 and left out: phi -> eta' gamma (B = 6.2e-5) 0.0043 / 0.031 fb, negligible
next to J/psi -> gamma eta'; J/psi -> gamma pi0 (3.6e-5) 0.18 / 1.25 fb, 0.1 % of pi0 gamma
gamma. omega -> pi0 gamma alone gives 0.169 pb in the cuts and 1.23 pb over all angles, the
estimate quoted above. The resonances lie below sqrt(s') = 4 GeV, so these samples do not
overlap the continuum sample above its default recoil_mass_min. What they leave out:

* finite widths: the rho (Gamma/M = 0.19) is treated as narrow, without its line shape and
  without the rho-omega interference in pi0 gamma and eta gamma (integrated over the omega
  peak the interference term is of order 2 sqrt[(Gamma_ee B)_rho Gamma_omega / ((Gamma_ee
  B)_omega Gamma_rho)] ~ 12 % of the omega rate, its sign set by the relative phase); the
  non-resonant e+e- -> P gamma between the resonances (s' < 16 GeV^2) is not generated;
* higher orders in alpha (next-to-leading ISR corrections of a few per cent, multiple soft
  emission) and electron-mass terms inside the cut (O(m_e^2 / (s (1 - c^2))) < 1e-6);
* the PDG uncertainties: Gamma_ee(omega) 3 % (0.641 keV = B(e+e-) Gamma; the PDG's partial
  width is 0.60 keV), B(omega -> pi0 gamma) 3 %, B(rho -> pi0 gamma) 13 %, B(phi -> eta gamma)
  2 %, B(J/psi -> gamma eta') 1.3 %.
"""

from __future__ import annotations

import numpy as np

from ..constants import ALPHA_EM, ELECTRON_MASS, GEV2_TO_PB
from ..kinematics import boost, massless_four_vectors, unit_vectors
from ..physics import MESONS, VECTOR_MESONS, Meson, VectorMeson, pseudoscalar_gamma_cross_section
from .generators import isotropic_directions, sample_one_plus_cos2
from .qed import GenerationCuts

#: Default lowest P gamma mass sqrt(s') of e+e- -> P gamma gamma (GeV): above the narrow
#: vector-meson and charmonium resonances, where the 1/q^2 form factor holds.
DEFAULT_RECOIL_MASS_MIN = 4.0


def _as_sqrt_s(sqrt_s) -> float | np.ndarray:
    """``sqrt_s`` as a float or a 1-d float array, all values positive."""
    value = np.asarray(sqrt_s, dtype=float)
    if value.ndim > 1 or not np.all(value > 0.0):
        raise ValueError("sqrt_s must be a positive number or a 1-d array of positive numbers (GeV)")
    return float(value) if value.ndim == 0 else value


def _per_event(sqrt_s: float | np.ndarray, n: int) -> np.ndarray:
    """``sqrt_s`` as an array (n,), checking that a per-event array has ``n`` entries."""
    if np.ndim(sqrt_s) == 0:
        return np.full(n, sqrt_s)
    if len(sqrt_s) != n:
        raise ValueError(f"the sampler has {len(sqrt_s)} per-event sqrt_s values, {n} events were asked for")
    return np.asarray(sqrt_s)


def two_photon_cross_section(sqrt_s, cos_theta_max: float, alpha: float = ALPHA_EM):
    """sigma(e+e- -> gamma gamma) in pb at leading order, both photons with |cos theta*| < c.

    sigma = (2 pi alpha^2 / s) (2 artanh c - c), massless electrons, each event (two
    identical photons) counted once [Berestetskii, Lifshitz & Pitaevskii, QED, section 88].

    Parameters
    ----------
    sqrt_s : float or array
        Centre-of-mass energy (GeV).
    cos_theta_max : float
        The cut c on |cos theta*| to the beam axis, in (0, 1).
    alpha : float
        Fine-structure constant at both vertices.
    """
    s = np.asarray(sqrt_s, dtype=float) ** 2
    return 2.0 * np.pi * alpha**2 / s * (2.0 * np.arctanh(cos_theta_max) - cos_theta_max) * GEV2_TO_PB


class TwoPhotonSampler:
    """e+e- -> gamma gamma at leading order within |cos theta*| < ``cos_theta_max``.

    cos theta* of the first photon is drawn from dsigma/dcos ~ (1 + x^2)/(1 - x^2) by exact
    inversion of the CDF 2 artanh x - x (Newton's method in artanh x), the second photon is
    opposite; every event has weight sigma(sqrt_s) (:func:`two_photon_cross_section`).

    Parameters
    ----------
    sqrt_s : float or array (n,)
        Centre-of-mass energy (GeV), one value or one per event (then :meth:`sample` must be
        asked for exactly n events). The angular distribution does not depend on it: a
        per-event value only sets the photon energies and the weight, at no extra cost.
    cos_theta_max : float
        Cut on |cos theta*| of both photons, e.g.
        ``generation_cuts_for_acceptance(beams, 0.1, theta_min, theta_max).cos_theta_max``.
    alpha : float
        Fine-structure constant.
    """

    def __init__(self, sqrt_s, cos_theta_max: float, alpha: float = ALPHA_EM):
        if not 0.0 < cos_theta_max < 1.0:
            raise ValueError(f"cos_theta_max {cos_theta_max} must lie in (0, 1)")
        self.sqrt_s = _as_sqrt_s(sqrt_s)
        self.cos_theta_max = cos_theta_max
        self.alpha = alpha
        self._cdf_range = 2.0 * np.arctanh(cos_theta_max) - cos_theta_max

    def cross_section(self) -> float | np.ndarray:
        """sigma within the cut (pb); per event if ``sqrt_s`` is, the sample's being their mean."""
        sigma = two_photon_cross_section(self.sqrt_s, self.cos_theta_max, self.alpha)
        return float(sigma) if np.ndim(sigma) == 0 else sigma

    def generation_cuts(self) -> dict:
        """The generation cuts, for the sample's metadata."""
        return {"cos_theta_max_cm": self.cos_theta_max}

    def sample_cos_theta(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """cos theta* in (-c, c) with density ~ (1 + x^2)/(1 - x^2), by inverting the CDF."""
        target = (2.0 * rng.random(n) - 1.0) * self._cdf_range  # 2 artanh x - x = target
        y = np.abs(target)
        # f(eta) = 2 eta - tanh(eta) - y is increasing (f' = 1 + tanh^2 >= 1) and convex for
        # eta >= 0; from eta = (y + 1)/2 > root, Newton's steps decrease monotonically to it.
        eta = (y + 1.0) / 2.0
        for _ in range(60):
            tanh = np.tanh(eta)
            step = (2.0 * eta - tanh - y) / (1.0 + tanh * tanh)
            eta -= step
            if np.max(np.abs(step), initial=0.0) < 1e-15 * (1.0 + np.max(eta, initial=0.0)):
                break
        return np.copysign(np.tanh(eta), target)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` events.

        Returns
        -------
        photons : array (n, 2, 4)
            Photon four-momenta in the local CM frame (z along the electron).
        weight : array (n,)
            Cross-section weight in pb, sigma(sqrt_s) of each event: the mean weight is the
            cross-section of the sample.
        """
        sqrt_s = _per_event(self.sqrt_s, n)
        cos_theta = self.sample_cos_theta(rng, n)
        direction = unit_vectors(cos_theta, rng.uniform(-np.pi, np.pi, n))
        half = sqrt_s / 2.0
        photons = np.stack([massless_four_vectors(half, direction), massless_four_vectors(half, -direction)], axis=1)
        weight = two_photon_cross_section(sqrt_s, self.cos_theta_max, self.alpha)
        return photons, weight


def isr_radiator(x, cos_theta, alpha: float = ALPHA_EM):
    """LO initial-state radiator H(x, c) = dsigma/(dx dc) / sigma_Born(s (1 - x)).

    H = (alpha/pi) [(1 + (1 - x)^2) / (x (1 - c^2)) - x/2], massless electrons, for a photon
    of CM energy x sqrt(s)/2 at cos theta = c to the electron, the final state reached by one
    virtual photon of mass^2 s (1 - x) [Bonneau & Martin, NPB 27 (1971) 381].
    """
    x = np.asarray(x, dtype=float)
    one_minus_c2 = 1.0 - np.asarray(cos_theta, dtype=float) ** 2
    return alpha / np.pi * ((1.0 + (1.0 - x) ** 2) / (x * one_minus_c2) - x / 2.0)


def _integral_of_power(k: int, r):
    """An antiderivative of r^-k."""
    return np.log(r) if k == 1 else r ** (1 - k) / (1 - k)


def _integral_of_power_over_one_minus(k: int, r):
    """An antiderivative of r^-k / (1 - r), from 1/(r^k (1 - r)) = sum_{j=1}^{k} r^-j + 1/(1 - r)."""
    return sum(_integral_of_power(j, r) for j in range(1, k + 1)) - np.log1p(-r)


class MesonGammaGammaSampler:
    """e+e- -> P gamma gamma, P -> gamma gamma: gamma P plus one ISR photon (module docstring).

    The ISR photon's r = s'/s is drawn from 1/(r^2 (1 - r)) = 1/r^2 + 1/r + 1/(1 - r) (each
    term by inversion, chosen in proportion to its integral) and its cos theta* flat in
    artanh(cos theta*); this follows sigma(gamma P; s') x radiator up to a factor
    (1 + r^2)(1 - m^2/s')^3 times one in [0.5, 1], so the weights stay within a factor ~5 of
    each other.

    Parameters
    ----------
    meson : bumphunt.physics.Meson
        P, e.g. ``bumphunt.physics.MESONS["pi0_gamma"]``: mass, B(P -> gamma gamma) and q^2 F.
    sqrt_s : float or array (n,)
        Centre-of-mass energy (GeV), one value or one per event (then :meth:`sample` must be
        asked for exactly n events).
    cuts : GenerationCuts
        CM energy threshold and |cos theta*| cut of the ISR photon.
    recoil_mass_min : float
        Lowest invariant mass sqrt(s') of the P gamma system (GeV), where the 1/q^2 form
        factor is still trusted.
    """

    def __init__(self, meson: Meson, sqrt_s, cuts: GenerationCuts, *, recoil_mass_min: float = DEFAULT_RECOIL_MASS_MIN):
        self.meson = meson
        self.sqrt_s = _as_sqrt_s(sqrt_s)
        self.cuts = cuts
        self.recoil_mass_min = recoil_mass_min
        if not 0.0 < cuts.cos_theta_max < 1.0:
            raise ValueError(f"cos_theta_max {cuts.cos_theta_max} must lie in (0, 1)")
        if not recoil_mass_min > meson.mass:
            raise ValueError(f"recoil_mass_min {recoil_mass_min} GeV must exceed the {meson.name} mass")
        if not cuts.energy_min > 0.0:
            raise ValueError(f"energy_min {cuts.energy_min} GeV must be positive")
        threshold = self.sqrt_s_threshold(cuts, recoil_mass_min)
        if not np.all(np.asarray(self.sqrt_s) > threshold):
            raise ValueError(
                f"sqrt_s {np.min(self.sqrt_s):.4f} GeV leaves no phase space for energy_min {cuts.energy_min} GeV "
                f"and recoil_mass_min {recoil_mass_min} GeV: events need sqrt_s > {threshold:.4f} GeV "
                "(sqrt_s_threshold); those below it have no cross-section in this sample, leave them out"
            )
        self._rapidity_max = np.arctanh(cuts.cos_theta_max)

    @staticmethod
    def sqrt_s_threshold(cuts: GenerationCuts, recoil_mass_min: float = DEFAULT_RECOIL_MASS_MIN) -> float:
        """Lowest sqrt(s) (GeV) with phase space in the cuts, E_min + sqrt(E_min^2 + M_min^2).

        An ISR photon of energy E_min leaves s' = s - 2 sqrt(s) E_min = M_min^2 there.
        """
        return float(cuts.energy_min + np.hypot(cuts.energy_min, recoil_mass_min))

    def generation_cuts(self) -> dict:
        """The generation cuts, for the sample's metadata."""
        return {
            "isr_energy_min_cm": self.cuts.energy_min,
            "isr_cos_theta_max_cm": self.cuts.cos_theta_max,
            "recoil_mass_min": self.recoil_mass_min,
        }

    def _r_range(self, sqrt_s):
        """Range of r = s'/s: [recoil_mass_min^2 / s, 1 - 2 energy_min / sqrt(s)]."""
        return self.recoil_mass_min**2 / sqrt_s**2, 1.0 - 2.0 * self.cuts.energy_min / sqrt_s

    @staticmethod
    def _proposal_integrals(r_min, r_max):
        """Integrals of 1/r^2, 1/r and 1/(1 - r) over [r_min, r_max]."""
        return 1.0 / r_min - 1.0 / r_max, np.log(r_max / r_min), np.log((1.0 - r_min) / (1.0 - r_max))

    def cross_section(self) -> float | np.ndarray:
        """sigma x B(P -> gamma gamma) within the generation cuts (pb), in closed form.

        With mu = m^2/s, L = 2 artanh c and sigma(gamma P; r s) = K (1 - mu/r)^3 / r^2
        (K = 2 pi^2 alpha^3 (q^2 F)^2 / (3 s^2)): the integral over c is
        (alpha/pi) [L (1 + r^2)/(1 - r) - c (1 - r)], and expanding (1 - mu/r)^3 leaves
        integrals of r^-k and r^-k / (1 - r). Per event if ``sqrt_s`` is.
        """
        sqrt_s = np.asarray(self.sqrt_s)
        s = sqrt_s**2
        meson, c = self.meson, self.cuts.cos_theta_max
        mu = meson.mass**2 / s
        log_c = 2.0 * np.arctanh(c)
        r_min, r_max = self._r_range(sqrt_s)

        def antiderivative(r):
            total = 0.0
            for j, a in enumerate((1.0, -3.0 * mu, 3.0 * mu**2, -(mu**3))):
                # a r^-j x r^-2 x [L (1 + r^2)/(1 - r) - c (1 - r)]
                over = _integral_of_power_over_one_minus(j + 2, r) + _integral_of_power_over_one_minus(j, r)
                power = _integral_of_power(j + 2, r) - _integral_of_power(j + 1, r)
                total = total + a * (log_c * over - c * power)
            return total

        born = 2.0 * np.pi**2 * ALPHA_EM**3 / 3.0 * meson.q2_form_factor**2 / s**2
        sigma = ALPHA_EM / np.pi * born * (antiderivative(r_max) - antiderivative(r_min))
        sigma = sigma * GEV2_TO_PB * meson.branching_gg
        return float(sigma) if np.ndim(sigma) == 0 else sigma

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` weighted events.

        Returns
        -------
        particles : array (n, 4, 4)
            Four-momenta in the local CM frame (z along the electron): the photon produced
            with P, the ISR photon, and the two photons of the P decay.
        weight : array (n,)
            Cross-section weight in pb including B(P -> gamma gamma): the mean weight
            estimates :meth:`cross_section` (its mean, for per-event ``sqrt_s``).
        """
        sqrt_s = _per_event(self.sqrt_s, n)
        mass = self.meson.mass

        # ISR photon: r = s'/s from 1/r^2 + 1/r + 1/(1 - r), cos theta* flat in artanh
        r_min, r_max = self._r_range(sqrt_s)
        integrals = self._proposal_integrals(r_min, r_max)
        total = sum(integrals)
        pick = rng.random(n) * total
        u = rng.random(n)
        r = np.where(
            pick < integrals[0],
            1.0 / (1.0 / r_min - u * integrals[0]),
            np.where(
                pick < integrals[0] + integrals[1],
                r_min * np.exp(u * integrals[1]),
                1.0 - (1.0 - r_min) * np.exp(-u * integrals[2]),
            ),
        )
        r = np.clip(r, r_min, r_max)
        cos_theta = np.tanh(rng.uniform(-self._rapidity_max, self._rapidity_max, n))
        omega = (1.0 - r) * sqrt_s / 2.0
        isr = massless_four_vectors(omega, unit_vectors(cos_theta, rng.uniform(-np.pi, np.pi, n)))

        # gamma P in its rest frame (photon ~ 1 + cos^2 to the beam axis), P -> gamma gamma isotropic
        recoil_mass = np.sqrt(r) * sqrt_s
        photon_energy = (recoil_mass**2 - mass**2) / (2.0 * recoil_mass)
        photon_direction = unit_vectors(sample_one_plus_cos2(rng, n), rng.uniform(-np.pi, np.pi, n))
        photon = massless_four_vectors(photon_energy, photon_direction)
        meson_velocity = -photon_direction * (photon_energy / (recoil_mass - photon_energy))[:, None]
        decay_axis = isotropic_directions(rng, n)
        half_mass = np.full(n, mass / 2.0)
        daughters = np.stack(
            [massless_four_vectors(half_mass, decay_axis), massless_four_vectors(half_mass, -decay_axis)], axis=1
        )
        daughters = boost(daughters, meson_velocity[:, None, :])

        system_velocity = -isr[:, 1:] / (sqrt_s - omega)[:, None]
        particles = np.empty((n, 4, 4))
        particles[:, 0] = boost(photon, system_velocity)
        particles[:, 1] = isr
        particles[:, 2:] = boost(daughters, system_velocity[:, None, :])

        one_minus_c2 = 1.0 - cos_theta**2
        proposal = (1.0 / r**2 + 1.0 / r + 1.0 / (1.0 - r)) / total / (one_minus_c2 * 2.0 * self._rapidity_max)
        born = pseudoscalar_gamma_cross_section(mass, self.meson.q2_form_factor, recoil_mass)
        weight = born * self.meson.branching_gg * isr_radiator(1.0 - r, cos_theta) / proposal
        return particles, weight


# ------------------------------------------------------------------ radiative return to V -> P gamma

#: Lowest B(V -> P gamma) of the channels :func:`radiative_return_channels` lists by default.
RADIATIVE_RETURN_MIN_BRANCHING = 1e-4

#: The samples that radiative return feeds, each with its pseudoscalar (a key of
#: :data:`bumphunt.physics.MESONS`).
RADIATIVE_RETURN_SAMPLES = {
    "pi0_gamma_gamma": "pi0_gamma",
    "eta_gamma_gamma": "eta_gamma",
    "etaprime_gamma_gamma": "etaprime_gamma",
}


def isr_radiator_in_cut(x, cos_theta_max, alpha: float = ALPHA_EM):
    """The radiator integrated over the photon angle, |cos theta| < c (massless electrons).

    integral_{-c}^{c} :func:`isr_radiator` dc' = (alpha/pi) [(1 + (1 - x)^2)/x 2 artanh c - x c].
    """
    x = np.asarray(x, dtype=float)
    return alpha / np.pi * ((1.0 + (1.0 - x) ** 2) / x * 2.0 * np.arctanh(cos_theta_max) - x * cos_theta_max)


def isr_radiator_all_angles(x, sqrt_s, alpha: float = ALPHA_EM, electron_mass: float = ELECTRON_MASS):
    """The radiator integrated over all photon angles, with the electron mass.

    W(s, x) = (alpha/pi) (ln(s/m_e^2) - 1) (1 + (1 - x)^2)/x, up to O(m_e^2/s) [Bonneau & Martin,
    NPB 27 (1971) 381; e.g. Benayoun et al., Mod. Phys. Lett. A 14 (1999) 2605; Druzhinin et
    al., Rev. Mod. Phys. 83 (2011) 1545]. The electron mass cuts off the collinear peak
    1/(1 - beta^2 cos^2 theta); its own terms, -2 m^2 Q^2 (1/t^2 + 1/u^2) in the matrix
    element, give the -1.
    """
    x = np.asarray(x, dtype=float)
    log_s = np.log(np.asarray(sqrt_s, dtype=float) ** 2 / electron_mass**2)
    return alpha / np.pi * (log_s - 1.0) * (1.0 + (1.0 - x) ** 2) / x


def radiative_return_cross_section(
    vector: VectorMeson, sqrt_s, cos_theta_max: float | None = None, meson: Meson | None = None, alpha=ALPHA_EM
):
    """sigma(e+e- -> gamma_ISR V) in pb in the narrow-width approximation (module docstring).

    sigma = W 12 pi^2 Gamma_ee / (M s), with W the radiator at x = 1 - M^2/s integrated over
    |cos theta*| < ``cos_theta_max`` of the ISR photon (:func:`isr_radiator_in_cut`, massless
    electrons) or, for ``None``, over all angles (:func:`isr_radiator_all_angles`). The ISR
    photon has the fixed CM energy (s - M^2)/(2 sqrt s), so an energy cut keeps all or none.

    Parameters
    ----------
    vector : bumphunt.physics.VectorMeson
    sqrt_s : float or array
        Centre-of-mass energy (GeV), above the V mass.
    cos_theta_max : float or None
        Cut on |cos theta*| of the ISR photon to the beam axis, in (0, 1); ``None``: all angles.
    meson : bumphunt.physics.Meson or None
        If given, the cross-section is multiplied by B(V -> P gamma) B(P -> gamma gamma).
    """
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    if not np.all(sqrt_s > vector.mass):
        raise ValueError(f"sqrt_s must exceed the {vector.name} mass {vector.mass} GeV")
    s = sqrt_s**2
    x = 1.0 - vector.mass**2 / s
    if cos_theta_max is None:
        radiator = isr_radiator_all_angles(x, sqrt_s, alpha)
    else:
        if not 0.0 < cos_theta_max < 1.0:
            raise ValueError(f"cos_theta_max {cos_theta_max} must lie in (0, 1); None means all angles")
        radiator = isr_radiator_in_cut(x, cos_theta_max, alpha)
    sigma = radiator * vector.annihilation_integral() / s * GEV2_TO_PB
    if meson is not None:
        sigma = sigma * vector.branching_to(meson.name) * meson.branching_gg
    return float(sigma) if np.ndim(sigma) == 0 else sigma


def radiative_return_channels(
    sample: str, min_branching: float = RADIATIVE_RETURN_MIN_BRANCHING
) -> list[tuple[VectorMeson, Meson]]:
    """The channels e+e- -> gamma_ISR V, V -> P gamma that feed a P gamma gamma sample.

    Parameters
    ----------
    sample : str
        ``"pi0_gamma_gamma"``, ``"eta_gamma_gamma"`` or ``"etaprime_gamma_gamma"``
        (:data:`RADIATIVE_RETURN_SAMPLES`).
    min_branching : float
        Channels with B(V -> P gamma) above this are listed (default 1e-4); 0 lists every
        decay of :data:`bumphunt.physics.VECTOR_MESONS`.

    Returns
    -------
    list of (VectorMeson, Meson)
        In the order of :data:`~bumphunt.physics.VECTOR_MESONS` (rho, omega, phi, J/psi,
        psi(2S)); each pair builds a :class:`RadiativeReturnSampler`.
    """
    if sample not in RADIATIVE_RETURN_SAMPLES:
        raise ValueError(f"unknown sample {sample!r}: radiative return feeds {', '.join(RADIATIVE_RETURN_SAMPLES)}")
    meson = MESONS[RADIATIVE_RETURN_SAMPLES[sample]]
    return [(vector, meson) for vector in VECTOR_MESONS.values() if vector.branching_to(meson.name) > min_branching]


def _directions_about(axis: np.ndarray, cos_theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors at polar angle acos(cos_theta) and azimuth phi about unit ``axis`` (n, 3)."""
    helper = np.where(np.abs(axis[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    first = np.cross(helper, axis)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(axis, first)
    sin_theta = np.sqrt(np.clip(1.0 - cos_theta * cos_theta, 0.0, None))
    return (
        (sin_theta * np.cos(phi))[:, None] * first
        + (sin_theta * np.sin(phi))[:, None] * second
        + cos_theta[:, None] * axis
    )


class RadiativeReturnSampler:
    """e+e- -> gamma_ISR V, V -> P gamma, P -> gamma gamma in the narrow-width approximation.

    The ISR photon has the CM energy (s - M_V^2)/(2 sqrt s) and cos theta* drawn from the
    radiator :func:`isr_radiator` within the cut by exact inversion of its CDF, so every event
    has the weight sigma(sqrt_s); V decays with the exact spin correlation of the module
    docstring, P isotropically.

    Parameters
    ----------
    vector : bumphunt.physics.VectorMeson
        V, e.g. ``bumphunt.physics.VECTOR_MESONS["omega"]``.
    meson : bumphunt.physics.Meson
        P, e.g. ``bumphunt.physics.MESONS["pi0_gamma"]``; V must have a listed decay to P gamma.
    sqrt_s : float or array (n,)
        Centre-of-mass energy (GeV), one value or one per event (then :meth:`sample` must be
        asked for exactly n events), each above :meth:`sqrt_s_threshold`.
    cuts : GenerationCuts
        CM energy threshold and |cos theta*| cut of the ISR photon (the V decay photons are not
        cut), e.g. from :func:`~bumphunt.simulation.qed.generation_cuts_for_acceptance`.
    alpha : float
        Fine-structure constant at the ISR vertex.
    """

    def __init__(self, vector: VectorMeson, meson: Meson, sqrt_s, cuts: GenerationCuts, alpha: float = ALPHA_EM):
        self.vector = vector
        self.meson = meson
        self.cuts = cuts
        self.alpha = alpha
        self.sqrt_s = _as_sqrt_s(sqrt_s)
        branching = vector.branching_to(meson.name)
        if not branching > 0.0:
            raise ValueError(f"{vector.name} has no listed decay to {meson.name} gamma")
        if not vector.mass > meson.mass:
            raise ValueError(f"the {vector.name} mass must exceed the {meson.name} mass")
        if not 0.0 < cuts.cos_theta_max < 1.0:
            raise ValueError(f"cos_theta_max {cuts.cos_theta_max} must lie in (0, 1)")
        if not cuts.energy_min >= 0.0:
            raise ValueError(f"energy_min {cuts.energy_min} GeV must not be negative")
        threshold = self.sqrt_s_threshold(vector, cuts)
        if not np.all(np.asarray(self.sqrt_s) > threshold):
            raise ValueError(
                f"sqrt_s {np.min(self.sqrt_s):.4f} GeV is too low for an ISR photon above energy_min "
                f"{cuts.energy_min} GeV recoiling against the {vector.name}: events need sqrt_s > "
                f"{threshold:.4f} GeV (sqrt_s_threshold); those below it have no cross-section in this sample"
            )
        #: B(V -> P gamma) B(P -> gamma gamma)
        self.branching = branching * meson.branching_gg

    @staticmethod
    def sqrt_s_threshold(vector: VectorMeson, cuts: GenerationCuts) -> float:
        """Lowest sqrt(s) (GeV) whose ISR photon passes the energy cut, E_min + sqrt(E_min^2 + M_V^2)."""
        return float(cuts.energy_min + np.hypot(cuts.energy_min, vector.mass))

    def generation_cuts(self) -> dict:
        """The generation cuts, for the sample's metadata."""
        return {"isr_energy_min_cm": self.cuts.energy_min, "isr_cos_theta_max_cm": self.cuts.cos_theta_max}

    def cross_section(self) -> float | np.ndarray:
        """sigma x B(V -> P gamma) B(P -> gamma gamma) in the generation cuts (pb), closed form.

        Per event if ``sqrt_s`` is (:func:`radiative_return_cross_section`).
        """
        return radiative_return_cross_section(self.vector, self.sqrt_s, self.cuts.cos_theta_max, self.meson, self.alpha)

    def cross_section_all_angles(self) -> float | np.ndarray:
        """The same with the ISR photon at any angle (electron-mass radiator), for comparison (pb)."""
        return radiative_return_cross_section(self.vector, self.sqrt_s, None, self.meson, self.alpha)

    def sample_isr_cos_theta(self, rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
        """cos theta* of the ISR photon, density ~ a/(1 - c^2) - b in (-c_max, c_max), per event x.

        a = (1 + (1 - x)^2)/x >= 1 and b = x/2 <= 1/2 (:func:`isr_radiator`); the CDF
        a artanh(c) - b c is inverted by Newton's method in eta = artanh c.
        """
        a = (1.0 + (1.0 - x) ** 2) / x
        b = x / 2.0
        c_max = self.cuts.cos_theta_max
        target = (2.0 * rng.random(len(x)) - 1.0) * (a * np.arctanh(c_max) - b * c_max)
        y = np.abs(target)
        # f(eta) = a eta - b tanh(eta) - y is increasing (f' >= a - b > 0) and convex for eta >= 0;
        # from eta = (y + b)/a, where f >= 0, Newton's steps decrease monotonically to the root.
        eta = (y + b) / a
        for _ in range(60):
            tanh = np.tanh(eta)
            step = (a * eta - b * tanh - y) / (a - b * (1.0 - tanh * tanh))
            eta -= step
            if np.max(np.abs(step), initial=0.0) < 1e-15 * (1.0 + np.max(eta, initial=0.0)):
                break
        return np.clip(np.copysign(np.tanh(eta), target), -c_max, c_max)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` events.

        Returns
        -------
        particles : array (n, 4, 4)
            Four-momenta in the local CM frame (z along the electron): the ISR photon, the
            photon of V -> P gamma, and the two photons of the P decay.
        weight : array (n,)
            Cross-section weight in pb including B(V -> P gamma) B(P -> gamma gamma),
            :meth:`cross_section` of each event's sqrt_s: the mean weight is the sample's
            cross-section.
        """
        sqrt_s = _per_event(self.sqrt_s, n)
        mass = self.vector.mass
        x = 1.0 - mass**2 / sqrt_s**2
        omega = x * sqrt_s / 2.0

        # ISR photon and the V recoiling against it
        cos_theta = self.sample_isr_cos_theta(rng, x)
        isr = massless_four_vectors(omega, unit_vectors(cos_theta, rng.uniform(-np.pi, np.pi, n)))
        vector_velocity = -isr[:, 1:] / (sqrt_s - omega)[:, None]

        # V -> P gamma: 1 + cos^2 about the electron or the positron direction in the V rest frame,
        # chosen with probabilities ~ (1 - y_1)^2 and (1 - y_2)^2, y_1,2 = x (1 -+ cos theta*)/2
        zero = np.zeros(n)
        electron = boost(np.stack([sqrt_s / 2.0, zero, zero, sqrt_s / 2.0], axis=-1), -vector_velocity)
        positron = boost(np.stack([sqrt_s / 2.0, zero, zero, -sqrt_s / 2.0], axis=-1), -vector_velocity)
        w_electron = (1.0 - x * (1.0 - cos_theta) / 2.0) ** 2
        w_positron = (1.0 - x * (1.0 + cos_theta) / 2.0) ** 2
        about_electron = rng.random(n) * (w_electron + w_positron) < w_electron
        axis = np.where(about_electron[:, None], electron[:, 1:], positron[:, 1:])
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        photon_direction = _directions_about(axis, sample_one_plus_cos2(rng, n), rng.uniform(-np.pi, np.pi, n))
        photon_energy = (mass**2 - self.meson.mass**2) / (2.0 * mass)
        photon = massless_four_vectors(np.full(n, photon_energy), photon_direction)
        meson_velocity = -photon_direction * (photon_energy / (mass - photon_energy))

        # P -> gamma gamma isotropic in the P rest frame
        decay_axis = isotropic_directions(rng, n)
        half_mass = np.full(n, self.meson.mass / 2.0)
        daughters = np.stack(
            [massless_four_vectors(half_mass, decay_axis), massless_four_vectors(half_mass, -decay_axis)], axis=1
        )
        daughters = boost(daughters, meson_velocity[:, None, :])

        particles = np.empty((n, 4, 4))
        particles[:, 0] = isr
        particles[:, 1] = boost(photon, vector_velocity)
        particles[:, 2:] = boost(daughters, vector_velocity[:, None, :])
        sigma = radiative_return_cross_section(self.vector, sqrt_s, self.cuts.cos_theta_max, self.meson, self.alpha)
        return particles, np.asarray(sigma, dtype=float)
