"""The Punzi figure of merit (numpy, hard cuts) and the Punzi loss (TensorFlow, soft), each
checked against a brute-force or hand-written reference."""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf
from numpy.testing import assert_allclose, assert_array_equal

from bumphunt.select.fom import (
    Membership,
    Selection,
    bootstrap_mean_sigma_min,
    fom_grid,
    hard_cut_yields,
    own_window,
    punzi_constant,
    sigma_min,
    window_membership,
)
from bumphunt.select.loss import punzi_loss, soft_sigma_min, soft_windows, soft_yields

LUMINOSITY = 500.0  # pb^-1


def _full(eps, bkg, lumi, a, b, c):
    return (c + a * math.sqrt(bkg) + b / 2 * math.sqrt(b * b + 4 * a * math.sqrt(bkg) + 4 * bkg)) / (eps * lumi)


@pytest.mark.parametrize("eps, bkg", [(0.3, 0.0), (0.05, 2.5), (1.0, 1e4), (0.8, 0.01)])
def test_sigma_min_matches_the_formula_by_hand(eps, bkg):
    for a, b in [(5.0, 1.28), (3.0, 1.28155)]:
        punzi_c = a**2 / 8 + 9 * b**2 / 13
        full = sigma_min(eps, bkg, LUMINOSITY, a=a, b=b)
        assert full == pytest.approx(_full(eps, bkg, LUMINOSITY, a, b, punzi_c), rel=1e-14)
        assert punzi_constant(a, b) == pytest.approx(punzi_c, rel=1e-15)
        poster = sigma_min(eps, bkg, LUMINOSITY, a=a, b=b, constant=b**2 / 2)
        assert poster == pytest.approx(_full(eps, bkg, LUMINOSITY, a, b, b**2 / 2), rel=1e-14)
        half = sigma_min(eps, bkg, LUMINOSITY, a=a, b=b, form="a/2")
        assert half == pytest.approx((a / 2 + math.sqrt(bkg)) / (eps * LUMINOSITY), rel=1e-14)


def test_sigma_min_broadcasts_and_is_monotonic():
    background = np.linspace(0.0, 1e3, 101)[:, None]
    efficiency = np.linspace(0.01, 1.0, 50)[None, :]
    for form in ("full", "a/2"):
        grid = sigma_min(efficiency, background, LUMINOSITY, form=form)
        assert grid.shape == (101, 50)
        assert np.all(np.diff(grid, axis=0) > 0)  # increasing in B
        assert np.all(np.diff(grid, axis=1) < 0)  # decreasing in eps
        assert_allclose(grid * efficiency, np.broadcast_to(grid[:, -1:], grid.shape), rtol=1e-13)  # exactly 1/eps


def test_sigma_min_edge_cases_and_bad_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_array_equal(sigma_min([0.0, 0.0], [0.0, 5.0], LUMINOSITY), [np.inf, np.inf])
    with pytest.raises(ValueError, match="background"):
        sigma_min(0.5, -1.0, LUMINOSITY)
    with pytest.raises(ValueError, match="efficiency"):
        sigma_min(1.2, 1.0, LUMINOSITY)
    with pytest.raises(ValueError, match="efficiency"):
        sigma_min(np.nan, 1.0, LUMINOSITY)
    with pytest.raises(ValueError, match="'full', 'a/2'"):
        sigma_min(0.5, 1.0, LUMINOSITY, form="simple")
    with pytest.raises(ValueError, match="constant"):
        sigma_min(0.5, 1.0, LUMINOSITY, form="a/2", constant=1.0)
    with pytest.raises(ValueError, match="luminosity"):
        sigma_min(0.5, 1.0, 0.0)


def _random_candidates(rng, n_events):
    candidates = rng.uniform(0.0, 10.0, (n_events, 3))
    candidates[rng.random((n_events, 3)) < 0.2] = np.nan
    candidates[:20, 1] = candidates[:20, 0] + 0.01  # two candidates in one window
    candidates[20:25] = np.nan
    return candidates


def _windows(n_windows):
    centres = np.linspace(0.5, 9.5, n_windows)
    return centres - 0.4, centres + 0.4  # overlapping neighbours


