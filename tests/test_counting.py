"""The counting experiment's statistics (bumphunt.stats.counting): the on/off likelihood, its
closed-form profile, toys against exact Poisson sums and asymptotics, pyhf, coverage."""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from bumphunt.errors import BumphuntError
from bumphunt.stats import BANDS
from bumphunt.stats.counting import (
    CountingData,
    CountingModel,
    ToyCalculator,
    counting_limits,
    counting_pvalues,
    counting_upper_limit,
    discovery_pvalues,
    evaluate_counting,
    expected_bands,
)

from .bad_inputs import pattern

ALPHA = 0.05


def _sobol_tolerance(toys: int, confidence_level: float, background: float = 0.0) -> float:
    """How far a toy limit may be off at n = 0 with a known background, where CLs+b = e^-(mu + b)
    and CLb = e^-b: scrambled Sobol points put exactly one point in each 1/toys of [0, 1), so
    each estimated probability is within 1/toys, CLs within 1/toys (1/CLs+b + 1/CLb) relative,
    the limit (d ln CLs / d mu = -1) as much absolute; plus the root finder's tolerance."""
    clsb, clb = (1.0 - confidence_level) * math.exp(-background), math.exp(-background)
    return (1.0 / clsb + 1.0 / clb) / toys + 1e-4


@pytest.mark.parametrize("confidence_level", [0.95, 0.90])
@pytest.mark.parametrize("model", [CountingModel(0, 0), CountingModel.on_off(0, 0, 2.0), CountingModel(0, 3.0)])
def test_no_events_give_minus_log_alpha(model, confidence_level):
    # CLs = P(0 | mu + b) / P(0 | b) = e^-mu for any known or off-count-fitted b at n = 0
    exact = -math.log(1.0 - confidence_level)
    toys = 2**16
    limit = counting_upper_limit(model, confidence_level=confidence_level, toys=toys)
    assert limit == pytest.approx(exact, abs=_sobol_tolerance(toys, confidence_level, model.background))
    if model == CountingModel(0, 0):
        # the asymptotic formulas fail here: CLs = 2 Phi(-sqrt(2 mu)), mu = 1.92 at 95%
        asymptotic = counting_upper_limit(model, confidence_level=confidence_level, method="asymptotic")
        assert asymptotic == pytest.approx(stats.norm.isf((1.0 - confidence_level) / 2) ** 2 / 2, rel=1e-3)


def test_clsb_limit_falls_with_the_background_where_cls_does_not():
    # n = 0, b = 2 known: CLs+b = e^-(mu + b), the limit -ln(alpha) - b; CLs stays at -ln(alpha)
    model, toys = CountingModel(0, 2.0), 2**16
    clsb = counting_upper_limit(model, statistic="clsb", toys=toys)
    cls = counting_upper_limit(model, statistic="cls", toys=toys)
    assert clsb == pytest.approx(-math.log(ALPHA) - 2.0, abs=1.0 / (toys * ALPHA * math.exp(-2.0)) + 1e-4)
    assert cls == pytest.approx(-math.log(ALPHA), abs=_sobol_tolerance(toys, 0.95, 2.0))
    for n, b in [(3, 1.0), (10, 12.0), (50, 40.0)]:
        on_off = CountingModel.on_off(n, 2 * b, 2.0)
        for method in ("toys", "asymptotic"):
            assert counting_upper_limit(on_off, statistic="clsb", method=method) < counting_upper_limit(
                on_off, statistic="cls", method=method
            )


def _numeric_profile(model, mu, data):
    def negative(x):
        b = model.background if model.background_known else x[0]
        k = 1.0 if model.efficiency_known else x[1]
        return -float(model.log_likelihood(mu, b, k, data))

    best = math.inf
    for start in ([1.0, 1.0], [float(data.n) + 1.0, 0.5], [0.01, 2.0]):
        fit = optimize.minimize(negative, start, bounds=[(0, None), (0, None)], method="L-BFGS-B",
                                options={"ftol": 1e-15, "gtol": 1e-12})  # fmt: skip
        best = min(best, fit.fun)
    return -best


