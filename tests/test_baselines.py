"""The baselines of the selection: region BDTs with out-of-fold scores, one cut per region,
weighted AUC and permutation importance, each checked against a brute-force reference or a
statistical property of synthetic data."""

import functools
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from bumphunt.errors import BumphuntError
from bumphunt.select.baselines import (
    best_cut_per_region,
    mass_regions,
    permutation_importance,
    region_fom_grid,
    region_of,
    train_region_bdts,
    weighted_auc,
)
from bumphunt.select.fom import FomGrid, fom_grid, own_window, window_membership

MASSES = np.linspace(1.0, 8.0, 8)  # GeV
LUMINOSITY = 500.0  # pb^-1
FAST = {"n_rounds": 40, "params": {"max_depth": 3, "eta": 0.3}}


def _brute_auc(scores, labels, weights):
    signal, background = labels == 1, labels == 0
    s, b = scores[signal][:, None], scores[background][None, :]
    pairs = weights[signal][:, None] * weights[background][None, :]
    wins = np.where(s > b, 1.0, np.where(s == b, 0.5, 0.0))
    total = 0.0
    for i in range(pairs.shape[0]):  # an explicit pair count, row by row
        for j in range(pairs.shape[1]):
            total += pairs[i, j] * wins[i, j]
    return total / pairs.sum()


