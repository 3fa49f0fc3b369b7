"""Kinematic fit: statistical properties on simulated events, an independent solver, bad input."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import optimize, stats

from bumphunt.kinematics import Beams, photon_four_vectors
from bumphunt.kinfit import FitStatus, fit_photons
from bumphunt.ntuple import ORIGIN_PROMPT, PAIRS, diphoton_masses, read_ntuple, truth_matched_pairs
from bumphunt.shapes.massfit import core_width, gaussian_core_width
from bumphunt.simulation import run_simulation
from bumphunt.simulation.detector import packed_covariance, smear, unpack_covariance

from .helpers import small_config

BEAM = Beams().four_momentum


@pytest.fixture(scope="module")
def ggg_truth(tmp_path_factory):
    """True photons of ~100,000 simulated gamma gamma gamma events whose three photons all
    come from the hard process (no beam-background photon, no merged cluster), colliding at
    the nominal beam energies (no beam-energy spread, no ISR)."""
    tmp_path = tmp_path_factory.mktemp("kinfit")
    config = small_config(
        tmp_path,
        **{
            "simulation.backgrounds.ggg.events": 140_000,
            "simulation.workers": 2,
            "beam.energy_spread": 0.0,
            "beam.isr": False,
        },
    )
    (summary,) = run_simulation(config, samples=["ggg"], progress=False)
    data = read_ntuple(summary.path)
    clean = np.all(data["photon_origin"] == ORIGIN_PROMPT, axis=1)
    truth = {name: data[f"photon_true_{name}"][clean][:100_000] for name in ("E", "theta", "phi")}
    assert len(truth["E"]) == 100_000
    return truth


@pytest.fixture(scope="module")
def fitted(ggg_truth):
    """The truth smeared again with the resolution at the true energy, fitted with that
    (correct) covariance: the fit's statistics must then be exact."""
    rng = np.random.default_rng(2026)
    energy, theta, phi, _ = smear(rng, ggg_truth["E"], ggg_truth["theta"], ggg_truth["phi"])
    covariance = packed_covariance(ggg_truth["E"])
    return (energy, theta, phi, covariance), fit_photons(energy, theta, phi, covariance, BEAM, full_covariance=True)


@pytest.mark.slow
def test_chi2_follows_chi2_with_four_degrees_of_freedom(fitted):
    _, result = fitted
    assert result.converged.mean() > 0.999
    chi2 = result.chi2[result.converged]
    assert stats.kstest(chi2, stats.chi2(4).cdf).pvalue > 0.01
    # 95% quantile of chi2(4) is 9.49: 5.0 +- 0.3 % of the fits above it
    assert np.mean(chi2 > 9.49) == pytest.approx(0.05, abs=0.003)
    assert_allclose(result.pvalue[result.converged], stats.chi2(4).sf(chi2), rtol=1e-10)
    assert result.ndf == 4


@pytest.mark.slow
def test_pulls_are_unit_gaussians(fitted):
    _, result = fitted
    pulls = result.pulls[result.converged]
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.02), pulls.mean(axis=0)
    assert np.all((pulls.std(axis=0) > 0.97) & (pulls.std(axis=0) < 1.03)), pulls.std(axis=0)


@pytest.mark.slow
def test_fitted_photons_satisfy_the_constraints(fitted):
    _, result = fitted
    ok = result.converged
    total = photon_four_vectors(result.energy[ok], result.theta[ok], result.phi[ok]).sum(axis=1)
    assert np.max(np.abs(total - BEAM)) < 1e-6


@pytest.mark.slow
def test_covariance_is_consistent(fitted):
    _, result = fitted
    ok = result.converged
    full = result.covariance[ok]
    assert_allclose(full, np.swapaxes(full, 1, 2), rtol=0, atol=1e-18)
    # the fitted photon blocks of the full matrix are the packed per-photon covariance
    for photon in range(3):
        block = full[:, 3 * photon : 3 * photon + 3, 3 * photon : 3 * photon + 3]
        assert_allclose(unpack_covariance(result.photon_covariance[ok][:, photon]), block, rtol=1e-12)
    # four constraints remove four directions: V_fit has rank 5 and V_fit <= V_measured
    eigenvalues = np.linalg.eigvalsh(full[:200] / np.sqrt(np.einsum("nii,njj->nij", full[:200], full[:200]) + 1e-300))
    assert np.all(np.sum(eigenvalues > 1e-9, axis=1) == 5)


