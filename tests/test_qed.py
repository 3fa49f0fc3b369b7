"""e+e- -> gamma gamma gamma: matrix element, sampler, generation cuts and cross-section.

Independent references: a flat-phase-space (RAMBO) integration of the cross-section, the
soft-photon (eikonal) limit times the analytic e+e- -> gamma gamma cross-section, and an
explicit Feynman-diagram evaluation of the matrix element (tests/qed_reference.py).
"""

import math

import numpy as np
import pytest

from bumphunt.constants import ALPHA_EM, GEV2_TO_PB
from bumphunt.kinematics import Beams, massless_four_vectors, unit_vectors
from bumphunt.simulation.qed import GenerationCuts, ThreePhotonSampler, generation_cuts_for_acceptance, me2_eeggg

BEAMS = Beams()
CUTS = generation_cuts_for_acceptance(BEAMS, 0.1, np.radians(17.0), np.radians(150.0))


def rambo_massless(rng, n, sqrt_s, n_particles=3):
    """Flat massless phase space (Kleiss, Stirling, Ellis 1986): momenta and the constant weight."""
    cos_theta = rng.uniform(-1, 1, (n, n_particles))
    phi = rng.uniform(0, 2 * np.pi, (n, n_particles))
    energy = -np.log(rng.random((n, n_particles)) * rng.random((n, n_particles)))
    sin_theta = np.sqrt(1 - cos_theta**2)
    q = np.stack([energy, energy * sin_theta * np.cos(phi), energy * sin_theta * np.sin(phi), energy * cos_theta], -1)
    total = q.sum(axis=1)
    mass = np.sqrt(total[:, 0] ** 2 - np.sum(total[:, 1:] ** 2, axis=1))
    b = -total[:, 1:] / mass[:, None]
    x = sqrt_s / mass
    gamma = total[:, 0] / mass
    a = 1 / (1 + gamma)
    bq = np.einsum("ni,nki->nk", b, q[..., 1:])
    p = np.empty_like(q)
    p[..., 0] = x[:, None] * (gamma[:, None] * q[..., 0] + bq)
    p[..., 1:] = x[:, None, None] * (q[..., 1:] + b[:, None, :] * (q[..., :1] + a[:, None, None] * bq[..., None]))
    k = n_particles
    volume = (np.pi / 2) ** (k - 1) * sqrt_s ** (2 * k - 4) / (math.factorial(k - 1) * math.factorial(k - 2))
    return p, volume / (2 * np.pi) ** (3 * k - 4)


@pytest.mark.slow
def test_cross_section_agrees_with_flat_phase_space_integration():
    rng = np.random.default_rng(2024)
    sampler = ThreePhotonSampler(BEAMS.sqrt_s, CUTS)
    p_minus, p_plus = sampler.p_minus, sampler.p_plus
    importance = np.concatenate([sampler.sample(rng, 500_000)[1] for _ in range(4)])
    flat = []
    for _ in range(12):
        photons, volume = rambo_massless(rng, 1_000_000, BEAMS.sqrt_s)
        energy = photons[..., 0]
        inside = np.all((energy >= CUTS.energy_min) & (np.abs(photons[..., 3] / energy) <= CUTS.cos_theta_max), -1)
        weight = np.zeros(len(photons))
        weight[inside] = me2_eeggg(p_minus, p_plus, photons[inside]) / (6 * 2 * BEAMS.s) * volume * GEV2_TO_PB
        flat.append(weight)
    flat = np.concatenate(flat)
    sigma_is, error_is = importance.mean(), importance.std() / np.sqrt(len(importance))
    sigma_flat, error_flat = flat.mean(), flat.std() / np.sqrt(len(flat))
    assert error_flat < 0.005 * sigma_flat and error_is < 0.002 * sigma_is
    assert sigma_is == pytest.approx(sigma_flat, rel=0.02)
    assert abs(sigma_is - sigma_flat) < 4 * np.hypot(error_is, error_flat)


