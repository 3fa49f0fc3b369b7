"""Our limits and p-values against RooStats (AsymptoticCalculator + HypoTestInverter, CLs,
one-sided q~_mu) on the same model and spectra. Needs the optional `root` package."""

import numpy as np
import pytest
from scipy import integrate

from bumphunt.models import SignalShape
from bumphunt.stats import BANDS, evaluate_hypothesis, hypothesis_data

pytest.importorskip("ROOT", reason="the optional root package is not installed")

pytestmark = pytest.mark.slow  # RooStats limits take seconds each

SHAPE = SignalShape(3.0, 0.013, 0.013, 1.5, 10.0, 1.5, 10.0, 0.95, 0.1, 3.0 - 20 * 0.013, 3.0 + 20 * 0.013)
# the full model near sqrt(s/2): a Gaussian in the peak, wrong pairings ending inside the window
FULL_SHAPE = SignalShape(3.0, 0.013, 0.013, 1.5, 10.0, 1.5, 10.0, 0.8, 0.2, 3.0 - 20 * 0.013, 3.0 + 20 * 0.013,
                         gauss_fraction=0.2, gauss_sigma=0.026, edge=3.1, edge_width=0.047)  # fmt: skip


def _sample(rng, pdf, n):
    grid = np.linspace(SHAPE.lower, SHAPE.upper, 20_001)
    cdf = integrate.cumulative_trapezoid(pdf(grid), grid, initial=0.0)
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("n_background", "n_signal", "shape"),
    [(20_000, 0, SHAPE), (20_000, 120, SHAPE), (5_000, 60, SHAPE), (20_000, 120, FULL_SHAPE)],
)
def test_limits_and_p0_equal_roostats(n_background, n_signal, shape):
    from bumphunt.contrib.roostats import roostats_hypothesis_test

    rng = np.random.default_rng(n_background + n_signal)
    background = _sample(rng, lambda x: 1.0 + 0.8 * (x - 3.0) - 3.0 * (x - 3.0) ** 2, n_background)
    x = np.r_[background, _sample(rng, shape.pdf, n_signal)]
    ours = evaluate_hypothesis(hypothesis_data(x, shape))
    # RooStats interpolates the limits on a fixed scan of n_sig: make it cover the +2 sigma band
    reference = roostats_hypothesis_test(x, shape, scan_points=200, scan_max=1.3 * ours.expected[2])
    assert ours.upper_limit == pytest.approx(reference.upper_limit, rel=0.01)
    for band in BANDS:
        assert ours.expected[band] == pytest.approx(reference.expected[band], rel=0.01), band
    assert ours.p0_local == pytest.approx(reference.p0, rel=0.02)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("constraint", ["lognormal", "gaussian"])
def test_normalisation_systematic_equals_roostats(constraint):
    """A 20 % normalisation systematic on the shape model: RooStats with the same constraint
    (a unit Gaussian on theta, the yield n_sig (1 + 0.2)^theta or n_sig (1 + 0.2 theta), a
    global observable) against ours, limits within 1 %."""
    from bumphunt.contrib.roostats import roostats_hypothesis_test
    from bumphunt.stats import nuisances_at
    from bumphunt.systematics import Systematics

    rng = np.random.default_rng(7)
    background = _sample(rng, lambda x: 1.0 + 0.8 * (x - 3.0) - 3.0 * (x - 3.0) ** 2, 20_000)
    x = np.r_[background, _sample(rng, SHAPE.pdf, 150)]
    sources = Systematics.from_config({"sources": [{"name": "norm", "type": "normalisation", "size": 0.2,
                                                    "constraint": constraint}]})  # fmt: skip
    ours = evaluate_hypothesis(hypothesis_data(x, SHAPE, nuisances=nuisances_at(sources, SHAPE, 3.0)))
    plain = evaluate_hypothesis(hypothesis_data(x, SHAPE))
    reference = roostats_hypothesis_test(x, SHAPE, scan_points=200, scan_max=1.3 * ours.expected[2],
                                         normalisation=(0.2, constraint))  # fmt: skip
    assert ours.upper_limit > 1.03 * plain.upper_limit
    assert ours.upper_limit == pytest.approx(reference.upper_limit, rel=0.01)
    for band in BANDS:
        assert ours.expected[band] == pytest.approx(reference.expected[band], rel=0.01), band
