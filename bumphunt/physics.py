"""Cross-sections, widths and decay lengths of e+e- -> gamma P, P -> gamma gamma.

The ALP couples through L = -(g/4) a F Ftilde [Dolan et al., JHEP 12 (2017) 094]:

* sigma(e+e- -> gamma a) = alpha g^2 / 24 (1 - m^2/s)^3,
* Gamma(a -> gamma gamma) = g^2 m^3 / (64 pi),

with alpha = alpha(0) (:data:`bumphunt.constants.ALPHA_EM`). The same vertex with a form
factor describes e+e- -> gamma P for the pseudoscalar mesons P = pi0, eta, eta'
[BaBar, PRD 74 (2006) 012002]:

* sigma(e+e- -> gamma P) = (2 pi^2 alpha^3 / 3) (1 - m^2/s)^3 |F(s)|^2,

which is the ALP formula with g^2 = 16 pi^2 alpha^2 |F|^2. Units: GeV, cm, pb.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import (
    ALPHA_EM,
    ETA_MASS,
    ETA_TO_GG,
    ETAPRIME_MASS,
    ETAPRIME_TO_GG,
    GEV2_TO_PB,
    HBAR_C_GEV_CM,
    PI0_MASS,
    PI0_TO_GG,
)


def alp_cross_section(mass, coupling, sqrt_s):
    """sigma(e+e- -> gamma a) in pb for ALP mass (GeV) and coupling g_agg (GeV^-1)."""
    mass = np.asarray(mass, dtype=float)
    threshold = np.clip(1.0 - mass**2 / sqrt_s**2, 0.0, None)
    return ALPHA_EM * np.asarray(coupling) ** 2 / 24.0 * threshold**3 * GEV2_TO_PB


def alp_width(mass, coupling):
    """Gamma(a -> gamma gamma) in GeV."""
    return np.asarray(coupling) ** 2 * np.asarray(mass, dtype=float) ** 3 / (64.0 * np.pi)


def alp_ctau(mass, coupling):
    """Proper decay length c*tau of the ALP in cm."""
    return HBAR_C_GEV_CM / alp_width(mass, coupling)


def recoil_photon_energy(mass, sqrt_s):
    """CM energy of the photon recoiling against a particle of ``mass``: (s - m^2) / (2 sqrt s)."""
    return (sqrt_s**2 - np.asarray(mass, dtype=float) ** 2) / (2.0 * sqrt_s)


def alp_mean_decay_length(mass, coupling, sqrt_s):
    """Mean CM-frame decay length (p_a / m) c*tau in cm, p_a = (s - m^2) / (2 sqrt s)."""
    return recoil_photon_energy(mass, sqrt_s) / np.asarray(mass, dtype=float) * alp_ctau(mass, coupling)


def pseudoscalar_gamma_cross_section(mass, q2_form_factor, sqrt_s):
    """sigma(e+e- -> gamma P) in pb from the transition form factor.

    Parameters
    ----------
    mass : float
        Meson mass (GeV).
    q2_form_factor : float
        |q^2 F(q^2)| at q^2 = s (GeV).
    sqrt_s : float
        Centre-of-mass energy (GeV).
    """
    s = sqrt_s**2
    form_factor_sq = (q2_form_factor / s) ** 2
    return 2.0 * np.pi**2 * ALPHA_EM**3 / 3.0 * (1.0 - mass**2 / s) ** 3 * form_factor_sq * GEV2_TO_PB


@dataclass(frozen=True)
class Meson:
    """A pseudoscalar meson produced in e+e- -> gamma P and decaying to two photons."""

    name: str
    mass: float
    branching_gg: float
    q2_form_factor: float
    form_factor_source: str

    def cross_section(self, sqrt_s: float) -> float:
        """sigma(e+e- -> gamma P) * B(P -> gamma gamma) in pb."""
        return float(pseudoscalar_gamma_cross_section(self.mass, self.q2_form_factor, sqrt_s)) * self.branching_gg


#: Peaking backgrounds. The time-like form factors at q^2 = 112 GeV^2: eta and eta' as
#: measured by BaBar at sqrt(s) = 10.58 GeV (PRD 74 (2006) 012002: q^2|F| = 0.229 and
#: 0.251 GeV, giving sigma = 4.5 and 5.4 fb); pi0 from the Brodsky-Lepage asymptotic
#: limit q^2 F -> 2 f_pi = 0.185 GeV (f_pi = 92.3 MeV), which the space-like BaBar/Belle
#: data at Q^2 ~ 10-40 GeV^2 approach.
MESONS = {
    "pi0_gamma": Meson("pi0", PI0_MASS, PI0_TO_GG, 0.185, "Brodsky-Lepage limit 2 f_pi"),
    "eta_gamma": Meson("eta", ETA_MASS, ETA_TO_GG, 0.229, "BaBar PRD 74 (2006) 012002"),
    "etaprime_gamma": Meson("eta'", ETAPRIME_MASS, ETAPRIME_TO_GG, 0.251, "BaBar PRD 74 (2006) 012002"),
}


@dataclass(frozen=True)
class VectorMeson:
    """A vector meson V (J^PC = 1--) formed in e+e- annihilation and decaying to P gamma.

    Attributes
    ----------
    name : str
    mass, width : float
        Mass and total width (GeV).
    branching_ee : float
        B(V -> e+e-); the partial width is :attr:`ee_width`.
    radiative_decays : tuple of (str, float)
        B(V -> P gamma) by the name of P (a :attr:`Meson.name`: ``"pi0"``, ``"eta"``, ``"eta'"``).
    source : str
        Where the numbers come from.
    """

    name: str
    mass: float
    width: float
    branching_ee: float
    radiative_decays: tuple[tuple[str, float], ...]
    source: str

    @property
    def ee_width(self) -> float:
        """Gamma(V -> e+e-) = B(V -> e+e-) Gamma (GeV)."""
        return self.branching_ee * self.width

    def branching_to(self, meson: str) -> float:
        """B(V -> P gamma) for the P named ``meson`` (a :attr:`Meson.name`); 0 if not listed."""
        return dict(self.radiative_decays).get(meson, 0.0)

    def annihilation_integral(self) -> float:
        """Integral of sigma(e+e- -> V) over s' across the resonance, 12 pi^2 Gamma_ee / M (narrow width).

        The Breit-Wigner sigma(s') = 12 pi Gamma_ee Gamma / ((s' - M^2)^2 + M^2 Gamma^2) (peak
        12 pi B_ee / M^2) integrates to this; it is dimensionless (GeV^-2 x GeV^2).
        """
        return 12.0 * np.pi**2 * self.ee_width / self.mass


#: Vector mesons reached by radiative return, e+e- -> gamma_ISR V, that decay to P gamma
#: (P = pi0, eta, eta'). Masses, total widths, B(V -> e+e-) and B(V -> P gamma) from the
#: summary tables of the Review of Particle Physics 2024 [PDG, S. Navas et al., Phys. Rev. D
#: 110 (2024) 030001]; Gamma_ee = B(e+e-) Gamma (omega: 0.641 keV; the PDG also quotes a
#: partial width 0.60 keV, 6 % lower). Radiative modes are listed down to B = 1e-5.
VECTOR_MESONS = {
    "rho": VectorMeson("rho0", 0.77526, 0.1491, 4.72e-5, (("pi0", 4.7e-4), ("eta", 3.00e-4)), "PDG 2024"),
    "omega": VectorMeson("omega", 0.78266, 8.68e-3, 7.38e-5, (("pi0", 8.34e-2), ("eta", 4.5e-4)), "PDG 2024"),
    "phi": VectorMeson(
        "phi", 1.019461, 4.249e-3, 2.979e-4, (("eta", 1.303e-2), ("pi0", 1.32e-3), ("eta'", 6.22e-5)), "PDG 2024"
    ),
    "jpsi": VectorMeson(
        "J/psi", 3.096900, 92.6e-6, 5.971e-2, (("eta'", 5.25e-3), ("eta", 1.108e-3), ("pi0", 3.56e-5)), "PDG 2024"
    ),
    "psi2s": VectorMeson("psi(2S)", 3.686097, 293e-6, 7.94e-3, (("eta'", 1.23e-4),), "PDG 2024"),
}
