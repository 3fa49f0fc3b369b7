"""Signal shapes: the densities, the per-mass fits, the interpolation and its held-out test."""

import json
import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate

from bumphunt import dscb
from bumphunt.errors import BumphuntError
from bumphunt.shapes import (
    MassFit,
    ShapeModel,
    build_shape_model,
    fit_mass,
    gaussian_core_width,
    held_out_masses,
    run_shapes,
    smooth,
)

from .conftest import small_config

PARAMETER_SETS = [
    # mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r, lower, upper
    (0.0, 1.0, 1.0, 1.5, 3.0, 2.0, 5.0, -20.0, 20.0),
    (0.3, 0.5, 2.0, 0.8, 1.0, 3.0, 2.5, -3.0, 10.0),
    (1.0, 1.0, 1.0, 1.5, 10.0, 1.5, 10.0, 2.0, 5.0),
    (1.0, 1.0, 1.0, 1.5, 10.0, 1.5, 10.0, -5.0, 0.5),
    (3.275, 0.013, 0.013, 1.47, 10.0, 1.49, 10.0, 3.0, 3.55),
]


@pytest.mark.parametrize("parameters", PARAMETER_SETS)
def test_dscb_is_normalised_in_closed_form(parameters):
    *shape, lower, upper = parameters
    area = integrate.quad(lambda x: dscb.dscb_pdf(x, *shape, lower, upper)[0], lower, upper, points=[shape[0]],
                          limit=400, epsabs=1e-12, epsrel=1e-12)[0]  # fmt: skip
    assert area == pytest.approx(1.0, rel=1e-9)
    x = np.linspace(lower - 1, upper + 1, 50)
    pdf = dscb.dscb_pdf(x, *shape, lower, upper)
    assert np.all(pdf[(x < lower) | (x > upper)] == 0) and np.all(pdf[(x >= lower) & (x <= upper)] > 0)


def test_dscb_and_chebyshev_equal_zfit():
    zfit = pytest.importorskip("zfit")
    rng = np.random.default_rng(1)
    for mu, sl, sr, al, nl, ar, nr, lower, upper in PARAMETER_SETS:
        obs = zfit.Space("x", lower, upper)
        x = rng.uniform(lower, upper, 500)
        if sl == sr:
            model = zfit.pdf.DoubleCB(mu=mu, sigma=sl, alphal=al, nl=nl, alphar=ar, nr=nr, obs=obs)
        else:
            model = zfit.pdf.GeneralizedCB(mu=mu, sigmal=sl, alphal=al, nl=nl, sigmar=sr, alphar=ar, nr=nr, obs=obs)
        ours = dscb.dscb_pdf(x, mu, sl, sr, al, nl, ar, nr, lower, upper)
        # zfit normalises numerically: agreement to its integration precision
        assert_allclose(np.asarray(model.pdf(x)), ours, rtol=1e-6)
        chebyshev = zfit.pdf.Chebyshev(obs=obs, coeffs=[0.37])
        assert_allclose(np.asarray(chebyshev.pdf(x)), dscb.chebyshev1_pdf(x, 0.37, lower, upper), rtol=1e-8)


def test_dscb_equals_roofit_crystal_ball():
    ROOT = pytest.importorskip("ROOT", reason="the optional root package is not installed")
    for mu, sl, sr, al, nl, ar, nr, lower, upper in PARAMETER_SETS:
        x = ROOT.RooRealVar("x", "x", lower, upper)
        pars = [ROOT.RooRealVar(name, name, value) for name, value in
                zip(("mu", "sl", "al", "nl", "sr", "ar", "nr"), (mu, sl, al, nl, sr, ar, nr))]  # fmt: skip
        pdf = ROOT.RooCrystalBall("cb", "cb", x, pars[0], pars[1], pars[4], pars[2], pars[3], pars[5], pars[6])
        norm = ROOT.RooArgSet(x)
        for value in np.linspace(lower, upper, 200):
            x.setVal(value)
            ours = dscb.dscb_pdf(value, mu, sl, sr, al, nl, ar, nr, lower, upper)[0]
            assert pdf.getVal(norm) == pytest.approx(ours, rel=1e-8)


