"""Radiative Bhabha e+e- -> e+e- gamma: matrix element, cuts, sampler and cross-section.

Independent references: the textbook Born Bhabha cross-section, the eight Feynman diagrams
evaluated with Dirac matrices (tests/qed_reference.py provides the gamma matrices and
spinors), the eikonal factor of massive legs, a flat-phase-space (RAMBO) integration, and
the analytic soft-photon integrals (large-angle and collinear, with the electron mass).
"""

import dataclasses

import numpy as np
import pytest
from scipy import integrate

from bumphunt.constants import ALPHA_EM, ELECTRON_MASS, GEV2_TO_PB
from bumphunt.kinematics import Beams, massless_four_vectors, minkowski_dot, unit_vectors
from bumphunt.simulation.bhabha import (
    ECL_THETA_MAX_DEG,
    ECL_THETA_MIN_DEG,
    RadiativeBhabhaCuts,
    RadiativeBhabhaSampler,
    bhabha_cross_section,
    me2_bhabha,
    me2_eeg,
    radiative_bhabha_cuts_for_acceptance,
)

from .qed_reference import GAMMA, massless_u_spinors, massless_v_spinors, slash, transverse_polarisations
from .test_qed import rambo_massless

BEAMS = Beams()
CUTS = radiative_bhabha_cuts_for_acceptance(BEAMS, 0.1, np.radians(17.0), np.radians(150.0))


def textbook_dsigma_domega(cos_theta, s):
    """alpha^2/(2s) [(1 + c^4)/s^4 - 2 c^4/s^2 + (1 + cos^2)/2], c = cos(theta/2), s = sin(theta/2), in pb."""
    cos2_half, sin2_half = (1 + cos_theta) / 2, (1 - cos_theta) / 2
    bracket = (1 + cos2_half**2) / sin2_half**2 - 2 * cos2_half**2 / sin2_half + (1 + cos_theta**2) / 2
    return ALPHA_EM**2 / (2 * s) * bracket * GEV2_TO_PB


def textbook_cross_section(cos_min, cos_max, s=BEAMS.s):
    return 2 * np.pi * integrate.quad(textbook_dsigma_domega, cos_min, cos_max, args=(s,), epsrel=1e-12)[0]


def test_born_cross_section_matches_the_textbook_formula():
    """The Born matrix element, integrated numerically and in closed form, gives the textbook cross-section
    to 1e-9."""
    s = BEAMS.s
    for cos_min, cos_max in [(-0.9733, 0.9733), (-0.5, 0.3), (0.8, 0.99)]:
        reference = textbook_cross_section(cos_min, cos_max)

        def dsigma_dcos(c):
            t = -s * (1 - c) / 2
            return 2 * np.pi * me2_bhabha(s, t) / (64 * np.pi**2 * s) * GEV2_TO_PB

        numerical = integrate.quad(dsigma_dcos, cos_min, cos_max, epsrel=1e-12)[0]
        assert numerical == pytest.approx(reference, rel=1e-9)
        assert bhabha_cross_section(BEAMS.sqrt_s, cos_min, cos_max) == pytest.approx(reference, rel=1e-9)
    # 157.5 nb with both leptons where they hit the calorimeter
    assert bhabha_cross_section(BEAMS.sqrt_s, -CUTS.lepton_cos_theta_max, CUTS.lepton_cos_theta_max) == pytest.approx(
        157_500, rel=1e-3
    )


def _propagator(q):
    return slash(q) / minkowski_dot(q, q)[:, None, None]