def test_closed_form_profile_is_the_maximum():
    rng = np.random.default_rng(3)
    for _ in range(400):
        n, m, m_s = (float(rng.choice(values)) for values in ([0, 1, 4, 30, 300], [0, 1, 3, 40], [0, 1, 4, 100]))
        tau, uncertainty, mu = (
            float(rng.choice([0.2, 1, 5])),
            float(rng.choice([0.1, 0.5])),
            float(rng.choice([0, 0.5, 3, 50])),
        )
        model = rng.choice([CountingModel(n, m / tau, tau, uncertainty), CountingModel(n, m / tau, tau),
                            CountingModel(n, m / tau + 0.5, math.inf, uncertainty)])  # fmt: skip
        data = CountingData(n, 0.0 if model.background_known else m, 0.0 if model.efficiency_known else m_s)
        b, k = model.profile(mu, data)
        assert b >= 0 and k >= 0
        closed = float(model.log_likelihood(mu, b, k, data))
        assert closed >= _numeric_profile(model, mu, data) - 1e-9, (model, mu, data)


def _pyhf_model(pyhf, signal, background, background_error, efficiency_uncertainty=0.0):
    signal_sample = {
        "name": "signal",
        "data": [signal],
        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
    }
    if efficiency_uncertainty:
        signal_sample["modifiers"].append(
            {"name": "efficiency", "type": "shapesys", "data": [efficiency_uncertainty * signal]}
        )
    shapesys = {"name": "background", "type": "shapesys", "data": [background_error]}
    background_sample = {"name": "background", "data": [background], "modifiers": [shapesys]}
    return pyhf.Model({"channels": [{"name": "window", "samples": [signal_sample, background_sample]}]})


@pytest.mark.parametrize(
    "n, background, error, signal, efficiency_uncertainty",
    [(55, 50.0, 7.0, 10.0, 0.0), (55, 50.0, 7.0, 10.0, 0.1), (3, 5.0, 2.0, 1.0, 0.0), (3, 5.0, 2.0, 1.0, 0.3)],
)
def test_asymptotic_cls_equals_pyhf_shapesys(n, background, error, signal, efficiency_uncertainty):
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    reference = _pyhf_model(pyhf, signal, background, error, efficiency_uncertainty)
    data = [n, *reference.config.auxdata]
    bounds = reference.config.suggested_bounds()
    bounds[reference.config.poi_index] = (0.0, 100.0)
    model = CountingModel.with_uncertainty(n, background, error / background,
                                           efficiency_uncertainty=efficiency_uncertainty)  # fmt: skip
    for mu in (0.5, 1.0, 2.0, 3.0):
        cls, (clsb, clb) = pyhf.infer.hypotest(mu, data, reference, test_stat="qtilde", return_tail_probs=True,
                                               par_bounds=bounds)  # fmt: skip
        ours = counting_pvalues(model, mu * signal, method="asymptotic")
        assert ours.cls == pytest.approx(float(cls), abs=1e-6)
        assert ours.clsb == pytest.approx(float(clsb), abs=1e-6)
        assert ours.clb == pytest.approx(float(clb), abs=1e-6)
    p0 = pyhf.infer.hypotest(0.0, data, reference, test_stat="q0", par_bounds=bounds)
    assert evaluate_counting(model, method="asymptotic").p0_local == pytest.approx(float(p0), abs=1e-6)
    observed, expected = pyhf.infer.intervals.upper_limits.toms748_scan(data, reference, 0.05, 60.0, rtol=1e-10,
                                                                        par_bounds=bounds)  # fmt: skip
    result = evaluate_counting(model, method="asymptotic")
    assert result.upper_limit == pytest.approx(float(observed) * signal, rel=1e-5)
    for band, value in zip(BANDS, expected):
        assert result.expected[band] == pytest.approx(float(value) * signal, rel=1e-5)


def _exact_pvalues(model, mu):
    """CLs+b and CLb by summing the Poisson probabilities of every (n, m) with q~_mu at least
    the observed, the nuisance parameters at their conditional fits (what the toys estimate)."""
    observed = float(model.q_tilde(mu))
    values = []
    for signal in (mu, 0.0):
        b, _ = (float(x) for x in model.profile(signal))
        n = np.arange(int(stats.poisson.isf(1e-14, signal + b)) + 2)
        m = np.arange(int(stats.poisson.isf(1e-14, model.tau * b)) + 2) if not model.background_known else np.zeros(1)
        grid_n, grid_m = (g.ravel().astype(float) for g in np.meshgrid(n, m, indexing="ij"))
        off = stats.poisson.pmf(m, model.tau * b) if not model.background_known else 1.0
        probability = np.outer(stats.poisson.pmf(n, signal + b), off).ravel()
        q = model.q_tilde(mu, CountingData(grid_n, grid_m, np.zeros_like(grid_n)))
        values.append(probability[q >= observed - 1e-9 * (1 + observed)].sum())
    return values