def test_window_membership_matches_a_double_loop():
    rng = np.random.default_rng(3)
    candidates = _random_candidates(rng, 300)
    lower, upper = _windows(15)
    candidates[30, 2], candidates[31, 0] = lower[4], upper[7]  # edges are inside
    membership = window_membership(candidates, lower, upper)
    expected = [
        (j, i) for j in range(15) for i in range(300)
        if any(lower[j] <= c <= upper[j] for c in candidates[i] if not np.isnan(c))
    ]  # fmt: skip
    assert list(zip(membership.window.tolist(), membership.event.tolist(), strict=True)) == expected
    assert (membership.n_events, membership.n_windows) == (300, 15)
    assert membership.event.dtype == membership.window.dtype == np.int64
    assert (4, 30) in expected and (7, 31) in expected
    empty = window_membership(np.full((4, 3), np.nan), lower, upper)
    assert len(empty) == 0 and empty.n_events == 4


def test_own_window_and_take():
    rng = np.random.default_rng(4)
    candidates = _random_candidates(rng, 200)
    lower, upper = _windows(10)
    membership = window_membership(candidates, lower, upper)
    event_window = rng.integers(-1, 10, 200)
    own = own_window(membership, event_window)
    expected = [(j, i) for j, i in zip(membership.window, membership.event, strict=True) if event_window[i] == j]
    assert list(zip(own.window.tolist(), own.event.tolist(), strict=True)) == expected
    events = rng.permutation(200)[:70]
    part = membership.take(events)
    full_pairs = set(zip(membership.window.tolist(), membership.event.tolist(), strict=True))
    assert set(zip(part.window.tolist(), events[part.event].tolist(), strict=True)) == {
        (j, i) for j, i in full_pairs if i in set(events.tolist())
    }
    assert np.all(np.diff(part.window * 70 + part.event) > 0)  # sorted by window then event
    with pytest.raises(ValueError, match="event_window"):
        own_window(membership, event_window[:-1])


def _problem(seed, n_signal=400, n_background=1500, n_windows=12):
    """A small random signal + background sample with its memberships."""
    rng = np.random.default_rng(seed)
    lower, upper = _windows(n_windows)
    centres = 0.5 * (lower + upper)
    event_window = rng.integers(0, n_windows, n_signal)
    signal_candidates = _random_candidates(rng, n_signal)
    signal_candidates[:, 0] = centres[event_window] + rng.normal(0.0, 0.2, n_signal)
    signal_membership = own_window(window_membership(signal_candidates, lower, upper), event_window)
    background_candidates = _random_candidates(rng, n_background)
    background_candidates[background_candidates < 1.0] += 1.0  # window 0 has no background
    return {
        "signal_scores": rng.beta(3.0, 1.0, n_signal),
        "signal_membership": signal_membership,
        "n_generated": np.bincount(event_window, minlength=n_windows) + rng.integers(1, 20, n_windows),
        "background_scores": rng.beta(1.0, 3.0, n_background),
        "background_weights": rng.uniform(0.1, 3.0, n_background),
        "background_membership": window_membership(background_candidates, lower, upper),
    }


def _loop_yields(scores, weights, membership, cuts):
    out = np.zeros((len(cuts), membership.n_windows))
    for k, cut in enumerate(cuts):
        for j in range(membership.n_windows):
            events = membership.event[membership.window == j]
            selected = events[scores[events] >= cut]
            out[k, j] = weights[selected].sum() if weights is not None else len(selected)
    return out


def test_hard_cut_yields_match_a_loop_over_cuts_and_windows():
    problem = _problem(5)
    scores = np.round(4.0 * problem["background_scores"] - 1.0, 2)  # ties, negative scores
    cuts = np.r_[np.round(np.linspace(1.5, -1.5, 31), 2), 0.5, 0.5, scores[7], -np.inf]  # unsorted, repeated
    membership = problem["background_membership"]
    assert np.sum(scores == scores[7]) > 1
    for weights in (problem["background_weights"], None):
        yields = hard_cut_yields(scores, weights, membership, cuts)
        assert yields.shape == (len(cuts), membership.n_windows)
        assert_allclose(yields, _loop_yields(scores, weights, membership, cuts), rtol=1e-12, atol=0)
    assert_array_equal(hard_cut_yields(scores, None, membership, [-np.inf])[0], np.bincount(membership.window))


