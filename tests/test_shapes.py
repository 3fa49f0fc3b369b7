"""Signal shapes: the densities, the per-mass fits, the interpolation and its held-out test."""

import json
import logging
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats

from bumphunt.errors import BumphuntError
from bumphunt.models import MassFit, ShapeModel, SignalShape, dscb
from bumphunt.models.signal import wrong_pair_endpoint
from bumphunt.models.splines import ParameterSpline
from bumphunt.models.zfit_pdfs import zfit_signal_pdf
from bumphunt.shapes import (
    build_shape_model,
    core_width,
    fit_mass,
    held_out_masses,
    measure_endpoint_edge,
    smooth,
)
from bumphunt.shapes.splinefit import PeakData, peak_nll_all

from .bad_inputs import pattern

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


@pytest.mark.slow
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


# mu, sigma, alpha_l, alpha_r, gauss fraction, gauss sigma, c1, fraction, edge, edge width, lower, upper
SIGNAL_SHAPES = [
    (7.40, 0.014, 1.5, 1.6, 0.2, 0.03, 0.15, 0.8, 7.50, 0.047, 7.10, 7.70),  # endpoint inside the window
    (7.30, 0.014, 1.2, 2.0, 0.1, 0.05, -0.3, 0.75, 7.66, 0.047, 7.00, 7.60),  # endpoint just above it
    (7.60, 0.014, 1.5, 1.5, 0.5, 0.02, 0.9, 0.95, 7.30, 0.047, 7.30, 7.90),  # window starts at the endpoint
    (2.00, 0.012, 2.0, 1.8, 0.0, math.nan, 0.4, 0.9, math.inf, math.nan, 1.76, 2.24),  # the plain model
]


def _signal_shape(mu, sigma, alpha_l, alpha_r, g, gauss_sigma, c1, fraction, edge, edge_width, lower, upper):
    return SignalShape(mu, sigma, sigma, alpha_l, 10.0, alpha_r, 10.0, fraction, c1, lower, upper, g, gauss_sigma,
                       edge, edge_width)  # fmt: skip


@pytest.mark.parametrize("parameters", SIGNAL_SHAPES)
def test_signal_densities_are_normalised_in_closed_form(parameters):
    shape = _signal_shape(*parameters)
    points = [shape.mu] + ([shape.edge] if shape.lower < shape.edge < shape.upper else [])
    for density in (shape.peak_pdf, shape.combinatorial_pdf, shape.pdf):

        def scalar(x, density=density):
            return density(x)[0]

        area = integrate.quad(scalar, shape.lower, shape.upper, points=points, limit=400, epsabs=1e-13, epsrel=1e-12)[0]
        assert area == pytest.approx(1.0, rel=1e-9)
    # the binned likelihood of the peak fits (bumphunt.shapes.splinefit) uses the same density
    x = np.random.default_rng(7).uniform(shape.lower, shape.upper, 3000)
    data = PeakData.from_candidates({shape.mu: x}, {shape.mu: (shape.lower, shape.upper)}, bins=50)
    gauss_sigma = shape.gauss_sigma if shape.gauss_fraction else 1.0
    row = [[shape.mu, shape.sigma_l, shape.sigma_r, shape.alpha_l, shape.alpha_r, shape.gauss_fraction, gauss_sigma]]
    nll = peak_nll_all(np.array(row), data.lower, data.upper, data.offsets, data.centres, data.counts, 10.0, 10.0)
    assert nll == pytest.approx(-np.sum(data.counts * np.log(shape.peak_pdf(data.centres))), rel=1e-12)


@pytest.mark.parametrize("parameters", SIGNAL_SHAPES)
def test_signal_model_equals_zfit(parameters):
    zfit = pytest.importorskip("zfit")
    shape = _signal_shape(*parameters)
    pdf = zfit_signal_pdf(shape)
    x = np.random.default_rng(8).uniform(shape.lower, shape.upper, 400)
    assert isinstance(pdf, zfit.pdf.SumPDF)
    # the endpoint's integral is in closed form in zfit too: agreement to rounding
    assert_allclose(np.asarray(pdf.pdf(x)), shape.pdf(x), rtol=1e-12)