def test_weighted_auc_matches_a_brute_force_pair_count():
    rng = np.random.default_rng(1)
    for n in (7, 150):
        labels = rng.integers(0, 2, n)
        labels[:2] = 0, 1
        scores = np.round(rng.normal(labels * 0.7, 1.0), 1 if n > 10 else 0)  # many ties
        weights = rng.uniform(0.0, 3.0, n)
        assert np.sum(scores[labels == 1][:, None] == scores[labels == 0][None, :]) > 0
        assert weighted_auc(scores, labels, weights) == pytest.approx(_brute_auc(scores, labels, weights), abs=1e-12)
        assert weighted_auc(scores, labels == 1) == pytest.approx(_brute_auc(scores, labels, np.ones(n)), abs=1e-12)
    assert weighted_auc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    assert weighted_auc([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == 0.0
    assert weighted_auc([0.5, 0.5], [0, 1]) == 0.5
    with pytest.raises(ValueError, match="labels"):
        weighted_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="positive signal"):
        weighted_auc([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="NaN"):
        weighted_auc([np.nan, 0.2], [0, 1])


def test_permutation_importance_ranks_the_informative_feature_first():
    rng = np.random.default_rng(2)
    n = 20_000
    labels = rng.integers(0, 2, n)
    x = rng.normal(0.0, 1.0, (n, 4))
    x[:, 0] += 1.0 * labels  # strong
    x[:, 1] += 0.3 * labels  # weak
    weights = rng.uniform(0.5, 1.5, n)

    def score(features):  # uses the irrelevant feature 2, ignores feature 3
        return features[:, 0] + 0.3 * features[:, 1] + 0.5 * features[:, 2]

    importance = permutation_importance(score, x, labels, weights, n_repeats=4, seed=3)
    assert sorted(importance) == [0, 1, 2, 3]
    assert importance[0].mean > importance[1].mean > 5 * max(abs(importance[2].mean), 0.003)
    assert importance[0].mean > 0.1 and importance[1].mean > 0.01
    # feature 2 is used but carries no information: its drop is statistical noise,
    # ~ std(AUC) ~ 0.004 for 20k events; feature 3 is not used at all
    assert abs(importance[2].mean) < 0.01
    assert importance[3] == (0.0, 0.0)
    assert permutation_importance(score, x, labels, weights, n_repeats=4, seed=3) == importance
    assert permutation_importance(score, x, labels, weights, n_repeats=4, seed=4) != importance


def test_mass_regions_are_contiguous_with_equal_counts():
    rng = np.random.default_rng(4)
    masses = np.sort(rng.uniform(0.1, 10.0, 41))
    for n_regions in (1, 3, 4, 41):
        edges = mass_regions(np.r_[masses, masses[:5]][::-1], n_regions)  # repeats and order do not matter
        assert edges.shape == (n_regions + 1,) and np.all(np.diff(edges) > 0)
        assert edges[0] == masses[0] and edges[-1] == masses[-1]
        regions = region_of(masses, edges)
        assert np.all(np.diff(regions) >= 0)  # contiguous: non-decreasing along the sorted masses
        counts = np.bincount(regions, minlength=n_regions)
        assert len(counts) == n_regions and counts.sum() == 41 and counts.max() - counts.min() <= 1
    edges = mass_regions(masses, 4)
    assert_array_equal(region_of([-5.0, 50.0], edges), [0, 3])  # outer regions are open
    with pytest.raises(ValueError, match="n_regions"):
        mass_regions(masses, 42)
    with pytest.raises(ValueError, match="finite"):
        region_of([np.nan], edges)


def _sample(rng, n_signal, n_background, n_features=4):
    """Signal Gaussian in feature 0 with a mass-dependent shift and in feature 1, background flat;
    the other features flat for both."""
    mass = rng.choice(MASSES, n_signal)
    x_signal = rng.uniform(-3.0, 3.0, (n_signal, n_features))
    x_signal[:, 0] = rng.normal(0.4 * mass - 1.5, 0.6)
    x_signal[:, 1] = rng.normal(0.5, 1.0, n_signal)
    x_background = rng.uniform(-3.0, 3.0, (n_background, n_features))
    candidate = rng.uniform(MASSES[0], MASSES[-1], (n_background, 2))
    return mass, x_signal, x_background, candidate


def _region_mask(candidate, edges):
    n_regions = len(edges) - 1
    mask = np.zeros((len(candidate), n_regions), bool)
    for column in candidate.T:
        mask[np.arange(len(candidate)), region_of(column, edges)] = True
    return mask


def _likelihood_ratio(x, edges, region):
    """Signal over background density of :func:`_sample` in a region (the best possible score)."""
    masses = MASSES[region_of(MASSES, edges) == region]
    signal = np.mean([np.exp(-0.5 * ((x[:, 0] - 0.4 * m + 1.5) / 0.6) ** 2) for m in masses], axis=0) / 0.6
    signal = signal * np.exp(-0.5 * (x[:, 1] - 0.5) ** 2)
    inside = np.all(np.abs(x[:, :2]) <= 3.0, axis=1)
    return np.where(inside, signal, np.inf)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(5)
    mass, x_signal, x_background, candidate = _sample(rng, 4000, 6000)
    edges = mass_regions(MASSES, 2)
    inputs = (x_signal, mass, rng.uniform(0.5, 1.5, 4000), x_background, rng.uniform(0.01, 0.1, 6000),
              _region_mask(candidate, edges), edges)  # fmt: skip
    bdts = train_region_bdts(*inputs, seed=1, max_events=3000, **FAST)
    return inputs, bdts


def test_region_bdts_separate_signal_from_background(trained):
    (x_signal, mass, _, x_background, _, mask, edges), bdts = trained
    assert bdts.n_regions == 2 and bdts.n_folds == 3
    assert np.all(bdts.n_train <= 3000) and np.all(bdts.n_train[:, 1] == 3000)  # background subsampled
    rng = np.random.default_rng(6)
    new_mass, new_signal, new_background, new_candidate = _sample(rng, 4000, 4000)
    new_mask = _region_mask(new_candidate, edges)
    for region in range(2):
        signal = new_signal[region_of(new_mass, edges) == region]
        background = new_background[new_mask[:, region]]
        scores = np.r_[bdts.score(signal, region), bdts.score(background, region)]
        labels = np.r_[np.ones(len(signal)), np.zeros(len(background))]
        assert np.all((scores >= 0.0) & (scores <= 1.0))
        auc = weighted_auc(scores, labels)
        best = weighted_auc(_likelihood_ratio(np.r_[signal, background], edges, region), labels)
        assert auc > 0.8 and auc > best - 0.02  # close to the Neyman-Pearson optimum
        # the out-of-fold scores of the training events tell the same
        oof_signal = bdts.oof_signal[region_of(mass, edges) == region, region]
        oof_background = bdts.oof_background[mask[:, region], region]
        oof_labels = np.r_[np.ones(len(oof_signal)), np.zeros(len(oof_background))]
        assert weighted_auc(np.r_[oof_signal, oof_background], oof_labels) > 0.8
        importance = permutation_importance(functools.partial(bdts.score, region=region), np.r_[signal, background],
                                            labels, n_repeats=2, seed=7)  # fmt: skip
        assert max(importance, key=lambda k: importance[k].mean) == 0
        assert max(abs(importance[k].mean) for k in (2, 3)) < 0.02
    with pytest.raises(ValueError, match="region"):
        bdts.score(new_signal, 2)


def test_region_bdts_are_reproducible_and_depend_on_the_seed(trained):
    inputs, bdts = trained
    again = train_region_bdts(*inputs, seed=1, max_events=3000, **FAST)
    other = train_region_bdts(*inputs, seed=2, max_events=3000, **FAST)
    x = inputs[0][:500]
    for region in range(2):
        assert_array_equal(again.score(x, region), bdts.score(x, region))
        assert not np.array_equal(other.score(x, region), bdts.score(x, region))
    assert_array_equal(again.oof_signal, bdts.oof_signal)
    assert_array_equal(again.oof_background, bdts.oof_background)
    assert not np.array_equal(other.signal_fold, bdts.signal_fold)


def test_out_of_fold_scores_come_from_the_model_that_did_not_see_the_event(trained):
    (x_signal, _, _, x_background, _, _, _), bdts = trained
    for fold_of, x, oof in ((bdts.signal_fold, x_signal, bdts.oof_signal),
                            (bdts.background_fold, x_background, bdts.oof_background)):  # fmt: skip
        assert np.ptp(np.bincount(fold_of, minlength=3)) <= 1
        for region in range(2):
            for fold in range(3):
                events = fold_of == fold
                assert_array_equal(oof[events, region], bdts.models[region][fold].inplace_predict(x[events]))
    # labels independent of the features: the in-sample score (2 of the 3 models saw each event)
    # is inflated by overfitting, the out-of-fold score is not (AUC 0.5 +- ~0.01 for 4000 events)
    rng = np.random.default_rng(8)
    edges = mass_regions(MASSES, 1)
    x_signal, x_background = rng.normal(0.0, 1.0, (2000, 4)), rng.normal(0.0, 1.0, (2000, 4))
    noise = train_region_bdts(
        x_signal, rng.choice(MASSES, 2000), None, x_background, None, np.ones((2000, 1), bool), edges,
        seed=9, n_rounds=60, early_stopping_rounds=None, params={"max_depth": 6, "eta": 0.3},
    )  # fmt: skip
    labels = np.r_[np.ones(2000), np.zeros(2000)]
    in_sample = weighted_auc(noise.score(np.r_[x_signal, x_background], 0), labels)
    out_of_fold = weighted_auc(np.r_[noise.oof_signal[:, 0], noise.oof_background[:, 0]], labels)
    assert in_sample > 0.75
    assert abs(out_of_fold - 0.5) < 0.04


def test_bad_training_inputs_are_rejected(trained):
    (x_signal, mass, w_signal, x_background, w_background, mask, edges), _ = trained
    with pytest.raises(ValueError, match="background_region_mask"):
        train_region_bdts(x_signal, mass, w_signal, x_background, w_background, mask[:, :1], edges, seed=1)
    with pytest.raises(ValueError, match="background_features"):
        train_region_bdts(x_signal, mass, w_signal, x_background[:, :3], w_background, mask, edges, seed=1)
    with pytest.raises(ValueError, match="signal_weight"):
        train_region_bdts(x_signal, mass, -w_signal, x_background, w_background, mask, edges, seed=1)
    with pytest.raises(ValueError, match="no signal or no background"):
        train_region_bdts(x_signal, mass, w_signal, x_background, w_background, mask & False, edges, seed=1)


def test_missing_xgboost_gives_a_one_line_error(trained, monkeypatch):
    inputs, _ = trained
    monkeypatch.setitem(sys.modules, "xgboost", None)
    with pytest.raises(BumphuntError) as error:
        train_region_bdts(*inputs, seed=1)
    assert str(error.value) == "the BDT baseline needs xgboost: pip install 'bumphunt[bdt]'"
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_best_cut_per_region_matches_brute_force():
    rng = np.random.default_rng(10)
    n_cuts, n_windows = 25, 9
    cuts = rng.permutation(np.linspace(0.0, 1.0, n_cuts))  # unsorted
    sigma = rng.uniform(1.0, 5.0, (n_cuts, n_windows))
    sigma[cuts > 0.9, 1] = np.inf  # window 1 loses its signal at tight cuts
    sigma[:, 4] = np.inf  # window 4 has no signal at all
    sigma[cuts == 0.5, 6:] = sigma[cuts == 0.0, 6:]  # a tie: the loosest cut wins
    sigma[cuts == 0.0, 6:] = 0.5
    sigma[cuts == 0.5, 6:] = 0.5
    grid = FomGrid(cuts, np.ones_like(sigma), np.ones_like(sigma), sigma)
    window_region = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    result = best_cut_per_region(grid, window_region)
    for region in range(3):
        windows = [j for j in range(n_windows) if window_region[j] == region and np.isfinite(sigma[:, j]).any()]
        means = [np.mean([sigma[k, j] for j in windows]) for k in range(n_cuts)]
        best = min(range(n_cuts), key=lambda k: (means[k], cuts[k]))
        assert result.index[region] == best and result.cut[region] == cuts[best]
        assert result.mean_sigma_min[region] == pytest.approx(means[best], rel=1e-14)
    assert result.cut[2] == 0.0
    assert_array_equal(result.per_window(window_region), result.cut[window_region])
    with pytest.raises(ValueError, match="no window"):
        best_cut_per_region(grid, np.array([0, 0, 0, 2, 2, 2, 3, 3, 3]))


def test_region_fom_grid_scores_each_window_with_its_region():
    rng = np.random.default_rng(11)
    n_signal, n_background, n_windows = 600, 1500, 6
    centres = np.linspace(1.0, 6.0, n_windows)
    lower, upper = centres - 0.6, centres + 0.6  # overlapping
    own = rng.integers(0, n_windows, n_signal)
    signal_membership = own_window(window_membership(centres[own] + rng.normal(0, 0.2, n_signal), lower, upper), own)
    background_membership = window_membership(rng.uniform(0.0, 7.0, (n_background, 2)), lower, upper)
    signal_scores, background_scores = rng.beta(3, 1, (n_signal, 2)), rng.beta(1, 3, (n_background, 2))
    common = {"n_generated": np.full(n_windows, 150), "background_weights": rng.uniform(0.1, 2.0, n_background),
              "cuts": np.linspace(0.0, 1.0, 21), "luminosity": LUMINOSITY}  # fmt: skip
    window_region = np.array([0, 0, 0, 1, 1, 1])
    grid = region_fom_grid(signal_scores, signal_membership, background_membership=background_membership,
                           background_scores=background_scores, window_region=window_region, **common)  # fmt: skip
    for region in range(2):
        reference = fom_grid(signal_scores[:, region], signal_membership, background_membership=background_membership,
                             background_scores=background_scores[:, region], **common)  # fmt: skip
        columns = window_region == region
        for name in ("efficiency", "background", "sigma_min"):
            assert_allclose(getattr(grid, name)[:, columns], getattr(reference, name)[:, columns], rtol=1e-14)
