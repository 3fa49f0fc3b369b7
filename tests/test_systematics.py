"""Systematic uncertainties as constrained nuisance parameters: the likelihood, its references
(pyhf) and the relations the profiled limits must obey."""

import math
import re

import numpy as np
import pytest

from bumphunt import stats
from bumphunt.config import load_config
from bumphunt.errors import ConfigError
from bumphunt.scan.data import Spectrum
from bumphunt.scan.impacts import impact_table
from bumphunt.scan.runner import evaluate_point
from bumphunt.stats.counting import CountingModel, counting_upper_limit
from bumphunt.stats.hypotest import evaluate_hypothesis
from bumphunt.stats.systematics import scaled_peak

from .bad_inputs import message, pattern
from .helpers import synthetic_shape_model

SCAN_SETTINGS = load_config()["scan"]


def _sources(*entries):
    return stats.Systematics.from_config({"sources": [dict(zip(("name", "type", "size", "constraint"), e))
                                                      for e in entries]})  # fmt: skip


def _interpolation_errors(mass):
    return 0.001, 0.03


@pytest.fixture(scope="module")
def model():
    shapes = synthetic_shape_model()
    masses = np.linspace(0.3, 9.5, 30)
    shapes.interpolation_table = {"masses": masses.tolist(), "position": [0.001] * 30, "width": [0.03] * 30}
    return shapes


@pytest.fixture(scope="module")
def spectrum(model):
    """Background falling across 1-3 GeV with 150 signal events at 2 GeV."""
    rng = np.random.default_rng(11)
    background = 1.0 + rng.exponential(1.5, 60_000)
    shape = model.windowed(2.0, window_sigmas=20)
    x = rng.uniform(shape.lower, shape.upper, 200_000)
    signal = x[rng.uniform(0, 1.01 * shape.pdf(x).max(), x.size) < shape.pdf(x)][:150]
    return Spectrum(np.sort(np.concatenate([background[background < 3.0], signal])))


def _point(spectrum, model, mass, sources):
    return evaluate_point(spectrum, model, mass, dict(SCAN_SETTINGS, systematics=sources))


def test_sources_of_zero_size_give_the_statistics_only_limits_exactly(spectrum, model):
    every_type = _sources(("lumi", "normalisation", 0.0, "lognormal"), ("eff", "normalisation", 0.0, "gaussian"),
                          ("scale", "peak_position", 0.0), ("res", "peak_width", [[1.0, 0.0], [3.0, 0.0]]),
                          ("interp", "shape_interpolation", 0.0))  # fmt: skip
    for mass in (1.5, 2.0, 2.5):
        plain = _point(spectrum, model, mass, [])
        assert plain["fit_status"] == "ok"
        assert _point(spectrum, model, mass, every_type) == plain
        assert _point(spectrum, model, mass, _sources(("lumi", "normalisation", 0.2)).scaled(0.0)) == plain
    # and sources of finite size do change them
    widened = _point(spectrum, model, 2.0, _sources(("lumi", "normalisation", 0.2)))
    assert widened["ul_exp"] > 1.01 * _point(spectrum, model, 2.0, [])["ul_exp"]