@pytest.mark.parametrize("parameters", SIGNAL_SHAPES)
def test_signal_model_equals_roofit(parameters):
    ROOT = pytest.importorskip("ROOT", reason="the optional root package is not installed")
    from bumphunt.contrib.roostats import roofit_signal_pdf

    shape = _signal_shape(*parameters)
    mass = ROOT.RooRealVar("m_gg", "m_gg", shape.lower, shape.upper)
    pdf, _keep = roofit_signal_pdf(shape, mass)
    norm = ROOT.RooArgSet(mass)
    for value in np.linspace(shape.lower, shape.upper, 200):
        mass.setVal(value)
        # RooFit integrates the endpoint numerically (relative precision 1e-7)
        assert pdf.getVal(norm) == pytest.approx(shape.pdf(value)[0], rel=1e-6)


def _sample_edge(rng, n, c1, edge, width, lower, upper):
    """Wrong-pairing masses from (1 + c1 x') erfc((x - edge) / (sqrt(2) width)) / 2, by rejection."""
    out = np.empty(0)
    while len(out) < n:
        x = rng.uniform(lower, upper, 4 * n)
        density = (1 + c1 * (2 * (x - lower) / (upper - lower) - 1)) * dscb.edge_factor(x, edge, width)
        out = np.r_[out, x[rng.uniform(0, 1 + abs(c1), len(x)) < density]]
    return out[:n]


def test_endpoint_smearing_is_measured():
    """Wrong pairings ending at sqrt(s - m^2) + shift, smeared by width: both recovered."""
    sqrt_s, shift, width, sigma = 10.5739, -0.007, 0.047, 0.014
    rng = np.random.default_rng(9)
    grouped = {}
    for mass in (7.35, 7.40, 7.45, 7.50, 7.55):
        edge = wrong_pair_endpoint(mass, sqrt_s) + shift
        peak = rng.normal(mass, sigma, 6000)
        wrong = _sample_edge(rng, 3000, 0.2, edge, width, mass - 0.5, mass + 0.5)
        candidates = np.column_stack([peak, np.r_[wrong, np.full(3000, np.nan)]])
        grouped[mass] = (candidates, np.column_stack([np.ones(6000, bool), np.zeros(6000, bool)]))
    measured = measure_endpoint_edge(grouped, sqrt_s, 20.0)
    assert len(measured["masses"]) == 5
    assert measured["shift"] == pytest.approx(shift, abs=3 * measured["shift_error"])
    assert measured["width"] == pytest.approx(width, abs=3 * measured["width_error"])
    assert measured["width_error"] < 0.1 * width


def test_no_wrong_pairings_beyond_the_endpoint():
    """Above m = sqrt(s/2) the endpoint leaves the window: f = 1, nothing to fit."""
    rng = np.random.default_rng(10)
    mass, sqrt_s = 8.5, 10.5739
    peak = rng.normal(mass, 0.014, 4000)
    wrong = rng.uniform(3.0, wrong_pair_endpoint(mass, sqrt_s), 4000)  # all far below the window
    candidates = np.column_stack([peak, wrong])
    matched = np.column_stack([np.ones(4000, bool), np.zeros(4000, bool)])
    fit = fit_mass(mass, candidates, matched, 4000, sqrt_s=sqrt_s, edge_width=0.047)
    assert fit.ok and not fit.wrong_in_window and fit.values["fraction"] == 1.0
    assert fit.n_candidates == fit.n_matched == 4000
    below = fit_mass(7.0, np.column_stack([rng.normal(7.0, 0.014, 4000), rng.uniform(6.7, 7.3, 4000)]), matched,
                     4000, sqrt_s=sqrt_s, edge_width=0.047)  # fmt: skip
    assert below.ok and below.wrong_in_window and below.values["fraction"] == pytest.approx(0.5, abs=0.02)


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