@pytest.mark.parametrize(
    "model, mu",
    [
        (CountingModel.on_off(3, 10, 2.0), 5.0),
        (CountingModel.on_off(1, 4, 1.0), 4.0),
        (CountingModel.on_off(8, 20, 4.0), 6.0),
        (CountingModel(2, 3.0), 5.0),
    ],  # fmt: skip
)
def test_toy_pvalues_equal_the_exact_poisson_sums(model, mu):
    exact = np.array(_exact_pvalues(model, mu))
    toys = 16384
    # the Sobol toys are at least as precise as as many pseudo-random toys: within their 1 sigma
    binomial = np.sqrt(exact * (1 - exact) / toys)
    for seed in range(3):
        toy = np.array(ToyCalculator(model, toys, seed).pvalues(mu))
        assert np.all(np.abs(toy - exact) < binomial), (toy, exact, binomial)


def _read_limit(n, background, alpha):
    """Read's CLs for a known background: P(n' <= n | mu + b) / P(n' <= n | b) = alpha."""

    def excess(mu):
        return stats.poisson.cdf(n, mu + background) / stats.poisson.cdf(n, background) - alpha

    return optimize.brentq(excess, 1e-9, 100.0, xtol=1e-10)


def test_toys_match_reads_formula_where_asymptotics_fail():
    for n, background in [(0, 1.0), (2, 1.5), (4, 3.0), (1, 0.2)]:
        model = CountingModel(n, background)
        exact = _read_limit(n, background, ALPHA)
        toys = counting_upper_limit(model, toys=2**14)
        asymptotic = counting_upper_limit(model, method="asymptotic")
        assert toys == pytest.approx(exact, rel=3e-3)
        assert abs(asymptotic - exact) > 0.05 * exact  # asymptotics off by more than 5 %


@pytest.mark.parametrize("uncertainty, efficiency_uncertainty", [(0.0, 0.0), (0.03, 0.0), (0.03, 0.1)])
@pytest.mark.parametrize("statistic", ["cls", "clsb"])
def test_toys_converge_to_asymptotics_at_large_counts(uncertainty, efficiency_uncertainty, statistic):
    # (a CLs+b limit below the background is near 0: relative differences mean nothing there)
    for n in (1000, 1060) if statistic == "clsb" else (950, 1000, 1060):
        model = CountingModel.with_uncertainty(n, 1000.0, uncertainty, efficiency_uncertainty=efficiency_uncertainty)
        toys = counting_upper_limit(model, statistic=statistic)
        asymptotic = counting_upper_limit(model, statistic=statistic, method="asymptotic")
        assert toys == pytest.approx(asymptotic, rel=0.02)


def test_toy_results_are_reproducible_at_a_fixed_seed():
    model = CountingModel.with_uncertainty(5, 3.2, 0.3, efficiency_uncertainty=0.2)
    first = evaluate_counting(model, mass=1.0, seed=11)
    assert evaluate_counting(model, mass=1.0, seed=11) == first
    assert evaluate_counting(model, mass=1.0, seed=np.random.SeedSequence(11)) == first
    other = evaluate_counting(model, mass=1.0, seed=12)
    assert other.upper_limit != first.upper_limit
    # within the toys' precision: 0.6 % (one standard deviation over seeds) for this model
    assert other.upper_limit == pytest.approx(first.upper_limit, rel=0.03)


def test_efficiency_uncertainty_weakens_the_limit():
    limits = [
        counting_upper_limit(
            CountingModel.with_uncertainty(20, 15.0, 0.2, efficiency_uncertainty=r), method=method
        )  # fmt: skip
        for method in ("toys", "asymptotic")
        for r in (0.0, 1e-6, 0.1, 0.3)
    ]
    # a vanishing uncertainty gives the limit without one: exactly for the asymptotics, within
    # the toys' precision (0.25 %) for toys, whose efficiency count takes Sobol dimensions of its own
    for per_method, precision in ((limits[:4], 0.01), (limits[4:], 1e-6)):
        assert per_method[1] == pytest.approx(per_method[0], rel=precision)
        assert per_method[0] < per_method[2] < per_method[3]


