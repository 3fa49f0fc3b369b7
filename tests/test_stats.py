"""Fit at one mass hypothesis and its asymptotic statistics: checked on toys."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats

from bumphunt.models import SignalShape
from bumphunt.stats import (
    BANDS,
    HypothesisLikelihood,
    chebyshev_means,
    cls_from_q,
    evaluate_hypothesis,
    hypothesis_data,
)

SHAPE = SignalShape(3.0, 0.013, 0.013, 1.5, 10.0, 1.5, 10.0, 0.95, 0.1, 3.0 - 20 * 0.013, 3.0 + 20 * 0.013)


def _sample(rng, pdf, n, lower, upper):
    grid = np.linspace(lower, upper, 20_001)
    cdf = integrate.cumulative_trapezoid(pdf(grid), grid, initial=0.0)
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def _toy(rng, n_bkg, n_sig):
    background = _sample(
        rng, lambda x: 1.0 + 0.8 * (x - 3.0) - 3.0 * (x - 3.0) ** 2, rng.poisson(n_bkg), SHAPE.lower, SHAPE.upper
    )
    signal = _sample(rng, SHAPE.pdf, rng.poisson(n_sig) if n_sig > 0 else 0, SHAPE.lower, SHAPE.upper)
    return hypothesis_data(np.r_[background, signal], SHAPE)


def test_background_density_is_normalised_and_gradient_is_exact():
    assert_allclose(chebyshev_means(4), [0.0, -1 / 3, 0.0, -1 / 15], rtol=1e-12)
    data = _toy(np.random.default_rng(1), 5000, 100)
    likelihood = HypothesisLikelihood(data)
    params = np.array([80.0, 4900.0, 0.1, -0.05, 0.02])
    steps = [1e-3, 1e-2, 1e-6, 1e-6, 1e-6]
    numeric = [
        (likelihood.nll(params + h * e) - likelihood.nll(params - h * e)) / (2 * h) for e, h in zip(np.eye(5), steps)
    ]
    assert_allclose(likelihood.gradient(params), numeric, rtol=1e-5)
    # the background density integrates to one: a pure-background Asimov set returns n_bkg
    fit = likelihood.fit()
    asimov = likelihood.asimov(fit, n_sig=0.0)
    assert asimov.data.n_events == pytest.approx(fit.values[1], rel=1e-6)


def test_cls_formula_limits():
    # at q = q_A (median expected) CLs = 2 (1 - Phi(mu/sigma)): 0.05 at mu/sigma = 1.96
    q_a = stats.norm.ppf(0.975) ** 2
    assert cls_from_q(q_a, q_a) == pytest.approx(0.05, rel=1e-9)
    # q = 0 (best fit above mu): CLs = 0.5 / Phi(mu/sigma)
    assert cls_from_q(0.0, q_a) == pytest.approx(0.5 / stats.norm.cdf(np.sqrt(q_a)), rel=1e-12)


@pytest.fixture(scope="module")
def toys():
    """400 background-only toys and 400 with 400 injected signal events (about 3.4 sigma)."""
    rng = np.random.default_rng(2024)
    return {n_sig: [evaluate_hypothesis(_toy(rng, 5000, n_sig)) for _ in range(400)] for n_sig in (0, 400)}


@pytest.mark.slow
def test_injected_signal_is_recovered_without_bias():
    rng = np.random.default_rng(99)
    pulls = []
    for _ in range(1000):
        fit = HypothesisLikelihood(_toy(rng, 5000, 400)).fit(errors=True)
        assert fit.valid
        pulls.append((fit.n_sig - 400) / fit.errors[0])
    # 1000 toys: mean known to +-0.03, width to +-0.02
    assert abs(np.mean(pulls)) < 0.1
    assert 0.9 < np.std(pulls) < 1.1


@pytest.mark.slow
def test_discovery_significance_follows_the_asymptotic_distribution(toys):
    z = np.array([r.z_local for r in toys[0]])
    # q0 ~ 1/2 delta(0) + 1/2 chi2(1): P(Z > 1.645) = 5 %, P(Z = 0) = 50 %
    assert np.mean(z > stats.norm.isf(0.05)) == pytest.approx(0.05, abs=0.025)
    assert np.mean(z == 0) == pytest.approx(0.5, abs=0.075)
    assert stats.kstest(z[z > 0] ** 2, stats.chi2(1).cdf).pvalue > 0.01


@pytest.mark.slow
def test_upper_limits_cover_and_expected_bands_describe_background_toys(toys):
    covered = np.mean([r.upper_limit >= 400 for r in toys[400]])
    assert covered >= 0.95  # CLs over-covers
    limits = np.array([r.upper_limit for r in toys[0]])
    expected = {band: np.median([r.expected[band] for r in toys[0]]) for band in BANDS}
    # the observed limits of background-only toys are distributed like the expected bands
    # (CLs limits are bounded below, so the -1 and -2 bands are approximate)
    assert np.median(limits) == pytest.approx(expected[0], rel=0.08)
    assert np.mean(limits > expected[1]) == pytest.approx(0.1587, abs=0.05)
    assert np.mean(limits > expected[2]) == pytest.approx(0.0228, abs=0.02)
    assert np.mean(limits < expected[-1]) == pytest.approx(0.1587, abs=0.06)


def test_binned_fit_equals_unbinned():
    rng = np.random.default_rng(31)
    background = _sample(rng, lambda x: 1.0 + 0.8 * (x - 3.0) - 3.0 * (x - 3.0) ** 2, 50_000, SHAPE.lower, SHAPE.upper)
    x = np.r_[background, _sample(rng, SHAPE.pdf, 250, SHAPE.lower, SHAPE.upper)]
    unbinned = evaluate_hypothesis(hypothesis_data(x, SHAPE))
    binned = evaluate_hypothesis(hypothesis_data(x, SHAPE, bins=2000))
    assert binned.n_events == unbinned.n_events
    assert binned.n_sig == pytest.approx(unbinned.n_sig, abs=0.02 * unbinned.n_sig_error)
    assert binned.upper_limit == pytest.approx(unbinned.upper_limit, rel=0.01)
    for band in BANDS:
        assert binned.expected[band] == pytest.approx(unbinned.expected[band], rel=0.01)
    assert binned.z_local == pytest.approx(unbinned.z_local, abs=0.02)
