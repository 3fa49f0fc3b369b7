import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from bumphunt.kinematics import unit_vectors
from bumphunt.ntuple import ORIGIN_DAUGHTER, ORIGIN_MERGED, ORIGIN_OTHER_MERGED, ORIGIN_PROMPT
from bumphunt.simulation.detector import (
    Calorimeter,
    energy_resolution,
    form_clusters,
    packed_covariance,
    phi_resolution,
    smear,
    theta_resolution,
    unpack_covariance,
)


def test_belle2_resolution_at_one_gev_matches_design_card():
    # DESIGN.md: at 1 GeV 2.04 %, 3.85 mrad, 4.52 mrad (rounded there to 3 digits)
    assert energy_resolution(1.0) == pytest.approx(0.0204, abs=5e-5)
    assert theta_resolution(1.0) == pytest.approx(3.85e-3, abs=5e-6)
    assert phi_resolution(1.0) == pytest.approx(4.52e-3, abs=5e-6)
    # older Belle form, in quadrature: 0.066% (+) 0.81% (+) 1.34% at 1 GeV
    assert energy_resolution(1.0, "belle") == pytest.approx(np.sqrt(0.066**2 + 0.81**2 + 1.34**2) / 100, rel=1e-12)
    with pytest.raises(ValueError, match="unknown resolution model"):
        energy_resolution(1.0, "cms")


@pytest.mark.parametrize("model", ["belle2", "belle"])
def test_smearing_has_configured_resolution(model):
    rng = np.random.default_rng(4)
    n = 400_000
    energy = rng.uniform(0.1, 6.0, n)
    theta = rng.uniform(0.4, 2.5, n)
    phi = rng.uniform(-3.0, 3.0, n)
    e_meas, t_meas, p_meas, cov = smear(rng, energy, theta, phi, model)
    for pull in (
        (e_meas - energy) / energy_resolution(energy, model),
        (t_meas - theta) / theta_resolution(energy),
        (p_meas - phi) / phi_resolution(energy),
    ):
        # mean 0 +- 5 sigma_stat, width 1 within 0.5 % (sigma_stat 0.1 %)
        assert abs(pull.mean()) < 5 / np.sqrt(n)
        assert pull.std() == pytest.approx(1.0, abs=0.005)
        assert stats.kstest(pull[:20000], "norm").pvalue > 0.01
    # the stored covariance is the resolution at the measured energy
    assert_allclose(cov[:, 0], energy_resolution(e_meas, model) ** 2, rtol=1e-12)
    assert_allclose(cov[:, 5], phi_resolution(e_meas) ** 2, rtol=1e-12)


def test_covariance_pack_unpack():
    packed = np.arange(12.0).reshape(2, 6)
    full = unpack_covariance(packed)
    assert_allclose(full[1], [[6, 7, 8], [7, 9, 10], [8, 10, 11]])
    assert_allclose(
        unpack_covariance(packed_covariance(np.array([1.0])))[0],
        np.diag([energy_resolution(1.0) ** 2, theta_resolution(1.0) ** 2, phi_resolution(1.0) ** 2]),
    )


def test_impact_points_lie_on_the_inner_surface():
    ecl = Calorimeter()
    rng = np.random.default_rng(7)
    n = 20_000
    origin = rng.uniform(-60, 60, (n, 3))
    direction = unit_vectors(rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n))
    impact = ecl.impact_points(origin, direction)
    radius = np.hypot(impact[:, 0], impact[:, 1])
    on_barrel = (
        np.isclose(radius, ecl.barrel_radius)
        & (impact[:, 2] <= ecl.z_forward + 1e-9)
        & (impact[:, 2] >= ecl.z_backward - 1e-9)
    )
    on_endcap = (np.isclose(impact[:, 2], ecl.z_forward) | np.isclose(impact[:, 2], ecl.z_backward)) & (
        radius <= ecl.barrel_radius + 1e-9
    )
    assert np.all(on_barrel | on_endcap)
    # the impact is ahead of the origin along the direction
    assert np.all(np.sum((impact - origin) * direction, axis=1) > 0)
    assert np.all(ecl.inside(origin)) and not ecl.inside(np.array([0.0, 130.0, 0.0]))


def test_close_photons_merge_into_one_cluster():
    energy = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    # event 0: photons 1 and 2 are 0.02 rad apart; event 1: all well separated
    direction = np.array(
        [
            [unit_vectors(np.cos(1.0), 0.0), unit_vectors(np.cos(1.5), 0.0), unit_vectors(np.cos(1.52), 0.0)],
            [unit_vectors(np.cos(1.0), 0.0), unit_vectors(np.cos(1.5), 0.0), unit_vectors(np.cos(2.0), 0.0)],
        ]
    )
    origin = np.array(
        [[ORIGIN_PROMPT, ORIGIN_DAUGHTER, ORIGIN_DAUGHTER], [ORIGIN_PROMPT, ORIGIN_PROMPT, ORIGIN_PROMPT]]
    )
    valid = np.ones((2, 3), bool)
    e, d, o, v = form_clusters(energy, direction, origin, valid, merge_angle=0.04)
    assert v.tolist() == [[True, True, False], [True, True, True]]
    assert e[0, 1] == pytest.approx(5.0)
    theta = np.arccos(d[0, 1, 2])
    assert theta == pytest.approx((2 * 1.5 + 3 * 1.52) / 5, abs=1e-4)  # energy-weighted position
    assert o[0, 1] == ORIGIN_MERGED and o[1].tolist() == [ORIGIN_PROMPT] * 3
    # a prompt photon merging with a daughter is "other merged"
    origin[0] = [ORIGIN_PROMPT, ORIGIN_PROMPT, ORIGIN_DAUGHTER]
    assert form_clusters(energy, direction, origin, valid, 0.04)[2][0, 1] == ORIGIN_OTHER_MERGED