def _solve_with_scipy(measured, covariance):
    """Minimise the same chi2 under the same constraints with scipy's trust-constr, in
    whitened parameters z (alpha = alpha0 + L z, V0 = L L^T, chi2 = z.z)."""
    cholesky = np.linalg.cholesky(covariance)

    def parameters(z):
        return measured + cholesky @ z

    def constraints(z):
        alpha = parameters(z).reshape(3, 3)
        photons = photon_four_vectors(alpha[:, 0], alpha[:, 1], alpha[:, 2])
        return photons.sum(axis=0) - BEAM

    def constraints_jacobian(z):
        jacobian = np.zeros((4, 9))
        for photon, (e, t, f) in enumerate(parameters(z).reshape(3, 3)):
            st, ct, sf, cf = np.sin(t), np.cos(t), np.sin(f), np.cos(f)
            jacobian[:, 3 * photon] = [1, st * cf, st * sf, ct]
            jacobian[:, 3 * photon + 1] = [0, e * ct * cf, e * ct * sf, -e * st]
            jacobian[:, 3 * photon + 2] = [0, -e * st * sf, e * st * cf, 0]
        return jacobian @ cholesky

    solution = optimize.minimize(
        lambda z: z @ z,
        np.zeros(9),
        jac=lambda z: 2 * z,
        hess=lambda z: 2 * np.eye(9),
        constraints=[optimize.NonlinearConstraint(constraints, 0.0, 0.0, jac=constraints_jacobian)],
        method="trust-constr",
        options={"gtol": 1e-12, "xtol": 1e-14, "maxiter": 1000},
    )
    assert solution.success, solution.message
    return parameters(solution.x), solution.fun


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:delta_grad == 0.0:UserWarning")
def test_agrees_with_an_independent_constrained_minimiser(fitted):
    (energy, theta, phi, covariance), result = fitted
    for event in range(300):
        measured = np.stack([energy[event], theta[event], phi[event]], axis=-1).ravel()
        blocks = unpack_covariance(covariance[event])
        full = np.zeros((9, 9))
        for photon in range(3):
            full[3 * photon : 3 * photon + 3, 3 * photon : 3 * photon + 3] = blocks[photon]
        alpha, chi2 = _solve_with_scipy(measured, full)
        ours = np.stack([result.energy[event], result.theta[event], result.phi[event]], axis=-1).ravel()
        assert_allclose(ours[0::3], alpha[0::3], rtol=1e-6)  # energies, relative
        assert_allclose(ours[1::3], alpha[1::3], atol=1e-6)  # angles of order 1 rad
        assert_allclose(ours[2::3], alpha[2::3], atol=1e-6)
        assert result.chi2[event] == pytest.approx(chi2, rel=1e-5, abs=1e-8)


def test_bad_input_gets_a_status_and_nan_outputs():
    energy = np.tile([[5.0, 3.5, 2.5]], (8, 1))
    theta = np.tile([[1.2, 1.9, 1.0]], (8, 1))
    phi = np.tile([[0.0, 2.5, -2.2]], (8, 1))
    covariance = packed_covariance(energy)
    energy[1, 0] = np.nan
    theta[2, 2] = np.inf
    energy[3, 1] = 0.0
    energy[4, 2] = -1.0
    covariance[5, 1] = 0.0  # singular
    covariance[6, 0, 1] = 1.0  # E-theta correlation far beyond sqrt(V_EE V_thetatheta): not positive definite
    covariance[7, 2, 4] = np.nan
    result = fit_photons(energy, theta, phi, covariance, BEAM)
    expected = [
        FitStatus.CONVERGED,
        FitStatus.INVALID_INPUT,
        FitStatus.INVALID_INPUT,
        FitStatus.NON_POSITIVE_ENERGY,
        FitStatus.NON_POSITIVE_ENERGY,
        FitStatus.BAD_COVARIANCE,
        FitStatus.BAD_COVARIANCE,
        FitStatus.INVALID_INPUT,
    ]
    assert result.status.tolist() == expected
    bad = result.status != FitStatus.CONVERGED
    for array in (result.energy, result.theta, result.phi, result.pulls, result.photon_covariance):
        assert np.all(np.isnan(array[bad])) and np.all(np.isfinite(array[~bad]))
    assert np.all(np.isnan(result.chi2[bad])) and np.all(np.isnan(result.pvalue[bad]))


