from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from bumphunt.constants import ELECTRON_MASS
from bumphunt.kinematics import Beams, photon_four_vectors, polar_angles, unit_vectors
from bumphunt.ntuple import (
    ORIGIN_BEAM_BACKGROUND,
    ORIGIN_DAUGHTER,
    ORIGIN_ELECTRON,
    ORIGIN_MERGED,
    ORIGIN_OTHER_MERGED,
    ORIGIN_PROMPT,
)
from bumphunt.simulation import Reconstruction
from bumphunt.simulation.detector import (
    Calorimeter,
    ClusterTiming,
    Tracking,
    Trigger,
    energy_resolution,
    form_clusters,
    merge_clusters,
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


def test_cluster_time_is_that_of_the_most_energetic_photon():
    # slots 0-2 within 0.04 rad: slot 1 (3 GeV) seeds the cluster in slot 0; slot 3 stays alone
    energy = np.array([[1.0, 3.0, 2.0, 0.5]])
    direction = np.array([[unit_vectors(np.cos(t), 0.0) for t in (1.50, 1.51, 1.52, 2.5)]])
    origin = np.full((1, 4), ORIGIN_PROMPT)
    clusters = merge_clusters(energy, direction, origin, np.ones((1, 4), bool), merge_angle=0.04)
    assert clusters.valid.tolist() == [[True, False, False, True]]
    assert clusters.seed[0, [0, 3]].tolist() == [1, 3]
    assert clusters.energy[0, 0] == pytest.approx(6.0)
    # form_clusters is merge_clusters without the seeds
    e, d, o, v = form_clusters(energy, direction, origin, np.ones((1, 4), bool), 0.04)
    assert (
        np.array_equal(e, clusters.energy)
        and np.array_equal(d, clusters.direction)
        and np.array_equal(v, clusters.valid)
    )


def test_time_resolution_and_trigger_turn_on():
    timing = ClusterTiming(noise=2.0, constant=1.0)
    assert timing.resolution(np.array([1.0, 0.1])) == pytest.approx([np.sqrt(5.0), np.sqrt(401.0)], rel=1e-12)
    trigger = Trigger(energy_threshold=1.0, energy_width=0.1, plateau=0.97)
    assert trigger.efficiency(np.array([1.0, 1.1, 9.0, 0.0])) == pytest.approx(
        [0.485, 0.97 * stats.norm.cdf(1.0), 0.97, 0.0], abs=1e-12
    )


def _three_photon_event(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n copies of three photons of sqrt(s)/3 at 120 deg to each other, transverse to the beams
    in the CM frame (lab: theta ~ 74 deg, phi = 0, +-118 deg; M_ggg = sqrt(s))."""
    e = Beams().sqrt_s / 3
    cm = np.array([[e, e * np.cos(a), e * np.sin(a), 0.0] for a in (0.0, 2 * np.pi / 3, 4 * np.pi / 3)])
    photons = np.broadcast_to(Beams().local_cm_to_lab(cm), (n, 3, 4))
    return photons, np.zeros((n, 3, 3)), np.full((n, 3), ORIGIN_PROMPT)


def _with(photons, production, origin, particle, vertex, code):
    """The events with one more particle (four-vector ``particle`` from ``vertex``)."""
    n = len(photons)
    return (
        np.concatenate([photons, np.broadcast_to(particle, (n, 1, 4))], axis=1),
        np.concatenate([production, np.broadcast_to(vertex, (n, 1, 3))], axis=1),
        np.concatenate([origin, np.full((n, 1), code)], axis=1),
    )


def _reconstruction(config, **changes):
    config["detector"]["beam_background"]["mean_photons"] = 0
    return replace(Reconstruction.from_config(config), **changes)


def _electron(energy, theta, phi):
    momentum = np.sqrt(energy**2 - ELECTRON_MASS**2)
    return np.concatenate([[energy], momentum * unit_vectors(np.cos(theta), phi)])


def test_cluster_time_cut_and_simultaneity_on_hand_made_events(config):
    n = 200
    rng = np.random.default_rng(1)
    # a hard beam-background photon, the most energetic cluster, away from the three photons
    events = _with(*_three_photon_event(n), photon_four_vectors(np.array(4.0), np.radians(130), np.radians(60)), 0, 0)
    # read out over +-1 s: never within 200 ns, so never a candidate
    far = _reconstruction(config, timing=ClusterTiming(readout_window=1e9))
    passed, branches = far(rng, *events)
    assert passed.all() and np.all(branches["n_photons"] == 3) and np.all(branches["photon_origin"] == ORIGIN_PROMPT)
    assert np.all(np.abs(branches["photon_time"]) < 5 * far.timing.resolution(branches["photon_true_E"]))
    # within +-150 ns it is a candidate, one of the three most energetic ...
    near = ClusterTiming(noise=0.0, constant=1e-6, readout_window=150.0)
    passed, branches = _reconstruction(config, timing=near, cluster_time_sigmas=1e12)(rng, *events)
    assert passed.all() and np.all(branches["n_photons"] == 4)
    assert np.all(np.any(branches["photon_origin"] == ORIGIN_BEAM_BACKGROUND, axis=1))
    # ... that is not simultaneous with the others: 5 sigma(t_i - t_j) = 7e-6 ns
    passed, _ = _reconstruction(config, timing=near)(rng, *events)
    assert not passed.any()


def test_good_track_veto_on_hand_made_events(config):
    n = 20_000
    rng = np.random.default_rng(2)
    photons, production, origin = _three_photon_event(n)
    # the third photon is an electron instead (radiative Bhabha with a lost track)
    electron = _electron(photons[0, 2, 0], *polar_angles(photons[0, 2]))
    bhabha = (
        np.concatenate([photons[:, :2], np.broadcast_to(electron, (n, 1, 4))], axis=1),
        production,
        np.tile([ORIGIN_PROMPT, ORIGIN_PROMPT, ORIGIN_ELECTRON], (n, 1)),
    )
    tracked = _reconstruction(config, tracking=Tracking(efficiency=1.0))
    assert not tracked(rng, *bhabha)[0].any()
    passed, branches = _reconstruction(config, tracking=Tracking(efficiency=0.0))(rng, *bhabha)
    assert passed.all() and np.all(branches["n_photons"] == 3)
    assert np.all(np.sort(branches["photon_origin"], axis=1) == [ORIGIN_PROMPT, ORIGIN_PROMPT, ORIGIN_ELECTRON])
    # per track: one electron is lost half the time, two electrons a quarter of the time
    half = _reconstruction(config, tracking=Tracking(efficiency=0.5))
    assert half(rng, *bhabha)[0].mean() == pytest.approx(0.5, abs=5 * np.sqrt(0.25 / n))
    positron = _electron(1.0, np.radians(130), np.radians(60))
    assert half(rng, *_with(*bhabha, positron, 0, ORIGIN_ELECTRON))[0].mean() == pytest.approx(
        0.25, abs=5 * np.sqrt(0.25 * 0.75 / n)
    )


@pytest.mark.parametrize(
    "theta_deg, phi_deg, vertex, outcome",
    [
        (10.0, 60.0, (0.0, 0.0, 0.0), "kept"),  # outside the CDC (and photon) acceptance
        (90.0, 60.0, (0.0, 0.0, 0.0), "vetoed"),  # prompt, inside: a good track
        (90.0, 90.0, (0.5, 0.0, 0.0), "vetoed"),  # dr = 0.5 cm
        (90.0, 90.0, (5.0, 0.0, 0.0), "kept"),  # dr = 5 cm: a track, not a good one
        (90.0, 0.0, (0.0, 0.0, 2.0), "vetoed"),  # dz = 2 cm
        (90.0, 0.0, (0.0, 0.0, 5.0), "kept"),  # dz = 5 cm
    ],
)
def test_good_tracks_need_the_acceptance_and_small_impact_parameters(config, theta_deg, phi_deg, vertex, outcome):
    events = _with(
        *_three_photon_event(10),
        _electron(1.0, np.radians(theta_deg), np.radians(phi_deg)),
        np.array(vertex),
        ORIGIN_ELECTRON,
    )
    passed, branches = _reconstruction(config, tracking=Tracking(efficiency=1.0))(np.random.default_rng(3), *events)
    assert passed.tolist() == [outcome == "kept"] * 10
    if outcome == "kept":
        # no candidate from the electron: out of the acceptance, or its cluster matched to its track
        assert np.all(branches["n_photons"] == 3) and np.all(branches["photon_origin"] == ORIGIN_PROMPT)
