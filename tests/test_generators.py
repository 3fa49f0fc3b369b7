import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from bumphunt import physics
from bumphunt.kinematics import Beams, invariant_mass
from bumphunt.simulation.generators import generate_two_photon_resonance, sample_one_plus_cos2

BEAMS = Beams()


def _chi2_pvalue(cos_theta, density, bins=40):
    """Pearson chi2 p-value of binned cos(theta) against ``density(lo, hi)``, the bin integral."""
    counts, edges = np.histogram(cos_theta, bins=bins, range=(-1, 1))
    expected = np.array([density(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])
    expected *= len(cos_theta) / expected.sum()
    return stats.chisquare(counts, expected).pvalue


def _one_plus_cos2_bin(lo, hi):
    """Integral of 1 + c^2 over [lo, hi]."""
    return (hi + hi**3 / 3) - (lo + lo**3 / 3)


def test_production_angle_follows_one_plus_cos2_in_cm_frame():
    rng = np.random.default_rng(11)
    events = generate_two_photon_resonance(rng, 200_000, 1.0, BEAMS)
    # measure theta* from the lab four-vectors: boost back and take the angle to the electron
    recoil_cm = BEAMS.lab_to_local_cm(events.recoil)
    cos_theta = recoil_cm[:, 3] / recoil_cm[:, 0]
    assert_allclose(cos_theta, events.cos_theta_cm, atol=1e-9)
    assert _chi2_pvalue(cos_theta, _one_plus_cos2_bin) > 0.01
    # the test has power: a flat distribution is rejected
    assert _chi2_pvalue(cos_theta, lambda lo, hi: hi - lo) < 1e-10


def test_one_plus_cos2_sampler_matches_cdf():
    cos_theta = sample_one_plus_cos2(np.random.default_rng(3), 100_000)
    cdf = lambda c: (c + c**3 / 3 + 4 / 3) / (8 / 3)  # noqa: E731
    assert stats.kstest(cos_theta, cdf).pvalue > 0.01


@pytest.mark.parametrize("mass", [0.2, 0.547862, 3.0, 9.7, 10.4])
def test_true_diphoton_mass_energy_and_momentum_conservation(mass):
    rng = np.random.default_rng(5)
    events = generate_two_photon_resonance(rng, 5000, mass, BEAMS)
    assert_allclose(invariant_mass(events.daughters.sum(axis=1)), mass, rtol=1e-9)
    total = events.recoil + events.daughters.sum(axis=1)
    assert_allclose(total, np.broadcast_to(BEAMS.four_momentum, total.shape), atol=1e-9)
    assert_allclose(invariant_mass(events.recoil), 0.0, atol=1e-6)
    recoil_cm = BEAMS.lab_to_local_cm(events.recoil)
    assert_allclose(recoil_cm[:, 0], physics.recoil_photon_energy(mass, BEAMS.sqrt_s), rtol=1e-9)


def test_daughters_isotropic_in_rest_frame():
    rng = np.random.default_rng(8)
    events = generate_two_photon_resonance(rng, 100_000, 2.0, BEAMS)
    parent = events.daughters.sum(axis=1)
    from bumphunt.kinematics import boost

    rest = boost(events.daughters[:, 0], -parent[:, 1:] / parent[:, :1])
    cos_rest = rest[:, 3] / rest[:, 0]
    assert stats.kstest(cos_rest, stats.uniform(-1, 2).cdf).pvalue > 0.01


def test_decay_length_is_exponential_with_lab_boost():
    mass, coupling = 0.5, 2e-5
    ctau = physics.alp_ctau(mass, coupling)
    rng = np.random.default_rng(21)
    events = generate_two_photon_resonance(rng, 50_000, mass, BEAMS, ctau=ctau)
    parent = events.daughters.sum(axis=1)
    gamma_beta = np.linalg.norm(parent[:, 1:], axis=1) / mass
    flight = np.linalg.norm(events.decay_vertex, axis=1)
    # the vertex lies along the parent momentum
    assert_allclose(np.sum(events.decay_vertex * parent[:, 1:], axis=1), flight * np.linalg.norm(parent[:, 1:], axis=1))
    assert stats.kstest(flight / (gamma_beta * ctau), stats.expon.cdf).pvalue > 0.01


def test_alp_physics_formulas():
    # sigma(e+e- -> gamma a) = alpha g^2 / 24 (1 - m^2/s)^3 in GeV^-2 -> pb
    s = BEAMS.s
    sigma = physics.alp_cross_section(1.0, 1e-3, BEAMS.sqrt_s)
    assert sigma == pytest.approx((1 / 137.035999084) * 1e-6 / 24 * (1 - 1 / s) ** 3 * 0.3893793721e9, rel=1e-12)
    # c tau = hbar c / Gamma with Gamma = g^2 m^3 / (64 pi)
    assert physics.alp_ctau(1.0, 1e-3) == pytest.approx(1.973269804e-14 / (1e-6 / (64 * np.pi)), rel=1e-12)
    # BaBar measured sigma(e+e- -> eta gamma) = 4.5 +- 1.2 fb at 10.58 GeV: our form factor reproduces it
    eta = physics.MESONS["eta_gamma"]
    assert eta.cross_section(10.58) / eta.branching_gg == pytest.approx(4.5e-3, rel=0.1)
    etaprime = physics.MESONS["etaprime_gamma"]
    assert etaprime.cross_section(10.58) / etaprime.branching_gg == pytest.approx(5.4e-3, rel=0.1)