@pytest.mark.slow
def test_soft_photon_limit_matches_eikonal_times_two_photon_cross_section():
    """sigma(ggg, softest photon in [w1, w2]) -> sigma(gg) (2 alpha / pi) ln(w2/w1) ln((1+c)/(1-c)).

    Checks the absolute normalisation (matrix element, phase space, 1/3!, pb) independently;
    corrections are O(w2 / sqrt(s)) ~ 2e-5.
    """
    cos_max, w1, w2 = 0.9, 1e-4, 2e-4
    sampler = ThreePhotonSampler(BEAMS.sqrt_s, GenerationCuts(w1, cos_max))
    rng = np.random.default_rng(7)
    weights = []
    for _ in range(4):
        photons, weight = sampler.sample(rng, 1_000_000)
        softest = photons[..., 0].min(axis=1)
        weights.append(np.where(softest < w2, weight, 0.0))
    weights = np.concatenate(weights)
    log_c = np.log((1 + cos_max) / (1 - cos_max))
    # e+e- -> gamma gamma, massless, |cos| < c, identical photons: (pi alpha^2 / s)(2 log_c - 2 c)
    sigma_gg = np.pi * ALPHA_EM**2 / BEAMS.s * (2 * log_c - 2 * cos_max) * GEV2_TO_PB
    expected = sigma_gg * 2 * ALPHA_EM / np.pi * np.log(w2 / w1) * log_c
    error = weights.std() / np.sqrt(len(weights))
    assert error < 0.005 * expected
    assert weights.mean() == pytest.approx(expected, rel=4 * error / expected)


def test_generation_cuts_contain_the_detector_acceptance():
    rng = np.random.default_rng(3)
    n = 400_000
    # lab photons anywhere in the acceptance, energies from the threshold up
    cos_theta = rng.uniform(np.cos(np.radians(150.0)), np.cos(np.radians(17.0)), n)
    energy = 0.1 * (1 + rng.exponential(0.5, n))
    lab = massless_four_vectors(energy, unit_vectors(cos_theta, rng.uniform(-np.pi, np.pi, n)))
    cm = BEAMS.lab_to_local_cm(lab)
    assert np.all(cm[:, 0] >= CUTS.energy_min)
    assert np.all(np.abs(cm[:, 3] / cm[:, 0]) <= CUTS.cos_theta_max)
    # and they are tight: the extremes come within 1% of the cuts
    assert np.max(np.abs(cm[:, 3] / cm[:, 0])) > CUTS.cos_theta_max - 0.01
    assert CUTS.energy_min == pytest.approx(0.0753, abs=0.0005)


def test_sampled_events_conserve_momentum_and_respect_cuts():
    sampler = ThreePhotonSampler(BEAMS.sqrt_s, CUTS)
    photons, weight = sampler.sample(np.random.default_rng(5), 100_000)
    total = photons.sum(axis=1)
    np.testing.assert_allclose(total, np.broadcast_to([BEAMS.sqrt_s, 0, 0, 0], total.shape), atol=1e-9)
    np.testing.assert_allclose(photons[..., 0], np.linalg.norm(photons[..., 1:], axis=-1), rtol=1e-12)
    energy = photons[..., 0]
    inside = np.all((energy >= CUTS.energy_min) & (np.abs(photons[..., 3] / energy) <= CUTS.cos_theta_max), -1)
    assert np.all(weight[inside] > 0) and np.all(weight[~inside] == 0)
    # the importance sampler tames the soft and collinear peaks: bounded weights
    assert weight.max() < 5 * weight.mean()


def test_matrix_element_is_symmetric_in_the_photons():
    sampler = ThreePhotonSampler(BEAMS.sqrt_s, CUTS)
    photons, _ = sampler.sample(np.random.default_rng(9), 1000)
    reference = me2_eeggg(sampler.p_minus, sampler.p_plus, photons)
    for permutation in ([1, 0, 2], [2, 1, 0], [1, 2, 0]):
        np.testing.assert_allclose(
            me2_eeggg(sampler.p_minus, sampler.p_plus, photons[:, permutation]), reference, rtol=1e-12
        )


def test_sampler_rejects_impossible_cuts():
    with pytest.raises(ValueError, match="energy_min"):
        ThreePhotonSampler(10.0, GenerationCuts(6.0, 0.9))
    with pytest.raises(ValueError, match="cos_theta_max"):
        ThreePhotonSampler(10.0, GenerationCuts(0.1, 1.0))


def test_matrix_element_equals_feynman_diagram_evaluation():
    """The closed form equals the six diagrams evaluated with Dirac matrices (spin sum / 4)."""
    from .qed_reference import spin_summed_me2_eeggg

    sampler = ThreePhotonSampler(BEAMS.sqrt_s, GenerationCuts(1e-3, 0.999))
    photons, _ = sampler.sample(np.random.default_rng(12), 400)  # includes soft and collinear photons
    p_minus = np.broadcast_to(sampler.p_minus, (400, 4))
    p_plus = np.broadcast_to(sampler.p_plus, (400, 4))
    reference = spin_summed_me2_eeggg(p_minus, p_plus, photons[:, 0], photons[:, 1], photons[:, 2]) / 4
    np.testing.assert_allclose(me2_eeggg(sampler.p_minus, sampler.p_plus, photons), reference, rtol=1e-9)