def test_fit_that_cannot_converge_is_flagged():
    # three photons that miss the beam four-momentum by 1 GeV cannot converge in one iteration
    energy = np.array([[5.0, 3.0, 2.0]])
    theta, phi = np.array([[1.2, 1.9, 1.0]]), np.array([[0.0, 2.5, -2.2]])
    result = fit_photons(energy, theta, phi, packed_covariance(energy), BEAM, max_iterations=1)
    assert result.status.tolist() == [FitStatus.NOT_CONVERGED] and np.isnan(result.energy).all()
    assert result.iterations.tolist() == [1]


def test_wrapper_checks_shapes():
    good = np.ones((2, 3))
    with pytest.raises(ValueError, match="shape \\(n, 3\\)"):
        fit_photons(np.ones((2, 4)), good, good, np.ones((2, 3, 6)), BEAM)
    with pytest.raises(ValueError, match="packed shape"):
        fit_photons(good, good, good, np.ones((2, 3, 3, 3)), BEAM)
    with pytest.raises(ValueError, match="four-vector"):
        fit_photons(good, good, good, np.ones((2, 3, 6)), BEAM[:3])


def test_diphoton_masses_and_truth_matching():
    energy = np.array([[4.0, 3.0, 2.0]])
    theta = np.array([[1.0, 2.0, 1.5]])
    phi = np.array([[0.1, 2.0, -2.0]])
    masses = diphoton_masses(energy, theta, phi)
    photons = photon_four_vectors(energy, theta, phi)[0]
    for column, (i, j) in enumerate(PAIRS):
        pair = photons[i] + photons[j]
        assert masses[0, column] == pytest.approx(np.sqrt(pair[0] ** 2 - pair[1:] @ pair[1:]), rel=1e-12)
    origin = np.array([[1, 2, 2], [2, 1, 2], [2, 2, 1], [3, 1, 0]])
    assert truth_matched_pairs(origin).tolist() == [
        [False, False, True],
        [False, True, False],
        [True, False, False],
        [False, False, False],
    ]


def test_ntuple_stage_adds_fit_branches(simulated, tmp_path):
    from bumphunt.kinfit import KINFIT_BRANCHES, run_kinfit
    from bumphunt.ntuple import read_metadata

    config, summaries = simulated
    source = summaries["alp"].path
    (summary,) = run_kinfit(config, [source], tmp_path / "alp_fit.root", progress=False)
    data, original = read_ntuple(summary.output_path), read_ntuple(source)
    assert set(data) == set(original) | set(KINFIT_BRANCHES)
    for name in original:
        np.testing.assert_array_equal(data[name], original[name])
    direct = fit_photons(
        original["photon_E"], original["photon_theta"], original["photon_phi"], original["photon_cov"], BEAM
    )
    np.testing.assert_array_equal(data["fit_photon_E"], direct.energy)
    np.testing.assert_array_equal(data["fit_status"], direct.status)
    assert summary.status_counts["converged"] == np.sum(direct.status == 0) > 0.99 * len(direct.status)
    assert read_metadata(summary.output_path)["kinfit"]["status_counts"] == summary.status_counts
    assert read_metadata(summary.output_path)["sample"] == "alp"
    # the fit sharpens the truth-matched peak at 6.5 GeV several-fold (Gaussian cores: ISR gives
    # the fitted peak a high tail, test_beam_spread_and_isr_widen_the_fitted_peak_and_the_chi2_tail)
    at_mass = data["gen_mass"] == 6.5
    matched = truth_matched_pairs(data["photon_origin"][at_mass])
    width_before = gaussian_core_width(data["m_gg"][at_mass][matched])
    width_after = gaussian_core_width(data["m_gg_fit"][at_mass][matched])
    assert width_after < width_before / 3