def _sample_dscb(rng, n, shape, lower, upper):
    """Inverse-CDF sampling on a fine grid."""
    grid = np.linspace(lower, upper, 200_001)
    cdf = integrate.cumulative_trapezoid(dscb.dscb_pdf(grid, *shape, lower, upper), grid, initial=0.0)
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def test_peak_fit_is_unbiased_with_correct_errors():
    shape = (5.0, 0.014, 0.014, 1.6, 10.0, 1.9, 10.0)
    lower, upper = 5.0 - 20 * 0.014, 5.0 + 20 * 0.014
    rng = np.random.default_rng(3)
    pulls = {"mu": [], "sigma": []}
    for _ in range(100):
        x = _sample_dscb(rng, 4000, shape, lower, upper)
        candidates = np.column_stack([x, np.full_like(x, np.nan), np.full_like(x, np.nan)])
        matched = np.zeros_like(candidates, dtype=bool)
        matched[:, 0] = True
        fit = fit_mass(5.0, candidates, matched, 4000, n_l=10.0, n_r=10.0)
        assert fit.ok, fit.status
        pulls["mu"].append((fit.values["mu"] - 5.0) / fit.errors["mu"])
        pulls["sigma"].append((fit.values["sigma"] - 0.014) / fit.errors["sigma"])
    for name, values in pulls.items():
        # 100 toys: mean known to +-0.1, width to +-0.07
        assert abs(np.mean(values)) < 0.3, name
        assert 0.8 < np.std(values) < 1.2, name


def test_numba_and_zfit_engines_agree():
    pytest.importorskip("zfit")
    shape = (2.0, 0.012, 0.012, 1.5, 10.0, 2.0, 10.0)
    rng = np.random.default_rng(4)
    peak = _sample_dscb(rng, 6000, shape, 2.0 - 0.3, 2.0 + 0.3)
    wrong = rng.uniform(1.6, 2.4, 1500)
    candidates = np.column_stack([peak, np.r_[wrong, np.full(4500, np.nan)], np.full(6000, np.nan)])
    matched = np.zeros_like(candidates, dtype=bool)
    matched[:, 0] = True
    fast = fit_mass(2.0, candidates, matched, 6000, n_l=10.0, n_r=10.0, engine="numba")
    reference = fit_mass(2.0, candidates, matched, 6000, n_l=10.0, n_r=10.0, engine="zfit")
    assert fast.ok and reference.ok
    for name in ("mu", "sigma", "alpha_l", "alpha_r", "fraction", "c1"):
        assert abs(fast.values[name] - reference.values[name]) < 0.05 * fast.errors[name], name
        assert fast.errors[name] == pytest.approx(reference.errors[name], rel=0.05), name


def test_too_few_candidates_are_flagged_and_excluded_with_a_warning():
    masses = np.arange(1.0, 3.01, 0.25)
    rng = np.random.default_rng(5)
    fits = []
    for mass in masses:
        n = 50 if mass == 2.0 else 3000
        x = rng.normal(mass, 0.01, n)
        candidates = np.column_stack([x, np.full(n, np.nan), np.full(n, np.nan)])
        matched = np.zeros_like(candidates, dtype=bool)
        matched[:, 0] = True
        fits.append(fit_mass(mass, candidates, matched, 3000, n_l=10.0, n_r=10.0))
    assert [f.ok for f in fits].count(False) == 1
    assert "too few truth-matched candidates (50)" in fits[4].status
    settings = {"peak": "doublecb", "n_l": 10.0, "n_r": 10.0, "window_sigmas": 20.0}
    with pytest.warns(UserWarning, match="m = 2.0000 GeV excluded from the interpolation: too few"):
        model = build_shape_model(fits, np.array([]), settings)
    # the interpolation bridges the gap with the neighbours: a 10 MeV Gaussian
    assert model.resolution(2.0) == pytest.approx(0.01, rel=0.05)


def test_smoothing_spline_and_its_error():
    rng = np.random.default_rng(6)
    masses = np.linspace(0.2, 10.0, 40)
    truth = lambda m: 0.01 + 0.002 * np.sqrt(m) - 0.0001 * m  # noqa: E731
    errors = np.full(len(masses), 2e-4)
    deviations = []
    for _ in range(60):
        spline, standard_error = smooth(masses, truth(masses) + rng.normal(0, errors), errors)
        deviations.append((spline(5.1) - truth(5.1)) / standard_error(5.1)[0])
    # the propagated error describes the scatter of the spline (smoothing bias is small here)
    assert 0.6 < np.std(deviations) < 1.4
    assert abs(np.mean(deviations)) < 0.5


