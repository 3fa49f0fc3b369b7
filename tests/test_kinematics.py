import numpy as np
import pytest
from numpy.testing import assert_allclose

from bumphunt.kinematics import Beams, boost, invariant_mass, minkowski_dot, photon_four_vectors, polar_angles


def test_belle2_beams_match_design_card():
    beams = Beams()
    # DESIGN.md: P_beam ~ (0.456, 0, 2.997, 11.0) GeV, sqrt(s) ~ 10.574-10.58 GeV
    assert_allclose(beams.four_momentum, [11.0, 0.456, 0.0, 2.997], atol=1e-3)
    # massless beams: s = 4 E- E+ cos^2(crossing / 2)
    expected = np.sqrt(4 * 7.0 * 4.0) * np.cos(0.083 / 2)
    assert beams.sqrt_s == pytest.approx(expected, rel=1e-8)
    assert np.linalg.norm(beams.boost_vector) / np.sqrt(1 - np.linalg.norm(beams.boost_vector) ** 2) == pytest.approx(
        0.287, abs=0.002
    )


def test_boost_roundtrip_and_invariance():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(1000, 4))
    p[:, 0] = np.linalg.norm(p[:, 1:], axis=1) + rng.random(1000)
    beta = rng.uniform(-0.5, 0.5, (1000, 3))
    q = boost(p, beta)
    assert_allclose(boost(q, -beta), p, rtol=1e-10, atol=1e-12)
    assert_allclose(minkowski_dot(q, q), minkowski_dot(p, p), rtol=1e-9, atol=1e-12)


def test_beams_are_back_to_back_along_z_in_local_cm_frame():
    beams = Beams()
    electron = beams.lab_to_local_cm(beams.electron)
    positron = beams.lab_to_local_cm(beams.positron)
    half = beams.sqrt_s / 2
    assert_allclose(electron, [half, 0, 0, half], atol=1e-6)  # 1e-6: electron mass effects
    assert_allclose(positron, [half, 0, 0, -half], atol=1e-6)
    total = beams.lab_to_local_cm(beams.four_momentum)
    assert_allclose(total, [beams.sqrt_s, 0, 0, 0], atol=1e-10)


def test_polar_angles_roundtrip():
    rng = np.random.default_rng(2)
    theta, phi = rng.uniform(0, np.pi, 100), rng.uniform(-np.pi, np.pi, 100)
    p = photon_four_vectors(rng.uniform(0.1, 5, 100), theta, phi)
    t, f = polar_angles(p)
    assert_allclose(t, theta, atol=1e-12)
    assert_allclose(f, phi, atol=1e-12)
    assert_allclose(invariant_mass(p), 0.0, atol=1e-6)