def test_the_fit_ntuple_extends_its_input_without_copying_it(simulated, tmp_path):
    import shutil

    import uproot

    from bumphunt.errors import NtupleError
    from bumphunt.kinfit import KINFIT_BRANCHES, kinfit_ntuple
    from bumphunt.ntuple import base_ntuple, check_branches, iterate_ntuple

    _, summaries = simulated
    folder = tmp_path / "analysis"
    (folder / "simulation").mkdir(parents=True)
    source = shutil.copy2(summaries["ggg"].path, folder / "simulation" / "ggg.root")
    target = folder / "kinfit" / "ggg.root"
    target.parent.mkdir()
    kinfit_ntuple(source, target, BEAM, progress=False)
    with uproot.open(target) as file:
        assert sorted(file["events"].keys()) == sorted(KINFIT_BRANCHES)
    assert base_ntuple(target) == source.resolve()
    assert check_branches(target, None) == list(KINFIT_BRANCHES) + list(read_ntuple(source))
    chunks = list(iterate_ntuple(target, ["gen_mass", "m_gg_fit", "weight"], step_size=1000))
    assert len(chunks) > 1
    np.testing.assert_array_equal(np.concatenate([c["weight"] for c in chunks]), read_ntuple(source)["weight"])
    # moved together, the pair still reads; the input replaced or gone is an error
    moved = shutil.copytree(folder, tmp_path / "moved", copy_function=shutil.copy2)
    assert len(read_ntuple(moved / "kinfit" / "ggg.root", ["photon_E", "fit_chi2"])["photon_E"]) > 0
    shutil.copy2(summaries["alp"].path, moved / "simulation" / "ggg.root")
    with pytest.raises(NtupleError, match="made from another version of .*simulation/ggg.root: rerun"):
        read_ntuple(moved / "kinfit" / "ggg.root", ["photon_E"])
    (moved / "simulation" / "ggg.root").unlink()
    with pytest.raises(NtupleError, match="extends .*ggg.root, which does not exist"):
        check_branches(moved / "kinfit" / "ggg.root", ["fit_chi2", "photon_E"])


def test_ntuple_stage_errors(simulated, tmp_path):
    import uproot

    from bumphunt.errors import NtupleError
    from bumphunt.kinfit import kinfit_ntuple

    _, summaries = simulated
    source = summaries["ggg"].path
    with pytest.raises(NtupleError, match="cannot overwrite its input"):
        kinfit_ntuple(source, source, BEAM, progress=False)
    partial = tmp_path / "partial.root"
    with uproot.recreate(partial) as file:
        file["events"] = {"photon_E": np.ones((3, 3)), "photon_theta": np.ones((3, 3)), "photon_phi": np.ones((3, 3))}
    with pytest.raises(NtupleError, match="lacks branch\\(es\\) photon_cov"):
        kinfit_ntuple(partial, tmp_path / "out.root", BEAM, progress=False)
    assert not (tmp_path / "out.root").exists()


def test_beam_spread_and_isr_widen_the_fitted_peak_and_the_chi2_tail(tmp_path):
    """The fit constrains to the nominal beams: a collision that lost energy to ISR (or gained
    or lost some to the spread) pulls the fitted photons up, so the chi2 tail above the 95 %
    quantile of chi2(4) grows from 5 % to ~25 %, and the fitted truth-matched M_gg peak widens
    (Gaussian core) and moves up, with a high tail (68 % half-width). The measured M_gg does
    not depend on the collision."""
    masses = {"start": 2.0, "stop": 6.0, "step": 4.0}
    measured = {}
    for label, overrides in (("off", {"beam.energy_spread": 0.0, "beam.isr": False}), ("on", {})):
        config = small_config(
            tmp_path / label,
            **{"simulation.signal.masses": masses, "simulation.signal.events_per_mass": 20_000, **overrides},
        )
        (summary,) = run_simulation(config, samples=["alp"], progress=False)
        data = read_ntuple(summary.path)
        result = fit_photons(data["photon_E"], data["photon_theta"], data["photon_phi"], data["photon_cov"], BEAM)
        ok = result.converged
        for mass in (2.0, 6.0):
            at = data["gen_mass"] == mass
            matched = truth_matched_pairs(data["photon_origin"][at]) & ok[at][:, None]
            fitted = diphoton_masses(result.energy[at], result.theta[at], result.phi[at])[matched]
            before = diphoton_masses(data["photon_E"][at], data["photon_theta"][at], data["photon_phi"][at])[matched]
            measured[label, mass] = {
                "tail": np.mean(result.chi2[at][ok[at]] > stats.chi2(4).ppf(0.95)),
                "core": gaussian_core_width(fitted),
                "hw68": core_width(fitted),
                "median": np.median(fitted) - mass,
                "before": gaussian_core_width(before),
            }
    for mass in (2.0, 6.0):
        off, on = measured["off", mass], measured["on", mass]
        assert off["tail"] == pytest.approx(0.05, abs=0.006)  # 3 standard errors
        assert on["tail"] > 0.2
        assert on["core"] > 1.05 * off["core"]  # 2.0 GeV: 11.7 -> 13.1 MeV; 6.0 GeV: 14.1 -> 15.8 MeV
        assert on["hw68"] > 1.3 * off["hw68"]  # 12.4 -> 20.2 MeV; 15.2 -> 33.5 MeV
        assert on["median"] > off["median"] + 0.001  # +3 and +6 MeV
        assert on["before"] == pytest.approx(off["before"], rel=0.03)