def test_held_out_masses_spread_over_the_grid():
    masses = np.round(np.arange(0.175, 10.376, 0.05), 6)
    held = held_out_masses(masses, 22)
    assert len(held) == 22 and held[0] > masses[0] and held[-1] < masses[-1]
    assert np.all(np.diff(held) > 0.3)
    with pytest.raises(BumphuntError, match="cannot hold out 8 of 10"):
        held_out_masses(masses[:10], 8)


@pytest.fixture(scope="module")
def shape_stage(tmp_path_factory):
    """The default mass grid at 4,000 events per mass: simulate, kinematic fit, shapes."""
    from bumphunt.kinfit import run_kinfit
    from bumphunt.simulate import simulate

    tmp_path = tmp_path_factory.mktemp("shapes")
    config = small_config(
        tmp_path,
        **{
            "simulation.signal.masses": {"start": 0.175, "stop": 10.375, "step": 0.05},
            "simulation.signal.events_per_mass": 4000,
            "simulation.chunk_size": 200_000,
            "simulation.workers": 2,
        },
    )
    simulate(config, samples=["alp"], progress=False)
    run_kinfit(config, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no mass may fail on the default grid
        summary = run_shapes(config, progress=False)
    return config, summary


def test_every_mass_is_fitted_and_the_output_is_complete(shape_stage):
    config, summary = shape_stage
    model = summary.model
    assert len(model.fits) == 205 and all(fit.ok for fit in model.fits)
    assert len(model.held_out) == 22
    assert {p.name for p in summary.plots} == {"shape_parameters.png", "shape_fits.pdf"}
    assert all(p.stat().st_size > 10_000 for p in summary.plots)
    data = json.loads(summary.path.read_text())
    assert data["format"] == "bumphunt-signal-shapes" and data["version"] == 1
    reloaded = ShapeModel.load(summary.path)
    for mass in (0.3, 4.321, 9.7):
        assert reloaded.shape(mass) == model.shape(mass)


def test_interpolation_generalises_to_held_out_masses(shape_stage):
    _, summary = shape_stage
    checks = summary.model.validation["summary"]
    assert checks["n_held_out_fitted"] == 22
    assert checks["mu_within_2_errors"] >= 0.9
    assert checks["sigma_within_2_errors"] >= 0.9
    assert checks["gof_pvalue_above_0.01"] >= 0.9


def test_resolution_matches_the_kinematic_fit(shape_stage):
    """The interpolated DSCB width follows the core width of the fitted diphoton mass."""
    from bumphunt.kinfit import truth_matched_pairs
    from bumphunt.ntuple import read_ntuple

    config, summary = shape_stage
    data = read_ntuple(summary.model.settings["source"], ["gen_mass", "photon_origin", "m_gg_fit", "fit_status"])
    for mass in (0.475, 1.025, 3.025, 6.025, 9.025):
        at_mass = (data["gen_mass"] == mass) & (data["fit_status"] == 0)
        matched = truth_matched_pairs(data["photon_origin"][at_mass])
        width = gaussian_core_width(data["m_gg_fit"][at_mass][matched])
        # two estimators of the core of a non-Gaussian peak: they agree to a few per cent
        assert summary.model.resolution(mass) == pytest.approx(width, rel=0.1), mass


def test_load_rejects_foreign_files(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(BumphuntError, match="cannot read signal shapes"):
        ShapeModel.load(path)
    path.write_text("{not json")
    with pytest.raises(BumphuntError, match="not a JSON file"):
        ShapeModel.load(path)
    path.write_text(json.dumps({"format": "something"}))
    with pytest.raises(BumphuntError, match="not a bumphunt signal-shape file"):
        ShapeModel.load(path)
    path.write_text(json.dumps({"format": "bumphunt-signal-shapes", "version": 99}))
    with pytest.raises(BumphuntError, match="format version 99"):
        ShapeModel.load(path)


def test_mass_fit_serialises():
    fit = MassFit(1.0, "ok", 100, values={"mu": 1.0}, errors={"mu": math.nan})
    assert MassFit(**json.loads(json.dumps(fit.__dict__))).values == {"mu": 1.0}