@pytest.mark.slow
def test_numba_and_zfit_engines_agree():
    pytest.importorskip("zfit")
    shape = (7.45, 0.012, 0.012, 1.5, 10.0, 2.0, 10.0)
    rng = np.random.default_rng(4)
    window = (7.45 - 0.3, 7.45 + 0.3)
    peak = np.r_[_sample_dscb(rng, 6000, shape, *window), rng.normal(7.45, 0.03, 1500)]
    edge = wrong_pair_endpoint(7.45, 10.5739)
    wrong = _sample_edge(rng, 1500, 0.2, edge, 0.04, *window)
    candidates = np.column_stack([peak, np.r_[wrong, np.full(6000, np.nan)], np.full(7500, np.nan)])
    matched = np.zeros_like(candidates, dtype=bool)
    matched[:, 0] = True
    options = dict(second_gaussian=True, sqrt_s=10.5739, edge_width=0.04)
    fast = fit_mass(7.45, candidates, matched, 7500, engine="numba", **options)
    reference = fit_mass(7.45, candidates, matched, 7500, engine="zfit", **options)
    assert fast.ok and reference.ok and fast.wrong_in_window
    # the compiled peak fit is binned in 0.01 core widths, zfit's unbinned: the same estimates
    for name in ("mu", "sigma", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio", "fraction", "c1", "resolution"):
        assert abs(fast.values[name] - reference.values[name]) < 0.05 * fast.errors[name], name
    # and the same errors of what the data determine (position, width, fractions); how the peak
    # splits into DSCB and Gaussian is near-degenerate, and HESSE's errors along it differ by ~10 %
    for name in ("mu", "resolution", "fraction", "c1"):
        assert fast.errors[name] == pytest.approx(reference.errors[name], rel=0.05), name
    for name in ("sigma", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio"):
        assert fast.errors[name] == pytest.approx(reference.errors[name], rel=0.2), name


def test_the_plain_dscb_fit_with_the_gaussian_fixed_out_agrees_between_engines():
    """The fallback of a peak without a second Gaussian: its fraction fixed at 0, its width
    fixed; both engines give the plain DSCB fit, and no error for the fixed parameters."""
    pytest.importorskip("zfit")
    from bumphunt.shapes.engines import ENGINES

    shape = (2.0, 0.012, 0.012, 1.8, 10.0, 1.6, 10.0)
    window = (2.0 - 0.12, 2.0 + 0.12)
    x = _sample_dscb(np.random.default_rng(8), 8000, shape, *window)
    start = {"mu": 2.0, "sigma": 0.011, "alpha_l": 1.5, "alpha_r": 1.5, "gauss_fraction": 0.0, "gauss_ratio": 1.8}
    fixed = ("gauss_fraction", "gauss_ratio")
    fits = {name: ENGINES[name][0](x, start, *window, 10.0, 10.0, 0.012, fixed=fixed) for name in ("numba", "zfit")}
    for fit in fits.values():
        assert fit.valid and fit.values["gauss_fraction"] == 0.0 and math.isnan(fit.errors["gauss_ratio"])
        assert fit.values["sigma"] == pytest.approx(0.012, abs=3 * fit.errors["sigma"])
        assert fit.covariance.shape == (6, 6) and np.all(fit.covariance[4:] == 0.0)
    for name in ("mu", "sigma", "alpha_l", "alpha_r"):
        assert abs(fits["numba"].values[name] - fits["zfit"].values[name]) < 0.05 * fits["numba"].errors[name], name


def test_too_few_candidates_are_flagged_and_excluded_with_a_warning(caplog):
    masses = np.arange(1.0, 3.01, 0.25)
    rng = np.random.default_rng(5)
    fits, truth = [], {}
    for mass in masses:
        n = 50 if mass == 2.0 else 3000
        truth[mass] = x = rng.normal(mass, 0.01, n)
        candidates = np.column_stack([x, np.full(n, np.nan), np.full(n, np.nan)])
        matched = np.zeros_like(candidates, dtype=bool)
        matched[:, 0] = True
        fits.append(fit_mass(mass, candidates, matched, 3000, n_l=10.0, n_r=10.0))
    assert [f.ok for f in fits].count(False) == 1
    assert "too few truth-matched candidates (50)" in fits[4].status
    settings = {"peak": "doublecb", "n_l": 10.0, "n_r": 10.0, "window_sigmas": 20.0}
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        model = build_shape_model(fits, np.array([]), settings, truth)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "m = 2.0000 GeV excluded from the interpolation: too few" in caplog.records[0].getMessage()
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
def shape_stage(default_shapes):
    """The default signal sample (205 masses, 20,000 events each): simulated, fitted, selected
    by the Punzi-net, shapes."""
    return default_shapes


@pytest.mark.slow
def test_every_mass_is_fitted_and_the_output_is_complete(shape_stage):
    config, summary, messages = shape_stage
    model = summary.model
    assert len(model.fits) == 205
    # every excluded or failed mass is left out with a warning; inside the scan range the model
    # holds: a fit fails nowhere, and the masses below the 0.001 goodness-of-fit threshold are
    # as few as chance gives a correct model
    failed = [f.mass for f in model.fits if not f.ok]
    excluded = [f.mass for f in model.fits if f.ok and f.chi2_pvalue < model.settings["min_fit_pvalue"]]
    in_range = sum(f.mass < 9.8 for f in model.fits)
    allowed = stats.binom.isf(1e-3, in_range, model.settings["min_fit_pvalue"])  # P(more) < 1e-3
    assert not [m for m in failed if m < 9.8]
    assert sum(m < 9.8 for m in excluded) <= allowed
    assert len(messages) == len(excluded) + len(failed)
    assert sum("does not describe it" in m for m in messages) == len(excluded)
    assert model.validation["peak_fit"]["valid"]
    assert len(model.held_out) == 22
    assert {p.name for p in summary.plots} == {"shape_parameters.png", "shape_fits.pdf"}
    assert all(p.stat().st_size > 10_000 for p in summary.plots)
    data = json.loads(summary.path.read_text())
    assert data["format"] == "bumphunt-signal-shapes" and data["version"] == 2
    reloaded = ShapeModel.load(summary.path)
    for mass in (0.3, 4.321, 7.5, 9.7):
        assert reloaded.shape(mass) == model.shape(mass)


@pytest.mark.slow
def test_truth_matched_fraction_steps_to_one_past_the_endpoint(shape_stage):
    _, summary, _ = shape_stage
    model = summary.model
    fractions = [model.shape(m).fraction for m in (7.0, 7.45, 7.6, 7.9, 8.5)]
    assert fractions[0] < fractions[1] < fractions[2] < 1.0 == fractions[3] == fractions[4]
    assert model.shape(7.45).lower < model.shape(7.45).edge < model.shape(7.45).upper


@pytest.mark.slow
def test_interpolation_generalises_to_held_out_masses(shape_stage):
    _, summary, _ = shape_stage
    checks = summary.model.validation["summary"]
    # every held-out mass the Punzi-net keeps is fitted; it rejects the ALPs above ~9.8 GeV,
    # heavier than it was trained on (docs/select.md)
    assert len(summary.model.held_out) == 22
    assert checks["n_held_out_fitted"] == sum(m < 9.8 for m in summary.model.held_out) >= 21
    assert checks["mu_within_2_errors"] >= 0.9
    assert checks["width_within_2_errors"] >= 0.9
    assert checks["gof_pvalue_above_0.01"] >= 0.9


@pytest.mark.slow
def test_resolution_matches_the_kinematic_fit(shape_stage):
    """The interpolated resolution (half-width of the central 68 % of the peak) equals the same
    estimator applied to the truth-matched fitted diphoton masses."""
    from bumphunt.cuts import branches_used, evaluate_cut
    from bumphunt.layout import OutputLayout
    from bumphunt.ntuple import read_ntuple, truth_matched_pairs

    config, summary, _ = shape_stage
    selection = summary.model.settings["selection"]
    friends = OutputLayout.from_config(config).friends("alp", branches_used(selection))
    data = read_ntuple(summary.model.settings["source"], sorted({"gen_mass", "photon_origin", "m_gg_fit"} |
                                                                branches_used(selection)), friends=friends)  # fmt: skip
    selected = evaluate_cut(selection, data, len(data["gen_mass"]))
    for mass in (0.475, 1.025, 3.025, 6.025, 9.025):
        at_mass = (data["gen_mass"] == mass) & selected
        matched = truth_matched_pairs(data["photon_origin"][at_mass])
        width = core_width(data["m_gg_fit"][at_mass][matched])
        # 6,000-11,000 selected candidates: the sample's own width is known to 1-1.5 %
        assert summary.model.resolution(mass) == pytest.approx(width, rel=0.03), mass


@pytest.mark.slow
def test_example_writes_the_documented_tables_and_figures(shape_stage, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    _, summary, _ = shape_stage
    script = Path(__file__).parents[1] / "examples" / "signal_shapes.py"
    args = [sys.executable, str(script), "--shapes", str(summary.path), "--figures", str(tmp_path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == summary.model.validation["summary"]["n_held_out_fitted"] >= 21
    assert {p.name for p in tmp_path.iterdir()} == {"shape_parameters.png", "shape_fit_7475.png", "shape_fit_7275.png"}


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


def _sound_shapes(tmp_path):
    """A small signal model of constant parameters, written as the shape stage writes one."""

    def constant(value, transform="none"):
        return ParameterSpline((0.2,) * 4 + (3.0,) * 4, (value,) * 4, 3, (0.2, 3.0), transform)

    splines = {
        "mu_offset": constant(0.0),
        "sigma": constant(math.log(0.01), "log"),
        "alpha_l": constant(math.log(1.5), "log"),
        "alpha_r": constant(math.log(2.0), "log"),
        "gauss_fraction": constant(-1.0, "logit"),
        "gauss_ratio": constant(0.0, "log_minus_one"),
        "combinatorial_density": constant(0.0),
        "c1": constant(0.1),
        "efficiency": constant(0.8),
    }
    settings = {"mass_variable": "m_gg_fit", "selection": "fit_status == 0", "peak": "doublecb", "n_l": 10.0,
                "n_r": 10.0, "second_gaussian": True, "window_sigmas": 20.0, "sqrt_s": 10.58, "edge_shift": 0.0,
                "edge_width": math.nan}  # fmt: skip
    fits = [MassFit(1.0, "ok", 100, 90, 80, 0.8, 1.2, {"mu": 1.0}, {"mu": math.nan}, edge=math.inf)]
    path = ShapeModel(splines, settings, fits, [2.0], {"summary": {}}).save(tmp_path / "signal_shapes.json")
    return path, json.loads(path.read_text())


def test_broken_shape_files_are_refused_naming_the_entry(tmp_path):
    path, sound = _sound_shapes(tmp_path)
    assert ShapeModel.load(path).shape(1.0).sigma_l == pytest.approx(0.01)

    def refused(change, expected):
        document = json.loads(json.dumps(sound))
        change(document)
        path.write_text(json.dumps(document))
        with pytest.raises(BumphuntError, match=expected):
            ShapeModel.load(path)

    def missing(entry):
        return pattern("shapes-missing-key", path=path, entry=entry)

    def wrong_type(entry, expected, found):
        return pattern("shapes-wrong-type", path=path, entry=entry, expected=expected, found=found)

    def out_of_range(entry, value, limit):
        return pattern("shapes-out-of-range", path=path, entry=entry, value=value, limit=limit)

    refused(lambda d: d.pop("parameters"), missing("parameters"))
    refused(lambda d: d["settings"].pop("n_l"), missing("settings.n_l"))
    refused(lambda d: d["parameters"].pop("c1"), missing("parameters.c1"))
    refused(lambda d: d["parameters"]["sigma"].pop("knots"), missing("parameters.sigma.knots"))
    refused(lambda d: d["fits"][0].pop("mass"), missing("fits[0].mass"))
    refused(lambda d: d["settings"].update(n_l="10"), wrong_type("settings.n_l", "a number", "a string"))
    refused(lambda d: d.update(parameters=[]), wrong_type("parameters", "an object", "an array"))
    refused(
        lambda d: d["parameters"]["efficiency"]["coefficients"].__setitem__(2, None),
        wrong_type("parameters.efficiency.coefficients[2]", "a number", "null"),
    )
    for spline, key in (("sigma", "coefficients"), ("c1", "knots")):
        refused(
            lambda d, spline=spline, key=key: d["parameters"][spline].update({key: []}),
            pattern("shapes-empty-spline", path=path, entry=f"parameters.{spline}.{key}"),
        )
    refused(
        lambda d: d["parameters"]["sigma"].update(knots=[0.2, 0.2, 0.2, 0.2, 3.0, 3.0]),
        pattern(
            "shapes-spline-inconsistent",
            path=path,
            entry="parameters.sigma",
            knots=6,
            coefficients=4,
            degree=3,
            needed=8,
        ),
    )
    refused(lambda d: d["settings"].update(edge_width=0.0), out_of_range("settings.edge_width", 0.0, 0))
    refused(lambda d: d["settings"].update(window_sigmas=-2), out_of_range("settings.window_sigmas", -2, 0))
    refused(lambda d: d["settings"].update(n_r=1), out_of_range("settings.n_r", 1, 1))
    refused(
        lambda d: d["parameters"]["sigma"].update(transform="none", coefficients=[-0.01] * 4),
        pattern("shapes-width-not-positive", path=path, entry="parameters.sigma.transform", transform="none"),
    )


def test_shape_file_checks_beyond_the_schema(tmp_path):
    path, sound = _sound_shapes(tmp_path)
    for change, problem in [
        (lambda d: d["parameters"]["alpha_l"]["coefficients"].__setitem__(1, math.nan),
         "'parameters.alpha_l.coefficients[1]' is nan, not a finite number"),
        (lambda d: d["settings"].update(window_sigmas=math.inf),
         "'settings.window_sigmas' is inf, not a finite number"),
        (lambda d: d["parameters"]["mu_offset"].update(knots=[0.2] * 4 + [3.0, 3.0, 3.0, 2.0]),
         "'parameters.mu_offset.knots' are not in increasing order"),
        (lambda d: d["parameters"]["c1"].update(mass_range=[3.0, 0.2]),
         "'parameters.c1.mass_range' runs from 3.0 down to 0.2"),
        (lambda d: d["parameters"]["c1"].update(knots=[0.2, 3.0], coefficients=[1.0]),
         "'parameters.c1' has 1 coefficient(s), a spline of degree 3 needs at least 4"),
        (lambda d: d["parameters"].update(sigma_l=d["parameters"].pop("sigma")),
         "missing key 'parameters.sigma_r' (needed with 'sigma_l')"),
        (lambda d: d["parameters"].pop("sigma"),
         "missing key 'parameters.sigma' (or 'parameters.sigma_l' and 'parameters.sigma_r')"),
        (lambda d: d["fits"][0].update(bogus=1), "unknown key 'fits[0].bogus'"),
    ]:  # fmt: skip
        document = json.loads(json.dumps(sound))
        change(document)
        path.write_text(json.dumps(document))
        with pytest.raises(BumphuntError) as error:
            ShapeModel.load(path)
        assert str(error.value) == f"{path}: broken signal-shape file: {problem}"


def test_shape_file_schema_lists_every_mass_fit_field():
    from dataclasses import fields
    from importlib import resources

    schema = json.loads(resources.files("bumphunt.schemas").joinpath("signal_shapes.schema.json").read_text())
    assert set(schema["$defs"]["mass_fit"]["properties"]) == {f.name for f in fields(MassFit)}
