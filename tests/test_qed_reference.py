"""Validation of the independent QED reference in :mod:`tests.qed_reference`.

Kinematics are generated here with a small massless RAMBO implementation and
explicit two-body decays (fixed seeds).  Nothing from :mod:`bumphunt` is used.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.qed_reference import (
    ALPHA_EM,
    GAMMA,
    amplitude_eeggg,
    massless_u_spinors,
    massless_v_spinors,
    me2_eeggg_explicit,
    minkowski_dot,
    slash,
    spin_summed_me2_eegg,
    spin_summed_me2_eeggg,
    transverse_polarisations,
)

E_SQUARED = 4.0 * np.pi * ALPHA_EM
SQRT_S = 10.58  # GeV; any scale works, the matrix elements are homogeneous


# ---------------------------------------------------------------------------
# Kinematics helpers
# ---------------------------------------------------------------------------


def random_unit_vectors(rng, n):
    """Isotropic unit three-vectors, shape ``(n, 3)``."""
    cos_theta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    return np.column_stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta])


def beams(rng, n, sqrt_s=SQRT_S):
    """Massless e-, e+ momenta back to back along random axes in the CM frame."""
    axis = random_unit_vectors(rng, n)
    half = 0.5 * sqrt_s
    energy = np.full((n, 1), half)
    p_minus = np.hstack([energy, half * axis])
    p_plus = np.hstack([energy, -half * axis])
    return p_minus, p_plus


def rambo_massless(rng, n_events, n_particles, sqrt_s=SQRT_S):
    """Flat massless ``n_particles``-body phase space in the CM frame (RAMBO).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_particles, n_events, 4)``.
    """
    r = rng.uniform(size=(4, n_particles, n_events))
    cos_theta = 2.0 * r[0] - 1.0
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    phi = 2.0 * np.pi * r[1]
    energy = -np.log(r[2] * r[3])
    q = np.stack(
        [energy, energy * sin_theta * np.cos(phi), energy * sin_theta * np.sin(phi), energy * cos_theta],
        axis=-1,
    )
    total = q.sum(axis=0)  # (n_events, 4)
    mass = np.sqrt(minkowski_dot(total, total))
    b = -total[:, 1:] / mass[:, None]
    x = sqrt_s / mass
    gamma = total[:, 0] / mass
    a = 1.0 / (1.0 + gamma)
    bq = np.einsum("na,pna->pn", b, q[..., 1:])
    p0 = x * (gamma * q[..., 0] + bq)
    pvec = x[:, None] * (q[..., 1:] + b * q[..., :1] + (a * bq)[..., None] * b)
    return np.concatenate([p0[..., None], pvec], axis=-1)


def boost(p, beta_vec):
    """Lorentz boost of four-vectors ``p`` (shape ``(n, 4)``) by velocity ``beta_vec``."""
    beta2 = np.sum(beta_vec**2, axis=-1)
    gamma = 1.0 / np.sqrt(1.0 - beta2)
    bp = np.sum(beta_vec * p[:, 1:], axis=-1)
    energy = gamma * (p[:, 0] + bp)
    # (gamma - 1) / beta^2 = gamma^2 / (gamma + 1), finite at beta = 0.
    coeff = gamma**2 / (gamma + 1.0) * bp + gamma * p[:, 0]
    return np.column_stack([energy, p[:, 1:] + coeff[:, None] * beta_vec])


def two_body_massless(rng, parent):
    """Isotropic decay of ``parent`` (shape ``(n, 4)``) into two massless particles."""
    n = parent.shape[0]
    mass = np.sqrt(minkowski_dot(parent, parent))
    direction = random_unit_vectors(rng, n)
    half = 0.5 * mass[:, None]
    d1 = np.hstack([half, half * direction])
    d2 = np.hstack([half, -half * direction])
    beta = parent[:, 1:] / parent[:, :1]
    return boost(d1, beta), boost(d2, beta)


def three_photon_events(seed, n, sqrt_s=SQRT_S, min_invariant_fraction=1e-3):
    """Random e+e- -> 3 gamma events; rejects near-singular configurations.

    Events with any ``p_beam . k_i < min_invariant_fraction * s`` are discarded
    so that the tolerances test the arithmetic rather than cancellations.
    """
    rng = np.random.default_rng(seed)
    p_minus, p_plus = beams(rng, 4 * n, sqrt_s)
    k1, k2, k3 = rambo_massless(rng, 4 * n, 3, sqrt_s)
    s = sqrt_s**2
    invariants = [minkowski_dot(p, k) for p in (p_minus, p_plus) for k in (k1, k2, k3)]
    keep = np.all(np.array(invariants) > min_invariant_fraction * s, axis=0)
    idx = np.flatnonzero(keep)[:n]
    assert idx.size == n
    return tuple(v[idx] for v in (p_minus, p_plus, k1, k2, k3))


# ---------------------------------------------------------------------------
# Sanity checks of the Dirac algebra and the generators
# ---------------------------------------------------------------------------


def test_clifford_algebra():
    metric = np.diag([1.0, -1.0, -1.0, -1.0])
    for mu, nu in itertools.product(range(4), repeat=2):
        anticommutator = GAMMA[mu] @ GAMMA[nu] + GAMMA[nu] @ GAMMA[mu]
        np.testing.assert_allclose(anticommutator, 2.0 * metric[mu, nu] * np.eye(4), atol=1e-15)


def test_spinor_completeness_and_dirac_equation():
    rng = np.random.default_rng(11)
    p = np.hstack([np.full((5, 1), 3.0), 3.0 * random_unit_vectors(rng, 5)])
    g0 = GAMMA[0]
    for spinors in (massless_u_spinors(p), massless_v_spinors(p)):
        bar = np.einsum("nsi,ij->nsj", np.conj(spinors), g0)
        completeness = np.einsum("nsi,nsj->nij", spinors, bar)
        np.testing.assert_allclose(completeness, slash(p), atol=1e-13)
        dirac = np.einsum("nij,nsj->nsi", slash(p), spinors)
        np.testing.assert_allclose(dirac, 0.0, atol=1e-13)


def test_generators_conserve_momentum():
    p_minus, p_plus, k1, k2, k3 = three_photon_events(1, 200)
    np.testing.assert_allclose(k1 + k2 + k3, p_minus + p_plus, atol=1e-12)
    for k in (k1, k2, k3):
        np.testing.assert_allclose(minkowski_dot(k, k), 0.0, atol=1e-11)


# ---------------------------------------------------------------------------
# e+ e- -> gamma gamma
# ---------------------------------------------------------------------------


def test_two_photon_matches_textbook():
    """Spin sum equals 8 e^4 (u/t + t/u); rtol 1e-10."""
    rng = np.random.default_rng(2024)
    n = 300
    p_minus, p_plus = beams(rng, n)
    k1, k2 = two_body_massless(rng, p_minus + p_plus)
    t = minkowski_dot(p_minus - k1, p_minus - k1)
    u = minkowski_dot(p_minus - k2, p_minus - k2)
    expected = 8.0 * E_SQUARED**2 * (u / t + t / u)
    result = spin_summed_me2_eegg(p_minus, p_plus, k1, k2)
    np.testing.assert_allclose(result, expected, rtol=1e-10)


def test_two_photon_alpha_scaling():
    rng = np.random.default_rng(5)
    p_minus, p_plus = beams(rng, 10)
    k1, k2 = two_body_massless(rng, p_minus + p_plus)
    ratio = spin_summed_me2_eegg(p_minus, p_plus, k1, k2, alpha=0.1) / spin_summed_me2_eegg(
        p_minus, p_plus, k1, k2, alpha=0.05
    )
    np.testing.assert_allclose(ratio, 4.0, rtol=1e-12)


# ---------------------------------------------------------------------------
# e+ e- -> gamma gamma gamma
# ---------------------------------------------------------------------------


def test_three_photon_positive_and_shape():
    events = three_photon_events(3, 50)
    result = spin_summed_me2_eeggg(*events)
    assert result.shape == (50,)
    assert np.all(np.isfinite(result)) and np.all(result > 0)


def test_three_photon_permutation_symmetry():
    """Invariant under all 6 permutations of the photons; rtol 1e-10."""
    p_minus, p_plus, *photons = three_photon_events(7, 200)
    reference = spin_summed_me2_eeggg(p_minus, p_plus, *photons)
    for perm in itertools.permutations(range(3)):
        permuted = spin_summed_me2_eeggg(p_minus, p_plus, *(photons[i] for i in perm))
        np.testing.assert_allclose(permuted, reference, rtol=1e-10)


def test_three_photon_charge_conjugation():
    """Swapping electron and positron momenta leaves the spin sum unchanged; rtol 1e-10."""
    p_minus, p_plus, k1, k2, k3 = three_photon_events(8, 200)
    np.testing.assert_allclose(
        spin_summed_me2_eeggg(p_plus, p_minus, k1, k2, k3),
        spin_summed_me2_eeggg(p_minus, p_plus, k1, k2, k3),
        rtol=1e-10,
    )


def test_three_photon_lorentz_invariance():
    """Boosting all momenta (|beta| up to 0.9, random directions) changes nothing; rtol 1e-9."""
    rng = np.random.default_rng(9)
    events = three_photon_events(9, 200)
    beta = rng.uniform(0.0, 0.9, 200)[:, None] * random_unit_vectors(rng, 200)
    boosted = [boost(p, beta) for p in events]
    np.testing.assert_allclose(spin_summed_me2_eeggg(*boosted), spin_summed_me2_eeggg(*events), rtol=1e-9)


def test_three_photon_trace_matches_explicit_helicity_sum():
    """-g_{mu nu} polarisation sums agree with explicit transverse polarisations; rtol 1e-10."""
    events = three_photon_events(10, 200)
    np.testing.assert_allclose(me2_eeggg_explicit(*events), spin_summed_me2_eeggg(*events), rtol=1e-10)


@pytest.mark.parametrize("gauged_photon", [0, 1, 2])
def test_three_photon_ward_identity(gauged_photon):
    """eps_j -> k_j gives a vanishing amplitude; |A| < 1e-10 * typical |A|.

    The other two photons carry random complex (not necessarily transverse)
    polarisation vectors, which the abelian Ward identity allows.
    """
    rng = np.random.default_rng(20 + gauged_photon)
    n = 100
    p_minus, p_plus, *photons = three_photon_events(30 + gauged_photon, n)
    u = massless_u_spinors(p_minus)[:, 0] + 0.7j * massless_u_spinors(p_minus)[:, 1]
    v = massless_v_spinors(p_plus)[:, 1] - 0.3 * massless_v_spinors(p_plus)[:, 0]
    vbar = np.conj(v) @ GAMMA[0]
    eps = [(rng.normal(size=(n, 4)) + 1j * rng.normal(size=(n, 4))) / 2.0 for _ in range(3)]
    # Typical size: same spinors, physical transverse polarisations.
    physical = [transverse_polarisations(k)[:, 0] for k in photons]
    typical = np.abs(amplitude_eeggg(p_minus, p_plus, *photons, u, vbar, *physical))
    scale = np.median(typical)
    assert scale > 0
    # Normalise the gauged photon's momentum to unit energy so that the
    # comparison with a unit-norm polarisation vector is dimensionally fair.
    eps[gauged_photon] = photons[gauged_photon] / photons[gauged_photon][:, :1]
    gauged = amplitude_eeggg(p_minus, p_plus, *photons, u, vbar, *eps)
    assert np.max(np.abs(gauged)) < 1e-10 * scale
    # Without the other diagrams the individual terms are of order `scale`:
    # check the identity is not trivially satisfied.
    ungauged = amplitude_eeggg(
        p_minus, p_plus, *photons, u, vbar, *[e if j != gauged_photon else physical[j] for j, e in enumerate(eps)]
    )
    assert np.median(np.abs(ungauged)) > 1e-3 * scale


def _soft_limit_deviation(seed, soft_fraction, n=200):
    """Relative deviation of |M_3|^2 from |M_2|^2 x eikonal at omega_3 = soft_fraction sqrt(s)."""
    rng = np.random.default_rng(seed)
    p_minus, p_plus = beams(rng, n)
    omega = soft_fraction * SQRT_S
    k3 = np.hstack([np.full((n, 1), omega), omega * random_unit_vectors(rng, n)])
    k1, k2 = two_body_massless(rng, p_minus + p_plus - k3)
    np.testing.assert_allclose(k1 + k2 + k3, p_minus + p_plus, atol=1e-12)
    eikonal = (
        E_SQUARED * 2.0 * minkowski_dot(p_minus, p_plus) / (minkowski_dot(p_minus, k3) * minkowski_dot(p_plus, k3))
    )
    expected = spin_summed_me2_eegg(p_minus, p_plus, k1, k2) * eikonal
    result = spin_summed_me2_eeggg(p_minus, p_plus, k1, k2, k3)
    return result / expected - 1.0


@pytest.mark.parametrize("seed", [41, 42])
def test_three_photon_soft_limit(seed):
    """omega_3 = 1e-4 sqrt(s): |M_3|^2 = |M_2|^2 * e^2 2(p-.p+)/((p-.k3)(p+.k3)) to rtol 5e-3.

    The correction is O(omega_3 sqrt(s) / |t|): median ~3e-4, but up to ~2e-3
    for hard photons close to the beam (|t| ~ 1e-3 s).  The 2-photon matrix
    element is evaluated at the same k1, k2 (momentum is conserved only up to
    k3, an O(omega) effect).
    """
    deviation = _soft_limit_deviation(seed, 1e-4)
    assert np.max(np.abs(deviation)) < 5e-3
    assert np.median(np.abs(deviation)) < 1e-3


@pytest.mark.parametrize("seed", [41, 42])
def test_three_photon_soft_limit_converges_linearly(seed):
    """Shrinking omega_3 by 10 shrinks every deviation by 10 (within 8..12)."""
    coarse = _soft_limit_deviation(seed, 1e-4)
    fine = _soft_limit_deviation(seed, 1e-5)
    ratio = np.abs(coarse) / np.abs(fine)
    assert np.all((ratio > 8.0) & (ratio < 12.0))
