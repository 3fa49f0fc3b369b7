"""The zfit model of a mass hypothesis is the scan's numba likelihood: density, -log L, fit,
the shape parameters as functions of the mass, and hepstats limits next to bumphunt's."""

import math
import time

import numpy as np
import pytest
from numpy.testing import assert_allclose

from bumphunt.errors import BumphuntError
from bumphunt.models import dscb
from bumphunt.scan import window_shape
from bumphunt.stats import HypothesisLikelihood, background_density, cls_from_q, hypothesis_data
from bumphunt.stats.hypotest import evaluate_hypothesis

from .bad_inputs import pattern
from .helpers import synthetic_shape_model

zfit = pytest.importorskip("zfit")
zh = pytest.importorskip("bumphunt.models.zfit_hypothesis")

MASSES = (0.5, 2.0, 5.0, 7.45, 9.0)  # 0.5: window cut at the floor; 7.45: endpoint inside; 9.0: beyond it
FLOOR = 0.45
BACKGROUND = np.array([-0.3, 0.1, 0.02])  # c_1..c_3


@pytest.fixture(scope="module")
def model():
    return synthetic_shape_model()


def pseudo_data(shape, n_sig: int, n_bkg: int, seed: int) -> np.ndarray:
    """Signal from the shape's CDF on a fine grid plus the Chebyshev background, by inversion."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(shape.lower, shape.upper, 20001)
    samples = []
    background = background_density(grid, BACKGROUND, shape.lower, shape.upper)
    for density, n in ((shape.pdf(grid), n_sig), (background, n_bkg)):
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
        samples.append(np.interp(rng.uniform(0.0, cdf[-1], n), cdf, grid))
    return np.concatenate(samples)


@pytest.fixture(scope="module")
def hypotheses(model):
    return {mass: zh.zfit_hypothesis(model, mass, window_floor=FLOOR, n_sig=50.0, n_bkg=2000.0) for mass in MASSES}


def test_window_is_the_scans(model, hypotheses):
    settings = {"window_sigmas": 20.0, "window_floor": FLOOR}
    for mass, hypothesis in hypotheses.items():
        assert hypothesis.shape == window_shape(model, mass, settings)
    assert hypotheses[0.5].shape.lower == FLOOR


@pytest.mark.parametrize("mass", MASSES)
def test_density_equals_numba(hypotheses, mass):
    hypothesis = hypotheses[mass]
    shape = hypothesis.shape
    hypothesis.set_values([50.0, 2000.0, *BACKGROUND])
    x = np.random.default_rng(11).uniform(shape.lower, shape.upper, 1000)
    assert_allclose(np.asarray(hypothesis.signal.pdf(x)), shape.pdf(x), rtol=1e-8, atol=0)
    numba = (50.0 * shape.pdf(x) + 2000.0 * background_density(x, BACKGROUND, shape.lower, shape.upper)) / 2050.0
    assert_allclose(np.asarray(hypothesis.model.pdf(x)), numba, rtol=1e-8, atol=0)


@pytest.mark.parametrize("mass", MASSES)
def test_nll_equals_numba(hypotheses, mass):
    hypothesis = hypotheses[mass]
    x = pseudo_data(hypothesis.shape, 60, 3000, seed=int(mass * 100))
    likelihood = HypothesisLikelihood(hypothesis_data(x, hypothesis.shape, order=3))
    loss = hypothesis.loss(x)
    for values in ([60.0, 3000.0, *BACKGROUND], [-20.0, 2900.0, -0.25, 0.05, 0.0], [150.0, 3100.0, -0.35, 0.12, 0.03]):
        hypothesis.set_values(values)
        assert zh.full_nll(loss) == pytest.approx(likelihood.nll(np.array(values)), rel=1e-8)


def test_minuit_fit_gives_the_scans_n_sig(model):
    mass = 7.45
    hypothesis = zh.zfit_hypothesis(model, mass, window_floor=FLOOR, prefix="fit_")
    x = pseudo_data(hypothesis.shape, 120, 4000, seed=21)
    scan_fit = HypothesisLikelihood(hypothesis_data(x, hypothesis.shape, order=3)).fit(errors=True)
    hypothesis.set_values([0.0, len(x), 0.0, 0.0, 0.0])
    result = zfit.minimize.Minuit(tol=1e-6).minimize(hypothesis.loss(x))
    assert result.valid
    error = scan_fit.errors[0]
    assert abs(float(hypothesis.n_sig.value()) - scan_fit.n_sig) < 1e-3 * error
    assert float(result.hesse()[hypothesis.n_sig]["error"]) == pytest.approx(error, rel=1e-2)


SOURCES = [
    {"name": "lumi", "type": "normalisation", "size": 0.1},
    {"name": "eff", "type": "normalisation", "size": 0.2, "constraint": "gaussian"},
    {"name": "scale", "type": "peak_position", "size": 0.002},
    {"name": "res", "type": "peak_width", "size": 0.1},
    {"name": "interp", "type": "shape_interpolation", "size": 1.0},
]


def test_systematics_give_the_scans_constrained_likelihood(model):
    """The same sources in zfit (thetas, GaussianConstraints, the morphed signal) and in the
    scan: density and -log L equal at thetas inside and beyond +-1, and the same fit."""
    from bumphunt.stats import Systematics, nuisances_at

    model.interpolation_table = {"masses": [0.3, 9.5], "position": [0.001, 0.002], "width": [0.03, 0.05]}
    hypothesis = zh.zfit_hypothesis(model, 2.0, order=2, systematics=SOURCES, prefix="syst_")
    shape = hypothesis.shape
    nuisances = nuisances_at(Systematics.from_config({"sources": SOURCES}), shape, 2.0, model.interpolation_errors)
    assert [p.name for p in hypothesis.thetas] == [f"syst_theta_{name}" for name in nuisances.names]
    x = pseudo_data(shape, 150, 4000, seed=5)
    likelihood = HypothesisLikelihood(hypothesis_data(x, shape, order=2, nuisances=nuisances))
    loss = hypothesis.loss(x)
    grid = np.linspace(shape.lower, shape.upper, 500)
    for values in ([40.0, 4100.0, -0.3, 0.1, 0.3, -0.5, 0.7, -0.4, 1.5, 0.2],
                   [-20.0, 4200.0, -0.2, 0.05, -1.2, 0.3, -0.2, 1.0, -1.0, -2.0]):  # fmt: skip
        hypothesis.set_values(values)
        thetas = np.array(values[4:])
        expected = values[0] * nuisances.signal_factor(thetas) * nuisances.signal_density(grid, shape.pdf(grid), thetas)
        expected += values[1] * background_density(grid, np.array(values[2:4]), shape.lower, shape.upper)
        assert_allclose(np.asarray(hypothesis.model.ext_pdf(grid)), expected, rtol=1e-8)
        assert zh.full_nll(loss) == pytest.approx(likelihood.nll(np.array(values)), rel=1e-8)
    scan_fit = likelihood.fit(errors=True)
    hypothesis.set_values([0.0, len(x), 0.0, 0.0] + [0.0] * len(nuisances))
    result = zfit.minimize.Minuit(tol=1e-6).minimize(loss)
    assert result.valid
    # n_sig and the two normalisations are tied by their constraints only: a shallow valley,
    # where both minimisers stop within their tolerances
    assert abs(float(hypothesis.n_sig.value()) - scan_fit.n_sig) < 1e-2 * scan_fit.errors[0]
    assert zh.full_nll(loss) == pytest.approx(scan_fit.nll, abs=1e-3)


@pytest.mark.slow  # zfit integrates the model over every bin: ~1 minute
def test_binned_loss_fits_like_the_unbinned(model):
    hypothesis = zh.zfit_hypothesis(model, 2.0, prefix="binned_")
    x = pseudo_data(hypothesis.shape, 150, 5000, seed=22)
    scan_fit = HypothesisLikelihood(hypothesis_data(x, hypothesis.shape, order=3)).fit(errors=True)
    hypothesis.set_values([0.0, len(x), 0.0, 0.0, 0.0])
    result = zfit.minimize.Minuit(tol=1e-5).minimize(hypothesis.binned_loss(x, bins=400))
    assert result.valid
    # 400 bins of 0.13 GeV / 400 = a third of the peak width: a tenth of an error from the unbinned fit
    assert abs(float(hypothesis.n_sig.value()) - scan_fit.n_sig) < 0.1 * scan_fit.errors[0]


def test_composed_parameters_are_the_splines(model):
    hypothesis = zh.zfit_hypothesis(model, 5.0, prefix="spl_")
    unfloored = model.shape(5.0)
    params, splines = hypothesis.shape_parameters, model.splines
    for mass in np.linspace(0.3, 9.5, 20):
        hypothesis.mass.set_value(mass)
        assert float(params["mu"].value()) == pytest.approx(mass + float(splines["mu_offset"](mass)), rel=1e-10)
        for name in ("sigma", "alpha_l", "alpha_r", "gauss_fraction", "gauss_ratio", "c1"):
            assert float(params[name].value()) == pytest.approx(float(splines[name](mass)), rel=1e-10), name
        # f counts the wrong pairings in the hypothesis window, below the endpoint at this mass
        edge = math.sqrt(10.58**2 - mass**2)
        if (unfloored.lower - edge) < 3.0 * math.sqrt(2.0) * 0.05:
            k0, k1 = dscb.edge_integrals(unfloored.lower, unfloored.upper, edge, 0.05)
            density, c1 = float(splines["combinatorial_density"](mass)), float(splines["c1"](mass))
            expected = 1.0 / (1.0 + density * (k0 + c1 * k1))
        else:
            expected = 1.0
        assert float(params["fraction"].value()) == pytest.approx(expected, rel=1e-10)
    hypothesis.mass.set_value(5.0)
    assert float(params["fraction"].value()) == pytest.approx(unfloored.fraction, rel=1e-10)


def test_floating_mass_moves_the_peak(model):
    hypothesis = zh.zfit_hypothesis(model, 3.0, prefix="float_")
    hypothesis.mass.floating = True
    x = pseudo_data(model.shape(3.02).with_window(hypothesis.shape.lower, hypothesis.shape.upper), 400, 2000, seed=5)
    hypothesis.set_values([300.0, 2000.0, 0.0, 0.0, 0.0])
    result = zfit.minimize.Minuit().minimize(hypothesis.loss(x))
    assert result.valid and float(hypothesis.mass.value()) == pytest.approx(3.02, abs=0.003)


def test_bad_input_is_refused(model):
    with pytest.raises(BumphuntError, match=r"mass 12 GeV is outside the signal model's mass range \(0.3-9.5 GeV\)"):
        zh.zfit_hypothesis(model, 12.0)
    with pytest.raises(BumphuntError, match=pattern("zfit-order", value=-1)):
        zh.zfit_hypothesis(model, 2.0, order=-1)


@pytest.mark.slow  # hepstats takes ~10 s for one mass point (bumphunt: 20 ms)
def test_hepstats_cls_agrees_with_bumphunt(model):
    """hepstats' asymptotic CLs on the zfit model against bumphunt's; hepstats builds its Asimov
    data set as the PDF at bin centres (its path for unbinned losses without a binned
    conversion), as bumphunt does: ~10 s instead of ~145 s through zfit's binned model, the
    same CLs within 0.2 % (docs/zfit.md)."""
    pytest.importorskip("hepstats", reason="hepstats is optional: pip install 'bumphunt[hepstats]'")
    from hepstats.hypotests import UpperLimit
    from hepstats.hypotests.calculators import AsymptoticCalculator
    from hepstats.hypotests.parameters import POI, POIarray

    class UnbinnedAsimovCalculator(AsymptoticCalculator):
        UNBINNED_TO_BINNED_LOSS = {}  # no conversion to zfit's binned loss for the Asimov data

    mass = 2.0
    hypothesis = zh.zfit_hypothesis(model, mass, prefix="hs_")
    x = pseudo_data(hypothesis.shape, 40, 3000, seed=31)
    data = hypothesis_data(x, hypothesis.shape, order=3)
    start = time.perf_counter()
    ours = evaluate_hypothesis(data)
    our_time = time.perf_counter() - start

    # bumphunt's CLs(mu) on a grid, as evaluate_hypothesis computes it
    likelihood = HypothesisLikelihood(data)
    free = likelihood.fit(errors=True)
    null = likelihood.fit(n_sig=0.0, start=free.values, steps=free.errors)
    asimov = likelihood.asimov(null)
    asimov_best = asimov.nll(null.values)
    reference = free if free.n_sig >= 0 else null

    def our_cls(mu):
        q = 0.0 if free.n_sig > mu else max(2 * (likelihood.fit(n_sig=mu, start=free.values).nll - reference.nll), 0)
        q_a = max(2 * (asimov.fit(n_sig=mu, start=null.values).nll - asimov_best), 0)
        return cls_from_q(q, q_a)

    grid = np.linspace(0.2, 1.6, 15) * ours.upper_limit
    start = time.perf_counter()
    hypothesis.set_values(free.values)
    loss = hypothesis.loss(x)
    calculator = UnbinnedAsimovCalculator(loss, zfit.minimize.Minuit(), asimov_bins=500)
    limit = UpperLimit(calculator, POIarray(hypothesis.n_sig, grid), POI(hypothesis.n_sig, 0.0), qtilde=True)
    pvalues = limit.pvalues(CLs=True)
    theirs = pvalues["cls"]
    their_time = time.perf_counter() - start
    mine = np.array([our_cls(mu) for mu in grid])
    relevant = mine > 0.01
    assert relevant.sum() >= 8
    assert_allclose(theirs[relevant], mine[relevant], rtol=0.02)
    crossing = np.interp(-0.05, -theirs, grid)  # CLs falls with mu
    assert crossing == pytest.approx(ours.upper_limit, rel=0.02)
    print(f"\nhepstats: {their_time:.2f} s per mass point, bumphunt: {our_time * 1e3:.1f} ms; "
          f"max |CLs ratio - 1| {np.max(np.abs(theirs[relevant] / mine[relevant] - 1)):.2e}, "
          f"limit {crossing:.3f} vs {ours.upper_limit:.3f}")  # fmt: skip