def test_fom_grid_best_cut_matches_brute_force():
    problem = _problem(6)
    cuts = np.linspace(0.0, 1.0, 41)[::-1]
    grid = fom_grid(**problem, cuts=cuts, luminosity=LUMINOSITY, a=5.0, b=1.28, scale=0.9)
    best = grid.best_per_window()
    lower, upper = _windows(12)
    signal, background = problem["signal_membership"], problem["background_membership"]
    for j in range(12):
        values = []
        for cut in cuts:
            sig = signal.event[signal.window == j]
            bkg = background.event[background.window == j]
            eps = 0.9 * np.sum(problem["signal_scores"][sig] >= cut) / problem["n_generated"][j]
            b_j = 0.9 * problem["background_weights"][bkg][problem["background_scores"][bkg] >= cut].sum()
            values.append(_full(eps, b_j, LUMINOSITY, 5.0, 1.28, punzi_constant(5.0, 1.28)) if eps > 0 else np.inf)
        k = int(np.argmin(values))
        assert best.sigma_min[j] == pytest.approx(values[k], rel=1e-12)
        assert best.cut[j] == cuts[best.index[j]]
        assert values[best.index[j]] == pytest.approx(values[k], rel=1e-12)
    assert_array_equal(grid.at_cut(0.5), grid.sigma_min[np.flatnonzero(cuts == 0.5)[0]])
    assert_array_equal(grid.at_cut(0.51), grid.at_cut(0.5))  # nearest grid cut not above
    with pytest.raises(ValueError, match="below the grid"):
        grid.at_cut(-0.1)


def test_bad_scores_and_lengths_are_rejected():
    problem = _problem(7)
    membership = problem["background_membership"]
    scores = problem["background_scores"].copy()
    scores[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hard_cut_yields(scores, None, membership, [0.5])
    with pytest.raises(ValueError, match="scores for a membership"):
        hard_cut_yields(scores[:-1], None, membership, [0.5])
    with pytest.raises(ValueError, match="weights for a membership"):
        hard_cut_yields(problem["background_scores"], problem["background_weights"][:-1], membership, [0.5])
    with pytest.raises(ValueError, match="n_generated"):
        fom_grid(**{**problem, "n_generated": problem["n_generated"][:-1]}, cuts=[0.5], luminosity=LUMINOSITY)
    windows = _soft(problem)
    with pytest.raises(ValueError, match="signal outputs"):
        soft_sigma_min(problem["signal_scores"][:-1], problem["background_scores"], windows, LUMINOSITY)
    with pytest.raises(ValueError, match="fraction"):
        soft_yields(problem["signal_scores"][:10], problem["background_scores"][:10], windows,
                    signal_batch=np.arange(10), background_batch=np.arange(10))  # fmt: skip


def _soft(problem):
    return soft_windows(
        problem["signal_membership"], problem["n_generated"], problem["background_weights"],
        problem["background_membership"],
    )  # fmt: skip


@pytest.mark.parametrize("form, constant", [("full", None), ("full", 1.28**2 / 2), ("a/2", None)])
def test_soft_fom_with_outputs_0_or_1_is_the_hard_cut_fom(form, constant):
    problem = _problem(8)
    windows = _soft(problem)
    for cut in (0.3, 0.5, 0.8):
        grid = fom_grid(**problem, cuts=[cut], luminosity=LUMINOSITY, form=form, constant=constant, scale=0.8)
        soft = soft_sigma_min(
            tf.constant(problem["signal_scores"] >= cut, tf.float64),
            tf.constant(problem["background_scores"] >= cut, tf.float64),
            windows, LUMINOSITY, form=form, constant=constant, scale=0.8,
        )  # fmt: skip
        assert grid.background[0, 0] == 0.0
        assert_allclose(soft.numpy(), grid.sigma_min[0], rtol=1e-10)


def _loss(problem, windows, y_signal, y_background, **options):
    return punzi_loss(tf.constant(y_signal), tf.constant(y_background), windows, LUMINOSITY, **options)


def test_soft_fom_gradient_matches_finite_differences():
    problem = _problem(9, n_signal=60, n_background=90, n_windows=5)
    windows = _soft(problem)
    y_signal, y_background = problem["signal_scores"], problem["background_scores"]
    assert np.all(np.bincount(problem["background_membership"].window, minlength=5)[:1] == 0)  # B = 0 in window 0
    assert np.any(problem["signal_membership"].window == 0)
    y_s, y_b = tf.Variable(y_signal), tf.Variable(y_background)
    with tf.GradientTape() as tape:
        loss = punzi_loss(y_s, y_b, windows, LUMINOSITY, constant=0.8)
    grad_s, grad_b = (tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, [y_s, y_b]))
    step = 1e-6

    def difference(vector, i, evaluate):
        up, down = vector.copy(), vector.copy()
        up[i] += step
        down[i] -= step
        return (evaluate(up) - evaluate(down)) / (2 * step)

    def value(ys, yb):
        return float(_loss(problem, windows, ys, yb, constant=0.8))

    numeric_s = [difference(y_signal, i, lambda v: value(v, y_background)) for i in range(len(y_signal))]
    numeric_b = [difference(y_background, i, lambda v: value(y_signal, v)) for i in range(len(y_background))]
    scale = max(np.abs(grad_s).max(), np.abs(grad_b).max())
    assert_allclose(grad_s, numeric_s, rtol=1e-5, atol=1e-9 * scale)
    assert_allclose(grad_b, numeric_b, rtol=1e-5, atol=1e-9 * scale)
    in_window_0 = problem["signal_membership"].event[problem["signal_membership"].window == 0]
    assert np.all(np.isfinite(grad_s)) and np.all(grad_s[in_window_0] < 0)
    # all background outputs 0 (B = 0 everywhere): the gradient stays finite
    zeros = tf.Variable(np.zeros_like(y_background))
    with tf.GradientTape() as tape:
        loss = punzi_loss(y_s, zeros, windows, LUMINOSITY)
    assert np.all(np.isfinite(tf.convert_to_tensor(tape.gradient(loss, zeros)).numpy()))