def feynman_diagram_me2(p1, p2, p3, p4, k, alpha=ALPHA_EM):
    """<|M|^2> of e-(p1) e+(p2) -> e-(p3) e+(p4) gamma(k) from the eight diagrams (massless, explicit spinors).

    Annihilation (s channel) with the photon on an incoming leg (propagator 1/(p3+p4)^2) or
    an outgoing leg (1/(p1+p2)^2), minus scattering (t channel) with the photon on the
    electron line (1/(p2-p4)^2) or the positron line (1/(p1-p3)^2); vertex factors and the
    photon propagator give a common phase. Sum over 2^4 spins and 2 polarisations, / 4.
    """
    n = len(p1)
    g0 = GAMMA[0]
    u1, u3 = massless_u_spinors(p1), massless_u_spinors(p3)
    v2, v4 = massless_v_spinors(p2), massless_v_spinors(p4)
    vbar2 = np.einsum("nsi,ij->nsj", np.conj(v2), g0)
    ubar3 = np.einsum("nsi,ij->nsj", np.conj(u3), g0)
    metric = np.array([1.0, -1.0, -1.0, -1.0])
    bare = np.broadcast_to(GAMMA, (n, 4, 4, 4))

    def current(bar, vertex, spinor):  # (n, spin of bar, spin of spinor, mu)
        return np.einsum("nai,nmij,nbj->nabm", bar, vertex, spinor)

    def emission_then_vertex(eps_slash, q):  # eps S(q) gamma^mu
        return np.einsum("nij,njk,mkl->nmil", eps_slash, _propagator(q), GAMMA)

    def vertex_then_emission(eps_slash, q):  # gamma^mu S(q) eps
        return np.einsum("mij,njk,nkl->nmil", GAMMA, _propagator(q), eps_slash)

    s, s_prime = minkowski_dot(p1 + p2, p1 + p2), minkowski_dot(p3 + p4, p3 + p4)
    t_electron_line, t_positron_line = minkowski_dot(p2 - p4, p2 - p4), minkowski_dot(p1 - p3, p1 - p3)
    total = np.zeros(n)
    for eps in np.moveaxis(transverse_polarisations(k), 1, 0):
        eps_slash = slash(eps)
        initial = vertex_then_emission(eps_slash, p1 - k) + emission_then_vertex(eps_slash, k - p2)
        final = emission_then_vertex(eps_slash, p3 + k) + vertex_then_emission(eps_slash, -p4 - k)
        electron_line = emission_then_vertex(eps_slash, p3 + k) + vertex_then_emission(eps_slash, p1 - k)
        positron_line = emission_then_vertex(eps_slash, k - p2) + vertex_then_emission(eps_slash, -p4 - k)
        # amplitudes indexed [n, s1, s2, s3, s4]
        annihilation = (
            np.einsum("nbam,ncdm,m->nabcd", current(vbar2, bare, u1), current(ubar3, final, v4), metric)
            / s[:, None, None, None, None]
            + np.einsum("nbam,ncdm,m->nabcd", current(vbar2, initial, u1), current(ubar3, bare, v4), metric)
            / s_prime[:, None, None, None, None]
        )
        scattering = (
            np.einsum("ncam,nbdm,m->nabcd", current(ubar3, electron_line, u1), current(vbar2, bare, v4), metric)
            / t_electron_line[:, None, None, None, None]
            + np.einsum("ncam,nbdm,m->nabcd", current(ubar3, bare, u1), current(vbar2, positron_line, v4), metric)
            / t_positron_line[:, None, None, None, None]
        )
        total += np.sum(np.abs(annihilation - scattering) ** 2, axis=(1, 2, 3, 4))
    return (4 * np.pi * alpha) ** 3 * total / 4


def test_massless_matrix_element_equals_feynman_diagram_evaluation():
    """The compact CALKUL form equals the eight diagrams, at random and at sampled (peaked) points."""
    rng = np.random.default_rng(11)
    flat, _ = rambo_massless(rng, 300, BEAMS.sqrt_s)
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, dataclasses.replace(CUTS, photon_lepton_angle_min=1e-3))
    peaked, weight = sampler.sample(rng, 600)
    particles = np.concatenate([flat, peaked[weight > 0][:300]])
    n = len(particles)
    p_minus, p_plus = np.broadcast_to(sampler.p_minus, (n, 4)), np.broadcast_to(sampler.p_plus, (n, 4))
    reference = feynman_diagram_me2(p_minus, p_plus, particles[:, 0], particles[:, 1], particles[:, 2])
    compact = me2_eeg(sampler.p_minus, sampler.p_plus, particles, electron_mass=0.0)
    np.testing.assert_allclose(compact[:300], reference[:300], rtol=1e-9)
    # near the soft and collinear peaks the diagrams cancel against each other and lose digits
    np.testing.assert_allclose(compact, reference, rtol=1e-7)


