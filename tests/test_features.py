"""The Punzi-net features: events built by hand in the CM frame, boosted to the lab and back."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from bumphunt.errors import NtupleError
from bumphunt.kinematics import Beams, polar_angles
from bumphunt.kinfit import KINFIT_BRANCHES
from bumphunt.ntuple import BRANCHES
from bumphunt.select.features import (
    FEATURE_BRANCHES,
    FEATURES,
    MEASURED_BRANCHES,
    compute_features,
    fox_wolfram_r2,
    sphericity,
    thrust,
)

BEAMS = Beams()
SQRT_S = BEAMS.sqrt_s
RTOL = 1e-9  # round trip CM -> lab (E, theta, phi) -> CM


def column(table, name):
    return table.values[:, FEATURES.index(name)]


def lab_branches(momenta, *, fit_momenta=None, status=None):
    """Ntuple branches of massless photons with CM momenta (n, 3, 3), measured and fitted."""

    def to_lab(p):
        cm = np.concatenate([np.linalg.norm(p, axis=-1)[..., None], p], axis=-1)
        lab = BEAMS.local_cm_to_lab(cm)
        theta, phi = polar_angles(lab)
        return lab[..., 0], theta, phi

    energy, theta, phi = to_lab(momenta)
    fit_energy, fit_theta, fit_phi = to_lab(momenta if fit_momenta is None else fit_momenta)
    return {
        "photon_E": energy,
        "photon_theta": theta,
        "photon_phi": phi,
        "fit_status": np.zeros(len(momenta), dtype=np.int32) if status is None else status,
        "fit_photon_E": fit_energy,
        "fit_photon_theta": fit_theta,
        "fit_photon_phi": fit_phi,
    }


def random_events(n, seed):
    """Three photons with random CM momenta, energies 0.3-5 GeV (no zero-momentum constraint)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n, 3, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return rng.uniform(0.3, 5.0, (n, 3, 1)) * directions


def random_rotations(n, seed):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1  # proper rotations
    return q


def mercedes(tilt):
    """Three photons of sqrt(s)/3 at 120 degrees in a plane tilted by ``tilt`` from x'z'."""
    angles = np.array([0.3, 0.3 + 2 * np.pi / 3, 0.3 + 4 * np.pi / 3])
    in_plane = np.stack([np.sin(angles), np.zeros(3), np.cos(angles)], axis=-1)
    c, s = np.cos(tilt), np.sin(tilt)
    rotation = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return SQRT_S / 3 * in_plane @ rotation.T


def test_mercedes_event_closed_forms():
    momenta = np.stack([mercedes(tilt) for tilt in (0.0, 0.7, 2.0)])
    assert_allclose(momenta.sum(axis=1), 0.0, atol=1e-12)
    table = compute_features(lab_branches(momenta), BEAMS)
    assert table.values.shape == (3, 9) and table.values.dtype == np.float64
    assert table.names == FEATURES and table.n_invalid == 0
    assert_allclose(column(table, "E_high"), SQRT_S / 3, rtol=RTOL)
    assert_allclose(column(table, "E_low"), SQRT_S / 3, rtol=RTOL)
    # S^ab = (1/2) in the event plane: lambda = 1/2, 1/2, 0
    assert_allclose(column(table, "sphericity"), 0.75, rtol=RTOL)
    # H2 = (3 + 6 P2(-1/2)) / 9 = 1/4, H0 = 1
    assert_allclose(column(table, "R2"), 0.25, rtol=RTOL)
    # the thrust axis lies along one photon; the other two are 60 degrees off it
    assert_allclose(column(table, "cleo_cone_0"), 1 / 3, rtol=RTOL)
    assert_allclose(thrust(momenta).value, 2 / 3, rtol=1e-12)