@pytest.mark.parametrize("constraint", ["lognormal", "gaussian"])
def test_normalisation_on_a_binned_shape_model_equals_pyhf(model, constraint):
    """Signal template + flat background with a free normalisation: pyhf's ``normsys``
    (exponential interpolation with lo = 1 / hi: log-normal) or ``lumi`` (Gaussian) against
    ours, asymptotic CLs, observed and every expected limit within 1 %."""
    pyhf = pytest.importorskip("pyhf")
    shape = model.windowed(2.0, window_sigmas=20)
    bins, size = 60, 0.2
    edges = np.linspace(shape.lower, shape.upper, bins + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    template = shape.pdf(centres) * (edges[1] - edges[0])
    counts = np.random.default_rng(3).poisson(2000.0 / bins + 30 * template).astype(float)
    nuisances = stats.nuisances_at(_sources(("norm", "normalisation", size, constraint)), shape, 2.0)
    ours = evaluate_hypothesis(stats.hypothesis_data(centres, shape, order=0, weights=counts, nuisances=nuisances))
    statistics_only = evaluate_hypothesis(stats.hypothesis_data(centres, shape, order=0, weights=counts))

    signal_modifiers = [{"name": "mu", "type": "normfactor", "data": None}]
    parameters = [{"name": "mu", "bounds": [[0, 500]]}, {"name": "nb", "bounds": [[0, 20000]], "inits": [2000]}]
    if constraint == "lognormal":
        signal_modifiers.append({"name": "norm", "type": "normsys", "data": {"hi": 1 + size, "lo": 1 / (1 + size)}})
    else:
        signal_modifiers.append({"name": "lumi", "type": "lumi", "data": None})
        parameters.append({"name": "lumi", "auxdata": [1.0], "sigmas": [size], "bounds": [[0.01, 3.0]], "inits": [1.0]})
    samples = [
        {"name": "signal", "data": list(template / template.sum()), "modifiers": signal_modifiers},
        {"name": "background", "data": [1.0 / bins] * bins,
         "modifiers": [{"name": "nb", "type": "normfactor", "data": None}]},
    ]  # fmt: skip
    workspace = pyhf.Workspace({
        "channels": [{"name": "window", "samples": samples}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": parameters}}],
        "observations": [{"name": "window", "data": list(counts)}], "version": "1.0.0",
    })  # fmt: skip
    pyhf_model = workspace.model()
    observed, expected = pyhf.infer.intervals.upper_limits.upper_limit(
        workspace.data(pyhf_model), pyhf_model, scan=None, level=0.05, rtol=1e-6
    )
    assert ours.upper_limit == pytest.approx(float(observed), rel=0.01)
    for band, value in zip(stats.BANDS, expected):
        assert ours.expected[band] == pytest.approx(float(value), rel=0.01)
    assert ours.upper_limit > 1.05 * statistics_only.upper_limit  # a 20 % normalisation matters here


@pytest.mark.parametrize(("n", "b"), [(12, 10.0), (130, 120.0), (5, 8.0)])
def test_normalisation_on_a_single_bin_equals_pyhf_normsys(n, b):
    """The counting experiment takes the normalisation sources as one Poisson-constrained
    signal scale (pyhf's shapesys form); against pyhf's ``normsys`` (log-normal) on one bin."""
    pyhf = pytest.importorskip("pyhf")
    for size in (0.0067, 0.05, 0.1):
        ours = counting_upper_limit(CountingModel(n, b, efficiency_uncertainty=size), method="asymptotic")
        modifiers = [{"name": "mu", "type": "normfactor", "data": None},
                     {"name": "eff", "type": "normsys", "data": {"hi": 1 + size, "lo": 1 / (1 + size)}}]  # fmt: skip
        workspace = pyhf.Workspace({
            "channels": [{"name": "c", "samples": [{"name": "s", "data": [1.0], "modifiers": modifiers},
                                                   {"name": "b", "data": [b], "modifiers": []}]}],
            "measurements": [{"name": "m", "config": {"poi": "mu",
                                                      "parameters": [{"name": "mu", "bounds": [[0, 200]]}]}}],
            "observations": [{"name": "c", "data": [n]}], "version": "1.0.0",
        })  # fmt: skip
        pyhf_model = workspace.model()
        observed, _ = pyhf.infer.intervals.upper_limits.upper_limit(
            workspace.data(pyhf_model), pyhf_model, scan=None, level=0.05, rtol=1e-6
        )
        assert ours == pytest.approx(float(observed), rel=0.01)


def test_shape_sources_at_one_standard_deviation_are_the_scaled_shapes(model):
    """The morphed density at theta = +-1 is the shape with its peak scaled directly."""
    shape = model.windowed(2.0, window_sigmas=20)
    x = np.linspace(shape.lower, shape.upper, 1001)
    nuisances = stats.nuisances_at(_sources(("scale", "peak_position", 0.002), ("res", "peak_width", 0.1)), shape, 2.0)
    nominal = shape.pdf(x)
    for thetas, direct in [
        ([1.0, 0.0], scaled_peak(shape, position=0.002)),
        ([-1.0, 0.0], scaled_peak(shape, position=-0.002)),
        ([0.0, 1.0], scaled_peak(shape, width=0.1)),
        ([0.0, -1.0], scaled_peak(shape, width=-0.1)),
    ]:
        np.testing.assert_allclose(nuisances.signal_density(x, nominal, np.array(thetas)), direct.pdf(x),
                                   rtol=1e-12, atol=1e-12 * nominal.max())  # fmt: skip


def test_analytic_gradient_matches_finite_differences(spectrum, model):
    shape = model.windowed(2.0, window_sigmas=20)
    sources = _sources(("lumi", "normalisation", 0.1), ("eff", "normalisation", 0.2, "gaussian"),
                       ("scale", "peak_position", 0.002), ("res", "peak_width", 0.1))  # fmt: skip
    nuisances = stats.nuisances_at(sources, shape, 2.0).with_global_observables([0.3, -0.2, 0.1, 0.4])
    x = spectrum.x[::20]  # few candidates: -log L small enough for precise finite differences
    likelihood = stats.HypothesisLikelihood(stats.hypothesis_data(x, shape, nuisances=nuisances))
    for thetas in ([0.4, -0.7, 1.3, -1.6], [-0.4, 0.7, 0.3, -0.6]):  # shape thetas beyond and within +-1
        point = np.array([10.0, 450.0, -0.2, 0.05, 0.01, *thetas])
        step = 1e-5 * np.maximum(np.abs(point), 1.0)
        numeric = [(likelihood.nll(point + step * e) - likelihood.nll(point - step * e)) / (2 * step[i])
                   for i, e in enumerate(np.eye(len(point)))]  # fmt: skip
        np.testing.assert_allclose(likelihood.gradient(point), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("size", "n_sig"), [(0.05, 300), (0.1, 1000), (0.2, 3000)])
def test_width_systematic_widens_as_the_direct_refits_predict(model, size, n_sig):
    """On an Asimov data set with signal, the n_sig error with a peak-width source equals the
    prediction of direct refits with the width scaled by 1 +- size: sigma_stat^2 + Delta^2
    sigma_theta^2, Delta the half-difference of their n_sig and sigma_theta the fitted
    nuisance's error (exact for a Gaussian likelihood; the quadratic morphing leaves a few per
    cent). The check's precision: 15 % of the increase."""
    shape = model.windowed(2.0, window_sigmas=20)
    edges = np.linspace(shape.lower, shape.upper, 2001)
    centres = 0.5 * (edges[1:] + edges[:-1])
    counts = (20_000 / (shape.upper - shape.lower) + n_sig * shape.pdf(centres)) * (edges[1] - edges[0])

    def fit(signal_shape, nuisances=stats.NO_NUISANCES):
        data = stats.hypothesis_data(centres, signal_shape, order=2, weights=counts, nuisances=nuisances)
        return stats.HypothesisLikelihood(data).fit(errors=True)

    plain = fit(shape)
    wider, narrower = fit(scaled_peak(shape, width=size)), fit(scaled_peak(shape, width=-size))
    profiled = fit(shape, stats.nuisances_at(_sources(("res", "peak_width", size)), shape, 2.0))
    delta = 0.5 * (wider.n_sig - narrower.n_sig)
    predicted = math.hypot(plain.errors[0], delta * profiled.errors[-1])
    assert profiled.errors[0] > plain.errors[0]
    increase = profiled.errors[0] - plain.errors[0]
    assert predicted - plain.errors[0] == pytest.approx(increase, rel=0.15)


def test_removing_the_largest_source_changes_the_limit_most(spectrum, model):
    sources = _sources(("lumi", "normalisation", 0.01), ("efficiency", "normalisation", 0.25),
                       ("resolution", "peak_width", 0.05), ("scale", "peak_position", 0.0005))  # fmt: skip
    masses = [1.5, 2.0, 2.5]

    def evaluate(points, variant):
        return [_point(spectrum, model, m, variant) for m in points]

    table = impact_table(sources, masses, evaluate)
    assert [row["fit_status"] for row in table.rows] == ["ok"] * 3
    impacts = {name: table.relative_impact(name) for name in sources.names}
    total = table.relative_impact(None)
    for index in range(len(masses)):
        largest = max(sources.names, key=lambda name: impacts[name][index])
        assert largest == "efficiency"
        assert total[index] >= impacts["efficiency"][index] > impacts["lumi"][index] >= 0.0
    # the same from the observed limits
    assert np.all(table.relative_impact("efficiency", "ul_obs") > table.relative_impact("lumi", "ul_obs"))


@pytest.mark.parametrize(
    ("sources", "error"),
    [
        ([{"name": "a", "type": "normalisation", "size": 0.1}, {"name": "a", "type": "peak_width", "size": 0.1}],
         message("systematics-repeated-name", names="a")),
        ([{"name": "a", "type": "peak_width", "size": [[2.0, 0.1], [1.0, 0.2]]}],
         message("systematics-unordered-table", name="a")),
        ([{"name": "a", "type": "normalisation", "size": 1.5, "constraint": "gaussian"}], "size below 1"),
        ([{"name": "a", "type": "normalisation", "size": -0.1}], "systematics.sources"),
        ([{"name": "a", "type": "efficiency", "size": 0.1}], "systematics.sources"),
    ],
)  # fmt: skip
def test_bad_sources_are_refused_naming_the_key(sources, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_config(None, {"systematics.sources": sources})


def test_shape_interpolation_needs_the_models_errors(model):
    shape = model.windowed(2.0, window_sigmas=20)
    sources = _sources(("interp", "shape_interpolation", 2.0))
    nuisances = stats.nuisances_at(sources, shape, 2.0, model.interpolation_errors)
    assert nuisances.names == ("interp_position", "interp_width")
    x = np.linspace(shape.lower, shape.upper, 501)
    np.testing.assert_allclose(nuisances.signal_density(x, shape.pdf(x), np.array([0.0, 1.0])),
                               scaled_peak(shape, width=2 * 0.03).pdf(x), rtol=1e-12, atol=1e-9)  # fmt: skip
    with pytest.raises(ConfigError, match=pattern("systematics-no-interpolation-errors", name="interp")):
        stats.nuisances_at(sources, shape, 2.0)


def _background_sample(rng, coefficients, shape, n):
    grid = np.linspace(shape.lower, shape.upper, 20001)
    density = stats.background_density(grid, np.asarray(coefficients), shape.lower, shape.upper)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    return np.interp(rng.uniform(0.0, cdf[-1], n), cdf, grid)


def test_background_order_rule_picks_what_the_data_need(model):
    from bumphunt.stats.background import choose_order

    """On 8 samples of 30,000 events per background: never an order below the truth (the
    terms it needs are significant, also a curvature without a slope), the true order in most
    (5 % tests: a higher order is kept by chance now and then)."""
    shape = model.windowed(2.0, window_sigmas=20)
    rng = np.random.default_rng(4)
    # [0, 0.3]: no slope, a curvature; the order after 0 alone does not improve (Run 1, 7.19 GeV)
    for truth, expected in (([], 0), ([0.4], 1), ([0.3, 0.25], 2), ([0.0, 0.3], 2), ([0.3, 0.2, -0.15], 3)):
        picks = []
        for _ in range(8):
            x = _background_sample(rng, truth + [0.0] * (3 - len(truth)), shape, 30_000)
            picks.append(choose_order(lambda order, x=x: stats.hypothesis_data(x, shape, order=order)))
        assert min(picks) == expected and picks.count(expected) >= 6, (truth, picks)


def test_background_order_rule_flags_a_window_no_polynomial_follows(model):
    """A million candidates falling like a square root to an edge 2 % below the window's end
    (the selected spectrum's end near 9.79 GeV at Run 1): the fits above order 2 fail, so the
    rule cannot test order 2; the point is flagged with that reason, never fitted with it."""
    from bumphunt.stats.background import choose_order

    shape = model.windowed(2.0, window_sigmas=20)
    edges = np.linspace(shape.lower, shape.upper, 2001)
    centres = 0.5 * (edges[1:] + edges[:-1])
    end = shape.upper - 0.02 * (shape.upper - shape.lower)
    expected = 750.0 * np.sqrt(np.clip((end - centres) / (end - shape.lower), 0.0, None))
    counts = np.random.default_rng(3).poisson(expected).astype(float)
    reason = choose_order(lambda order: stats.hypothesis_data(centres, shape, order=order, weights=counts))
    assert reason == "background order not chosen: the fits of order 3, 4, 5, 6 fail, so order 2 cannot be tested"
    row = evaluate_point(Spectrum(centres, weights=counts, edges=edges), model, 2.0,
                         dict(SCAN_SETTINGS, systematics=[], background_order="auto"))  # fmt: skip
    assert row["fit_status"] == reason and np.isnan(row["n_sig"]) and np.isnan(row["ul_exp"])
    # the window cut below the edge (scan.window_ceiling): an order is chosen and the point fitted
    ceiling = end - 0.1 * (shape.upper - shape.lower)
    settings = dict(SCAN_SETTINGS, systematics=[], background_order="auto", window_ceiling=ceiling)
    fitted = evaluate_point(Spectrum(centres, weights=counts, edges=edges), model, 2.0, settings)
    assert fitted["fit_status"] == "ok" and fitted["background_order"] >= 2, fitted
    assert abs(fitted["n_sig"]) < 3 * fitted["n_sig_err"]


def test_sideband_background_ignores_the_signal_region(model, spectrum):
    from bumphunt.stats.background import sideband_shape

    shape = model.windowed(2.0, window_sigmas=20)
    rng = np.random.default_rng(8)
    truth = np.array([-0.3, 0.1, 0.02])
    background = _background_sample(rng, truth, shape, 100_000)
    resolution = float(model.resolution(2.0))
    peak = rng.normal(shape.mu, resolution, 3000)  # inside the +-3 resolutions about the peak left out
    peak = peak[np.abs(peak - shape.mu) < 3 * resolution]
    plain = sideband_shape(stats.hypothesis_data(background, shape, order=3), 3.0, resolution)
    with_peak = sideband_shape(stats.hypothesis_data(np.r_[background, peak], shape, order=3), 3.0, resolution)
    np.testing.assert_allclose(with_peak, plain, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(plain, truth, atol=0.02)
    # the scan with the sideband background: the signal yield is found, only its error shrinks
    settings = dict(SCAN_SETTINGS, systematics=[], background_order=2)
    floating = _point(spectrum, model, 2.0, [])
    fixed = evaluate_point(spectrum, model, 2.0, dict(settings, background_from_sidebands=True))
    assert fixed["fit_status"] == "ok" and fixed["background_order"] == 2.0
    assert abs(fixed["n_sig"] - 150) < 3 * fixed["n_sig_err"] and fixed["n_sig_err"] < floating["n_sig_err"]


def test_empty_sidebands_flag_the_point(model):
    from bumphunt.stats.background import sideband_shape

    shape = model.windowed(2.0, window_sigmas=20)
    resolution = float(model.resolution(2.0))
    peak_only = np.random.default_rng(2).normal(shape.mu, resolution, 500)
    peak_only = peak_only[np.abs(peak_only - shape.mu) < 3 * resolution]
    assert sideband_shape(stats.hypothesis_data(peak_only, shape, order=3), 3.0, resolution) is None
    row = evaluate_point(Spectrum(np.sort(peak_only)), model, 2.0,
                         dict(SCAN_SETTINGS, systematics=[], background_from_sidebands=True))  # fmt: skip
    assert row["fit_status"] == message("sideband-fit-failed") and math.isnan(row["ul_obs"])