def massive_eikonal(p_minus, p_plus, particles, mass=ELECTRON_MASS):
    """-J^2 = -sum_ij eta_i eta_j p_i.p_j / ((p_i.k)(p_j.k)) with massive legs of the same energies and directions."""

    def massive(p):
        p = np.array(np.broadcast_to(p, particles[:, 0].shape), dtype=float)
        p[:, 1:] *= (np.sqrt(p[:, 0] ** 2 - mass**2) / p[:, 0])[:, None]
        return p

    k = particles[:, 2]
    legs = [(massive(p_minus), 1), (massive(p_plus), -1), (massive(particles[:, 0]), -1), (massive(particles[:, 1]), 1)]
    current_squared = 0.0
    for p_i, eta_i in legs:
        for p_j, eta_j in legs:
            current_squared = current_squared + eta_i * eta_j * minkowski_dot(p_i, p_j) / (
                minkowski_dot(p_i, k) * minkowski_dot(p_j, k)
            )
    return -current_squared


def test_soft_photon_factorises_into_eikonal_times_born_with_the_electron_mass():
    """<|M|^2> -> e^2 (-J^2) <|M_0|^2>(s, t) for soft photons at any angle, inside the leptons' dead cones too."""
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, RadiativeBhabhaCuts(1e-8, 0.95, 0.07, 0.9))
    particles, weight = sampler.sample(np.random.default_rng(4), 20_000)
    particles = particles[(weight > 0) & (particles[:, 2, 0] < 1e-6)]
    k = particles[:, 2]
    x = np.minimum(
        *[1 - np.sum(particles[:, j, 1:] * k[:, 1:], axis=1) / (particles[:, j, 0] * k[:, 0]) for j in (0, 1)]
    )
    assert np.sum(x < (ELECTRON_MASS / 5.0) ** 2) > 20  # photons within theta ~ m/E of a lepton
    t = -2 * minkowski_dot(sampler.p_plus, particles[:, 1])
    reference = (
        4 * np.pi * ALPHA_EM * massive_eikonal(sampler.p_minus, sampler.p_plus, particles) * me2_bhabha(sampler.s, t)
    )
    np.testing.assert_allclose(me2_eeg(sampler.p_minus, sampler.p_plus, particles), reference, rtol=2e-5)


def test_matrix_element_is_charge_conjugation_symmetric():
    """Exchanging e- and e+ in the initial and the final state leaves <|M|^2> unchanged."""
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, CUTS)
    particles, weight = sampler.sample(np.random.default_rng(9), 2000)
    particles = particles[weight > 0]
    swapped = particles[:, [1, 0, 2]]
    np.testing.assert_allclose(
        me2_eeg(sampler.p_plus, sampler.p_minus, swapped),
        me2_eeg(sampler.p_minus, sampler.p_plus, particles),
        rtol=1e-9,
    )


@pytest.mark.slow
def test_cross_section_agrees_with_flat_phase_space_integration():
    """Importance sampler vs RAMBO with the same matrix element and cuts (every channel's peak inside them,
    collinear photons cut at 0.2 rad so that flat phase space converges to 0.6 %)."""
    cuts = RadiativeBhabhaCuts(0.2, 0.9, 0.2, 0.8, photon_lepton_angle_min=0.2, lepton_pair_angle_min=0.05)
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, cuts)
    rng = np.random.default_rng(2024)
    importance = np.concatenate([sampler.sample(rng, 500_000)[1] for _ in range(2)])
    flat = []
    for _ in range(8):
        particles, volume = rambo_massless(rng, 1_000_000, BEAMS.sqrt_s)
        inside = sampler.inside(particles)
        weight = np.zeros(len(particles))
        weight[inside] = me2_eeg(sampler.p_minus, sampler.p_plus, particles[inside]) / (2 * BEAMS.s) * volume
        flat.append(weight * GEV2_TO_PB)
    flat = np.concatenate(flat)
    sigma_is, error_is = importance.mean(), importance.std() / np.sqrt(len(importance))
    sigma_flat, error_flat = flat.mean(), flat.std() / np.sqrt(len(flat))
    assert error_flat < 0.008 * sigma_flat and error_is < 0.002 * sigma_is
    assert abs(sigma_is - sigma_flat) < 4 * np.hypot(error_is, error_flat)