def test_back_to_back_pair_with_soft_photon():
    soft = 0.05
    hard = (SQRT_S - soft) / 2
    axis = np.array([np.sin(0.4), 0.0, np.cos(0.4)])
    across = np.array([np.cos(0.4) * np.cos(1.0), np.sin(1.0), -np.sin(0.4) * np.cos(1.0)])
    momenta = np.stack([hard * axis, -hard * axis, soft * across])[None]
    table = compute_features(lab_branches(momenta), BEAMS)
    assert_allclose(column(table, "E_high"), hard, rtol=RTOL)
    assert_allclose(column(table, "E_low"), soft, rtol=RTOL)
    assert_allclose(column(table, "sphericity"), 1.5 * soft**2 / (2 * hard**2 + soft**2), rtol=RTOL)
    expected_r2 = (4 * hard**2 + soft**2 - 2 * hard * soft) / (2 * hard + soft) ** 2
    assert_allclose(column(table, "R2"), expected_r2, rtol=RTOL)
    assert column(table, "R2")[0] > 0.98 and column(table, "sphericity")[0] < 1e-4
    assert_allclose(column(table, "cleo_cone_0"), 2 * hard / (2 * hard + soft), rtol=RTOL)
    # thrust axis: along p1 - p2 +- p3, i.e. the hard axis tilted by atan(soft / 2 hard)
    result = thrust(momenta)
    assert_allclose(abs(result.axis[0] @ axis), np.cos(np.arctan(soft / (2 * hard))), rtol=1e-12)
    assert_allclose(result.value, np.hypot(2 * hard, soft) / (2 * hard + soft), rtol=1e-12)


def test_u_and_t_follow_their_definitions():
    momenta = random_events(500, seed=11)
    table = compute_features(lab_branches(momenta), BEAMS)
    energy = np.linalg.norm(momenta, axis=-1)
    cos_theta = momenta[..., 2] / energy
    order = np.argsort(energy, axis=1)
    e = np.take_along_axis(energy, order, axis=1)
    c = np.take_along_axis(cos_theta, order, axis=1)
    assert_allclose(column(table, "E_high"), e[:, 2], rtol=RTOL)
    assert_allclose(column(table, "E_low"), e[:, 0], rtol=RTOL)
    assert_allclose(column(table, "u_h"), e[:, 2] ** 2 * (1 + c[:, 2]), rtol=RTOL, atol=1e-12)
    assert_allclose(column(table, "u_l"), e[:, 0] ** 2 * (1 + c[:, 0]), rtol=RTOL, atol=1e-12)
    assert_allclose(column(table, "t_l"), e[:, 0] ** 2 * (1 - c[:, 0]), rtol=RTOL, atol=1e-12)
    assert_allclose(column(table, "t_m"), e[:, 1] ** 2 * (1 - c[:, 1]), rtol=RTOL, atol=1e-12)
    # every column also against the functions applied to the CM momenta directly
    assert_allclose(column(table, "sphericity"), sphericity(momenta), rtol=RTOL, atol=1e-12)
    assert_allclose(column(table, "R2"), fox_wolfram_r2(momenta), rtol=RTOL, atol=1e-12)


def test_shapes_do_not_depend_on_a_rotation_of_the_event():
    momenta = random_events(300, seed=12)
    rotated = np.einsum("nab,nib->nia", random_rotations(300, seed=13), momenta)
    before = compute_features(lab_branches(momenta), BEAMS)
    after = compute_features(lab_branches(rotated), BEAMS)
    for name in ("E_high", "E_low", "sphericity", "R2", "cleo_cone_0"):
        assert_allclose(column(after, name), column(before, name), rtol=RTOL, atol=1e-12, err_msg=name)
    assert np.ptp(column(before, "sphericity")) > 0.5  # the events are not all alike
    # u and t do change: they measure angles to the beam
    assert not np.allclose(column(after, "u_h"), column(before, "u_h"), rtol=1e-3)


def test_thrust_axis_beats_every_direction_of_a_scan():
    momenta = random_events(200, seed=14)
    result = thrust(momenta)
    total = np.linalg.norm(momenta, axis=-1).sum(axis=1)
    assert_allclose(np.linalg.norm(result.axis, axis=1), 1.0, rtol=1e-12)
    attained = np.abs(np.einsum("nia,na->ni", momenta, result.axis)).sum(axis=1)
    assert_allclose(attained, result.value * total, rtol=1e-12)
    rng = np.random.default_rng(15)
    directions = rng.normal(size=(3, 20000))
    directions /= np.linalg.norm(directions, axis=0)
    scanned = np.abs(momenta @ directions).sum(axis=1).max(axis=1)  # (n,)
    assert np.all(scanned <= attained * (1 + 1e-12))  # never exceeded
    assert_allclose(scanned, attained, rtol=2e-3)  # and approached by the scan