def test_half_batches_rescaled_average_to_the_full_sample():
    problem = _problem(10)
    windows = _soft(problem)
    y_signal, y_background = problem["signal_scores"], problem["background_scores"]
    full = soft_yields(y_signal, y_background, windows, scale=0.7)
    rng = np.random.default_rng(11)
    order_s, order_b = rng.permutation(len(y_signal)), rng.permutation(len(y_background))
    halves = [(order_s[: len(order_s) // 2], order_b[: len(order_b) // 2]),
              (order_s[len(order_s) // 2:], order_b[len(order_b) // 2:])]  # fmt: skip
    parts = [soft_yields(y_signal[s], y_background[b], windows, scale=0.7, fraction=0.5,
                         signal_batch=s, background_batch=b) for s, b in halves]  # fmt: skip
    for k in range(2):
        assert_allclose(0.5 * (parts[0][k].numpy() + parts[1][k].numpy()), full[k].numpy(), rtol=1e-12)
    # the same with windows built for a batch alone (Membership.take)
    s, b = halves[0]
    batch_windows = soft_windows(
        problem["signal_membership"].take(s), problem["n_generated"], problem["background_weights"][b],
        problem["background_membership"].take(b),
    )  # fmt: skip
    alone = soft_yields(y_signal[s], y_background[b], batch_windows, scale=0.7, fraction=0.5)
    for k in range(2):
        assert_allclose(alone[k].numpy(), parts[0][k].numpy(), rtol=1e-12)


def test_punzi_loss_in_a_tf_function_with_float32_outputs():
    problem = _problem(12)
    windows = _soft(problem)
    reference = np.linspace(0.5, 2.0, 12)
    y_s = tf.Variable(problem["signal_scores"].astype(np.float32))
    y_b = tf.Variable(problem["background_scores"].astype(np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = punzi_loss(y_s, y_b, windows, LUMINOSITY, normalise=True, reference=reference)
        return loss, tape.gradient(loss, [y_s, y_b])

    loss, grads = step()
    sigma = soft_sigma_min(y_s, y_b, windows, LUMINOSITY).numpy()
    assert loss.dtype == tf.float64 and grads[0].dtype == tf.float32
    assert float(loss) == pytest.approx(np.mean(sigma / reference), rel=1e-12)
    assert float(punzi_loss(y_s, y_b, windows, LUMINOSITY)) == pytest.approx(sigma.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="reference"):
        punzi_loss(y_s, y_b, windows, LUMINOSITY, normalise=True)


def test_membership_is_a_plain_value():
    membership = Membership(np.array([0, 2]), np.array([1, 1]), 3, 2)
    assert len(membership.restrict([False, True])) == 1
    with pytest.raises(ValueError, match="keep_pairs"):
        membership.restrict([True])


def _bootstrap_sample(rng, signal_binomial: bool, n_windows=6, n_generated=400, n_background=30_000):
    """Signal of each window's own mass and background spread over overlapping windows: a
    signal count fixed (binomial efficiencies) or Poisson, the background always Poisson."""
    lower, upper = _windows(n_windows)
    centres = 0.5 * (lower + upper)
    counts = np.full(n_windows, n_generated) if signal_binomial else rng.poisson(n_generated, n_windows)
    event_window = np.repeat(np.arange(n_windows), counts)
    signal_membership = own_window(window_membership(centres[event_window], lower, upper), event_window)
    n_bkg = rng.poisson(n_background)
    background_membership = window_membership(rng.uniform(0.0, 10.0, n_bkg), lower, upper)
    return {
        "signal_scores": rng.beta(3.0, 1.0, len(event_window)),
        "signal_membership": signal_membership,
        "n_generated": np.full(n_windows, float(n_generated)),
        "background_scores": rng.beta(1.0, 3.0, n_bkg),
        "background_weights": rng.uniform(0.5, 1.5, n_bkg),
        "background_membership": background_membership,
    }


def _mean_sigma_min(sample, cut):
    grid = fom_grid(**sample, cuts=[cut], luminosity=LUMINOSITY)
    return grid.sigma_min[0].mean()


@pytest.mark.parametrize("signal_binomial", [False, True])
def test_bootstrap_spread_matches_independent_samples(signal_binomial):
    """The Poisson bootstrap of one sample reproduces the spread of the mean sigma_min over 400
    independent samples where the counts are Poisson, and over-covers (never under-covers) where
    the signal count is fixed (binomial efficiencies, here 1 - eps = 0.34)."""
    rng = np.random.default_rng(11)
    cut = 0.7
    truth = np.std([_mean_sigma_min(_bootstrap_sample(rng, signal_binomial), cut) for _ in range(400)], ddof=1)
    sample = _bootstrap_sample(rng, signal_binomial)
    selection = Selection(sample["signal_scores"], sample["background_scores"], cut)
    windows = np.ones(6, dtype=bool)
    keys = ("signal_membership", "n_generated", "background_weights", "background_membership")
    means = bootstrap_mean_sigma_min([selection], *(sample[k] for k in keys), LUMINOSITY, windows, replicas=400, seed=3)
    spread = means[:, 0].std(ddof=1)
    # the std of a std from 400 values is 3.5 %: the bounds are > 4 such deviations away
    if signal_binomial:
        assert 0.85 < spread / truth < 1.6
    else:
        assert spread / truth == pytest.approx(1.0, abs=0.15)
    # centred on the sample's own value (sqrt(B) and 1/eps bend the mean by much less than the spread)
    assert means[:, 0].mean() == pytest.approx(_mean_sigma_min(sample, cut), abs=0.3 * spread)


def test_bootstrap_pairs_the_selections():
    """Selections that keep the same pairs have identical replicas (a ratio of exactly 1); per-window
    cuts equal to a single cut give the single cut's numbers; the seed fixes the replicas."""
    sample = _bootstrap_sample(np.random.default_rng(12), False)
    keys = ("signal_membership", "n_generated", "background_weights", "background_membership")
    single = Selection(sample["signal_scores"], sample["background_scores"], 0.6)
    per_window = Selection(sample["signal_scores"], sample["background_scores"], np.full(6, 0.6))
    other = Selection(sample["signal_scores"], sample["background_scores"], np.linspace(0.4, 0.8, 6))
    windows = np.array([True, True, False, True, True, True])
    args = [*(sample[k] for k in keys), LUMINOSITY, windows]
    means = bootstrap_mean_sigma_min([single, per_window, other], *args, replicas=50, seed=4)
    assert_array_equal(means[:, 0], means[:, 1])
    assert np.std(means[:, 2] / means[:, 0]) > 0
    assert_array_equal(means, bootstrap_mean_sigma_min([single, per_window, other], *args, replicas=50, seed=4))
    assert not np.array_equal(means, bootstrap_mean_sigma_min([single, per_window, other], *args, replicas=50, seed=5))
    with pytest.raises(ValueError, match="windows"):
        bootstrap_mean_sigma_min([single], *args[:-1], np.zeros(6, dtype=bool))
    with pytest.raises(ValueError, match="replicas"):
        bootstrap_mean_sigma_min([single], *args, replicas=1)