def test_discovery_p0_from_toys_and_exact_sums():
    # known b: q0 grows with n above b, so p0 = P(n' >= n | b)
    for n, background in [(6, 2.0), (9, 3.5), (4, 3.0)]:
        exact = stats.poisson.sf(n - 1, background)
        toy = discovery_pvalues(CountingModel(n, background), [n], toys=2**14)[0]
        assert toy == pytest.approx(exact, abs=np.sqrt(exact * (1 - exact) / 2**14))
    # far from the asymptotic regime the two differ; at large counts they agree
    small = CountingModel(6, 2.0)
    assert abs(evaluate_counting(small).p0_local - evaluate_counting(small, method="asymptotic").p0_local) > 1e-3
    large = CountingModel.with_uncertainty(1100, 1000.0, 0.01)
    toy, asymptotic = (evaluate_counting(large, method=m).z_local for m in ("toys", "asymptotic"))
    assert toy == pytest.approx(asymptotic, abs=0.05)


def test_expected_bands_are_quantiles_of_every_limit():
    model = CountingModel.with_uncertainty(7, 6.0, 0.25)
    counts = np.random.default_rng(5).poisson(6.0, size=60)
    every = counting_limits(model, counts)
    bands = expected_bands(model, counts)
    for band in BANDS:
        assert bands[band] == pytest.approx(np.quantile(every, stats.norm.cdf(band), method="inverted_cdf"), rel=1e-12)
    assert bands[-2] <= bands[-1] <= bands[0] <= bands[1] <= bands[2]
    # the median expected limit of background-only toys is near the asymptotic (Asimov) median
    result = evaluate_counting(CountingModel.with_uncertainty(400, 400.0, 0.05), experiments=200)
    asimov = evaluate_counting(CountingModel.with_uncertainty(400, 400.0, 0.05), method="asymptotic")
    assert result.expected[0] == pytest.approx(asimov.expected[0], rel=0.05)


def _coverage(mu, background, tau, statistic, toys=4096):
    """Probability that the toy upper limit lies above the true signal, summed over every
    outcome (n, m) with its Poisson probability: the limit exceeds mu exactly where the
    p-value at mu exceeds alpha."""
    n_values = np.arange(int(stats.poisson.isf(1e-9, mu + background)) + 1)
    m_values = np.arange(int(stats.poisson.isf(1e-9, tau * background)) + 1)
    covered = total = 0.0
    for n in n_values:
        for m in m_values:
            probability = stats.poisson.pmf(n, mu + background) * stats.poisson.pmf(m, tau * background)
            pvalues = counting_pvalues(CountingModel.on_off(n, m, tau), mu, toys=toys)
            covered += probability * (pvalues.of(statistic) > ALPHA)
            total += probability
    return covered / total


@pytest.mark.slow
def test_toy_clsb_limits_cover_and_cls_limits_overcover():
    for mu, background, tau in [(5.0, 5.0, 1.0), (10.0, 10.0, 1.0)]:
        assert _coverage(mu, background, tau, "clsb") == pytest.approx(1 - ALPHA, abs=0.005)
        assert _coverage(mu, background, tau, "cls") > 1 - ALPHA + 0.02


def test_bad_numbers_are_refused_on_one_line():
    with pytest.raises(BumphuntError, match=pattern("counting-bad-number", name="n_observed", bound=">= 0, finite",
                                                    value=-1.0)):  # fmt: skip
        CountingModel(-1, 3.0)
    with pytest.raises(BumphuntError, match=pattern("counting-bad-number", name="background", bound=">= 0, finite",
                                                    value=math.nan)):  # fmt: skip
        CountingModel(1, math.nan)
    with pytest.raises(BumphuntError, match="unknown method 'exact'; choose toys or asymptotic"):
        counting_upper_limit(CountingModel(1, 1.0), method="exact")
    with pytest.raises(BumphuntError, match="unknown statistic 'cl'; choose cls or clsb"):
        counting_upper_limit(CountingModel(1, 1.0), statistic="cl")