def test_thrust_axis_of_a_balanced_event_is_the_hardest_photon():
    momenta = random_events(200, seed=16)
    momenta[:, 2] = -momenta[:, 0] - momenta[:, 1]  # zero total momentum
    hardest = np.argmax(np.linalg.norm(momenta, axis=-1), axis=1)
    along = momenta[np.arange(200), hardest]
    along /= np.linalg.norm(along, axis=1)[:, None]
    assert_allclose(np.abs(np.sum(thrust(momenta).axis * along, axis=1)), 1.0, rtol=1e-12)


def test_fitted_photons_where_the_fit_converged_measured_ones_elsewhere():
    fitted, measured = random_events(40, seed=17), random_events(40, seed=18)
    status = np.tile(np.array([0, 1, 2, 3], dtype=np.int32), 10)
    table = compute_features(lab_branches(measured, fit_momenta=fitted, status=status), BEAMS)
    from_fit = compute_features(lab_branches(fitted), BEAMS)
    from_measured = compute_features(lab_branches(measured), BEAMS, use_fit=False)
    converged = status == 0
    assert_array_equal(table.fit_used, converged)
    assert_array_equal(table.values[converged], from_fit.values[converged])
    assert_array_equal(table.values[~converged], from_measured.values[~converged])
    assert not from_measured.fit_used.any()
    assert not np.allclose(from_fit.values, from_measured.values)


def test_feature_branches_are_in_the_schemas_and_suffice():
    assert set(FEATURE_BRANCHES) <= set(BRANCHES) | set(KINFIT_BRANCHES)
    branches = lab_branches(random_events(5, seed=19))
    table = compute_features({name: branches[name] for name in FEATURE_BRANCHES}, BEAMS)
    assert set(table.as_dict()) == set(FEATURES)
    assert_array_equal(table.as_dict()["R2"], column(table, "R2"))
    measured_only = {name: branches[name] for name in MEASURED_BRANCHES}
    assert compute_features(measured_only, BEAMS, use_fit=False).values.shape == (5, 9)
    assert compute_features(lab_branches(np.zeros((0, 3, 3))), BEAMS).values.shape == (0, 9)


@pytest.mark.parametrize("missing", ["photon_E", "fit_status", "fit_photon_theta"])
def test_a_missing_branch_is_named_on_one_line(missing):
    branches = lab_branches(random_events(5, seed=20))
    del branches[missing]
    with pytest.raises(NtupleError, match=f"features need branch\\(es\\) {missing},") as error:
        compute_features(branches, BEAMS)
    assert "\n" not in str(error.value)


def test_a_wrongly_shaped_branch_is_an_ntuple_error():
    branches = lab_branches(random_events(5, seed=21))
    branches["photon_phi"] = branches["photon_phi"][:, :2]
    with pytest.raises(NtupleError, match="photon_phi"):
        compute_features(branches, BEAMS)


def test_bad_photons_give_nan_features_and_a_count():
    momenta = random_events(8, seed=22)
    status = np.array([1, 1, 0, 1, 1, 0, 1, 0], dtype=np.int32)
    clean = compute_features(lab_branches(momenta, status=status), BEAMS)
    branches = lab_branches(momenta, status=status)
    branches["photon_E"][0, 1] = np.nan  # measured photons used: NaN features
    branches["photon_theta"][1, 2] = np.nan
    branches["photon_E"][2, 0] = np.nan  # fitted photons used: not affected
    branches["photon_E"][3, 2] = 0.0  # a photon without energy
    branches["fit_photon_E"][5, 0] = np.nan  # status 0 but a NaN fit result
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from the bad events
        table = compute_features(branches, BEAMS)
    bad = np.array([True, True, False, True, False, True, False, False])
    assert_array_equal(table.invalid, bad)
    assert table.n_invalid == 4
    assert np.isnan(table.values[bad]).all()
    assert_array_equal(table.values[~bad], clean.values[~bad])