@pytest.mark.slow
def test_soft_photon_limit_matches_eikonal_integrals_times_born_cross_section():
    """Soft photons, omega in [w1, w2]: omega dsigma/domega is flat and equals the Born cross-section times

    * outside cones of half-angle delta around the four legs (massless dipoles):
      (alpha/pi) ln(w2/w1) <4 [ln(4/delta^2) + ln((1 - cos theta)/(1 + cos theta))]>_Born,
    * inside the cone around a final lepton of energy E = sqrt(s)/2, with the electron mass:
      (alpha/pi) ln(w2/w1) [(1/beta) ln((1 - beta cos delta)/(1 - beta)) - (1 + beta)/(2 beta)
      (1 - (1 - beta)/(1 - beta cos delta))] ~ (alpha/pi) ln(w2/w1) [ln(delta^2 E^2/m^2) - 1].

    Checks the absolute normalisation and the mass regulator; corrections are O(delta^2) and
    O(w2/sqrt(s)) ~ 2e-5.
    """
    w1, w2, delta, cos_lepton = 1e-4, 2e-4, 0.02, 0.8
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, RadiativeBhabhaCuts(w1, np.cos(delta), 0.07, cos_lepton))
    rng = np.random.default_rng(7)
    x_delta = 1 - np.cos(delta)
    outside, cones = [], []
    for _ in range(4):
        particles, weight = sampler.sample(rng, 1_000_000)
        direction = particles[..., 1:] / particles[..., :1]
        x = [1 - np.sum(direction[:, j] * direction[:, 2], axis=1) for j in (0, 1)]
        soft = weight * (particles[:, 2, 0] < w2)
        outside.append(np.where((x[0] > x_delta) & (x[1] > x_delta), soft, 0.0))
        cones.append(np.where(x[0] <= x_delta, soft, 0.0))
        cones.append(np.where(x[1] <= x_delta, soft, 0.0))
    outside, cones = np.concatenate(outside), np.concatenate(cones)  # cones: electron and positron, pooled

    log_ratio = ALPHA_EM / np.pi * np.log(w2 / w1)
    s = BEAMS.s

    def dipoles(c):
        return 2 * np.pi * textbook_dsigma_domega(c, s) * 4 * (np.log(4 / delta**2) + np.log((1 - c) / (1 + c)))

    expected_outside = log_ratio * integrate.quad(dipoles, -cos_lepton, cos_lepton, epsrel=1e-10)[0]
    beta = np.sqrt(1 - (ELECTRON_MASS / (BEAMS.sqrt_s / 2)) ** 2)
    cone_integral = np.log((1 - beta * np.cos(delta)) / (1 - beta)) / beta - (1 + beta) / (2 * beta) * (
        1 - (1 - beta) / (1 - beta * np.cos(delta))
    )
    expected_cone = log_ratio * textbook_cross_section(-cos_lepton, cos_lepton) * cone_integral

    for measured, expected in [(outside, expected_outside), (cones, expected_cone)]:
        error = measured.std() / np.sqrt(len(measured))
        assert error < 0.006 * expected
        assert measured.mean() == pytest.approx(expected, abs=4 * error)


def test_sampled_events_conserve_momentum_and_respect_cuts():
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, CUTS)
    particles, weight = sampler.sample(np.random.default_rng(5), 200_000)
    total = particles.sum(axis=1)
    np.testing.assert_allclose(total, np.broadcast_to([BEAMS.sqrt_s, 0, 0, 0], total.shape), atol=1e-9)
    np.testing.assert_allclose(particles[..., 0], np.linalg.norm(particles[..., 1:], axis=-1), rtol=1e-9)
    energy = particles[..., 0]
    cos_theta = particles[..., 3] / energy
    inside = (
        (energy[:, 2] >= CUTS.photon_energy_min)
        & (np.abs(cos_theta[:, 2]) <= CUTS.photon_cos_theta_max)
        & np.all(energy[:, :2] >= CUTS.lepton_energy_min, axis=1)
        & np.all(np.abs(cos_theta[:, :2]) <= CUTS.lepton_cos_theta_max, axis=1)
    )
    direction = particles[..., 1:] / energy[..., None]
    pair_angle = np.arccos(np.clip(np.sum(direction[:, 0] * direction[:, 1], axis=1), -1, 1))
    inside &= pair_angle >= CUTS.lepton_pair_angle_min
    assert np.all(weight[inside] > 0) and np.all(weight[~inside] == 0)
    # the importance sampler tames the t-channel, soft and collinear peaks: bounded weights
    assert weight.max() < 20 * weight.mean()
    # photons collinear to a lepton (within 1 mrad) are generated, regulated by the electron mass
    assert np.any(inside & (np.sum(direction[:, 0] * direction[:, 2], axis=1) > 1 - 5e-7))


def test_same_seed_gives_the_same_events():
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, CUTS)
    first = sampler.sample(np.random.default_rng(123), 5000)
    second = sampler.sample(np.random.default_rng(123), 5000)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], sampler.sample(np.random.default_rng(124), 5000)[0])


def test_cross_section_estimate_and_its_error():
    sampler = RadiativeBhabhaSampler(BEAMS.sqrt_s, CUTS)
    sigma, error = sampler.cross_section(np.random.default_rng(8), 300_000, chunk_size=100_000)
    weight = sampler.sample(np.random.default_rng(18), 300_000)[1]  # an independent estimate
    assert error == pytest.approx(weight.std() / np.sqrt(len(weight)), rel=0.2)
    assert abs(sigma - weight.mean()) < 5 * error
    # 19.7 nb in the Belle II cuts (0.2 % statistical precision here)
    assert sigma == pytest.approx(19_670, rel=0.01)


def test_generation_cuts_contain_the_detector_acceptance():
    rng = np.random.default_rng(3)
    n = 400_000
    for (theta_min, theta_max), cos_max in [
        ((17.0, 150.0), CUTS.photon_cos_theta_max),
        ((ECL_THETA_MIN_DEG, ECL_THETA_MAX_DEG), CUTS.lepton_cos_theta_max),
    ]:
        cos_theta = rng.uniform(np.cos(np.radians(theta_max)), np.cos(np.radians(theta_min)), n)
        energy = 0.1 * (1 + rng.exponential(0.5, n))
        lab = massless_four_vectors(energy, unit_vectors(cos_theta, rng.uniform(-np.pi, np.pi, n)))
        cm = BEAMS.lab_to_local_cm(lab)
        assert np.all(cm[:, 0] >= min(CUTS.photon_energy_min, CUTS.lepton_energy_min))
        assert np.all(np.abs(cm[:, 3] / cm[:, 0]) <= cos_max)
        assert np.max(np.abs(cm[:, 3] / cm[:, 0])) > cos_max - 0.01
    assert CUTS.photon_cos_theta_max == pytest.approx(0.9434, abs=1e-4)
    assert CUTS.lepton_cos_theta_max == pytest.approx(0.9733, abs=1e-4)
    assert CUTS.photon_energy_min == CUTS.lepton_energy_min == pytest.approx(0.0753, abs=1e-4)
    assert CUTS.photon_lepton_angle_min == 0.0 and set(CUTS.to_dict()) >= {"lepton_cos_theta_max_cm"}


def test_sampler_rejects_impossible_cuts():
    with pytest.raises(ValueError, match="photon_energy_min"):
        RadiativeBhabhaSampler(10.0, dataclasses.replace(CUTS, photon_energy_min=6.0))
    with pytest.raises(ValueError, match="lepton_cos_theta_max"):
        RadiativeBhabhaSampler(10.0, dataclasses.replace(CUTS, lepton_cos_theta_max=1.0))
    with pytest.raises(ValueError, match="lepton_pair_angle_min"):
        RadiativeBhabhaSampler(10.0, dataclasses.replace(CUTS, lepton_pair_angle_min=0.0))
    with pytest.raises(ValueError, match="massless electron"):
        RadiativeBhabhaSampler(10.0, CUTS, electron_mass=0.0)
    with pytest.raises(ValueError, match="cos_theta_max"):
        bhabha_cross_section(10.0, -0.5, 1.0)
