"""The Punzi-net on a synthetic search: eight masses, a recoil-energy-like feature that tells the
mass, two discriminating features, and a background level 1000x higher in the four low-mass
windows than in the four high-mass ones (so one cut on a BCE output is far from the best cut
per window)."""

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from bumphunt.errors import BumphuntError, ConfigError
from bumphunt.select.fom import fom_grid, own_window, window_membership
from bumphunt.select.loss import soft_windows
from bumphunt.select.network import (
    NetworkSettings,
    PunziNet,
    Standardiser,
    TrainingHistory,
    _Schedule,
    build_network,
    evaluate_bce,
    evaluate_punzi,
    predict,
    train_bce,
    train_punzi,
)

LUMINOSITY = 100.0  # pb^-1
MASSES = np.linspace(1.0, 8.0, 8)
HALF_WIDTH = 0.25  # GeV
NAMES = ("E_recoil", "x1", "x2")
CUTS = np.linspace(0.0, 1.0, 201)
#: Small and quick: two hidden layers, few epochs, no early stopping unless a test asks for it.
SETTINGS = NetworkSettings(
    hidden=(16, 16), bce_epochs=10, bce_batch=1024, punzi_epochs=200, punzi_batch=None, punzi_learning_rate=0.01,
    bce_stop_patience=1000, punzi_stop_patience=1000, seed=1,
)  # fmt: skip


def _sample(seed, n_per_mass=1000, n_high=24_000, n_low=8_000):
    """Signal at each mass (resolution 0.08 GeV) and flat background; weights in expected events."""
    rng = np.random.default_rng(seed)
    event_window = np.repeat(np.arange(len(MASSES)), n_per_mass)
    signal_mass = MASSES[event_window] + rng.normal(0.0, 0.08, len(event_window))
    background_mass = np.r_[rng.uniform(0.5, 4.5, n_high), rng.uniform(4.5, 8.5, n_low)]
    weights = np.where(background_mass < 4.5, 0.5, 0.01)  # ~1500 vs ~10 expected events per window

    def features(mass, mean):
        return np.column_stack([5.0 - mass**2 / 20.0, rng.normal(mean, 1.0, (len(mass), 2))])

    lower, upper = MASSES - HALF_WIDTH, MASSES + HALF_WIDTH
    return {
        "signal": features(signal_mass, 1.5), "background": features(background_mass, 0.0), "weights": weights,
        "signal_membership": own_window(window_membership(signal_mass, lower, upper), event_window),
        "background_membership": window_membership(background_mass, lower, upper),
        "n_generated": np.full(len(MASSES), n_per_mass / 0.8),
    }  # fmt: skip


def _part(sample, signal_events, background_events):
    """The events of a split (memberships renumbered); n_generated and weights stay full-sample."""
    return {
        "signal": sample["signal"][signal_events], "background": sample["background"][background_events],
        "weights": sample["weights"][background_events],
        "signal_membership": sample["signal_membership"].take(signal_events),
        "background_membership": sample["background_membership"].take(background_events),
        "n_generated": sample["n_generated"],
    }  # fmt: skip


def _windows(sample):
    return soft_windows(
        sample["signal_membership"], sample["n_generated"], sample["weights"], sample["background_membership"]
    )


def _bce_data(net, sample):
    x = net.inputs(np.vstack([sample["signal"], sample["background"]]))
    y = np.r_[np.ones(len(sample["signal"])), np.zeros(len(sample["background"]))]
    return x, y, np.r_[np.ones(len(sample["signal"])), sample["weights"]]


def _grid(net, sample):
    return fom_grid(
        net.score(sample["signal"]), sample["signal_membership"], sample["n_generated"],
        net.score(sample["background"]), sample["weights"], sample["background_membership"], CUTS, LUMINOSITY,
    )  # fmt: skip


def _train(sample, settings, validation=None, share=1.0, validation_share=1.0):
    """BCE then Punzi training: the net with both histories."""
    net = PunziNet.create(np.vstack([sample["signal"], sample["background"]]), NAMES, settings)
    bce_validation = None if validation is None else _bce_data(net, validation)
    bce = train_bce(net.model, *_bce_data(net, sample), settings, validation=bce_validation)
    punzi_validation = None
    if validation is not None:
        validation_x = net.inputs(validation["signal"]), net.inputs(validation["background"])
        punzi_validation = (*validation_x, _windows(validation))
    punzi = train_punzi(
        net.model, net.inputs(sample["signal"]), net.inputs(sample["background"]), _windows(sample), LUMINOSITY,
        settings, validation=punzi_validation, share=share, validation_share=validation_share,
    )  # fmt: skip
    return dataclasses.replace(net, history={"bce": bce, "punzi": punzi}, working_point=0.5)


@pytest.fixture(scope="module")
def sample():
    return _sample(1)


@pytest.fixture(scope="module")
def trained(sample):
    """Full-batch Punzi training (monitoring the training loss); the BCE network's figures kept."""
    net = PunziNet.create(np.vstack([sample["signal"], sample["background"]]), NAMES, SETTINGS)
    bce = train_bce(net.model, *_bce_data(net, sample), SETTINGS)
    windows = _windows(sample)
    signal_x, background_x = net.inputs(sample["signal"]), net.inputs(sample["background"])
    test = _sample(11)
    bce_figures = {
        "loss": evaluate_punzi(net.model, signal_x, background_x, windows, LUMINOSITY),
        "train_grid": _grid(net, sample),
        "test_grid": _grid(net, test),
    }
    punzi = train_punzi(net.model, signal_x, background_x, windows, LUMINOSITY, SETTINGS)
    net = dataclasses.replace(net, history={"bce": bce, "punzi": punzi}, working_point=0.5)
    return {"net": net, "bce": bce_figures, "windows": windows, "test": test}


def test_punzi_training_beats_bce_with_one_cut(sample, trained):
    """The Punzi loss falls, and one cut on the Punzi-net does as well as the BCE network's best
    cut per window. Compared on an independent sample, the per-window cuts chosen on the training
    sample: chosen and evaluated on one sample they pick its fluctuations (the best windows keep a
    handful of background events), which flatters the BCE network by 0-25 % depending on the seed."""
    net, bce = trained["net"], trained["bce"]
    punzi_loss = evaluate_punzi(net.model, net.inputs(sample["signal"]), net.inputs(sample["background"]),
                                trained["windows"], LUMINOSITY)  # fmt: skip
    assert punzi_loss < 0.75 * bce["loss"]  # ~0.53 for seeds 1-6
    assert punzi_loss == net.history["punzi"].best  # the restored weights are those of the best epoch
    windows = np.arange(len(MASSES))
    bce_tuned = bce["test_grid"].sigma_min[bce["train_grid"].best_per_window().index, windows].mean()
    # the check is real: one cut on the BCE output is far from its best cut per window ...
    assert bce["test_grid"].at_cut(0.5).mean() > 1.1 * bce_tuned  # 1.17-1.30 for seeds 1-6
    # ... while one cut on the Punzi-net output is as good or better
    punzi_grid = _grid(net, trained["test"])
    assert punzi_grid.at_cut(0.5).mean() < 1.03 * bce_tuned  # 0.76-0.90 for seeds 1-6
    # the outputs pile up near 0 and 1: a fixed cut is close to the best per window (training sample)
    train_grid = _grid(net, sample)
    assert train_grid.at_cut(0.5).mean() < 1.15 * train_grid.best_per_window().sigma_min.mean()  # 1.03-1.10


def test_training_is_reproducible_and_seeded(sample):
    rng = np.random.default_rng(2)
    signal_order, background_order = rng.permutation(len(sample["signal"])), rng.permutation(len(sample["background"]))
    n_signal, n_background = 3 * len(signal_order) // 4, 3 * len(background_order) // 4
    train = _part(sample, signal_order[:n_signal], background_order[:n_background])
    validation = _part(sample, signal_order[n_signal:], background_order[n_background:])
    settings = dataclasses.replace(SETTINGS, bce_epochs=3, punzi_epochs=4, punzi_batch=8000, punzi_learning_rate=3e-3)
    runs = [_train(train, dataclasses.replace(settings, seed=seed), validation, 0.75, 0.25) for seed in (5, 5, 6)]
    for first, second in zip(runs[0].model.get_weights(), runs[1].model.get_weights(), strict=True):
        assert_array_equal(first, second)
    scores = [net.score(sample["background"]) for net in runs]
    assert_array_equal(scores[0], scores[1])
    assert runs[0].history["punzi"].val_loss == runs[1].history["punzi"].val_loss
    assert np.abs(scores[0] - scores[2]).max() > 1e-3
    assert runs[0].history["punzi"].epochs == 4 and len(runs[0].history["punzi"].val_loss) == 4


def test_early_stopping_restores_the_best_validation_weights():
    settings = dataclasses.replace(
        SETTINGS, bce_epochs=40, bce_learning_rate=0.05, bce_lr_patience=1, bce_stop_patience=3, min_delta=0.0,
        punzi_epochs=40, punzi_learning_rate=0.05, punzi_lr_patience=1, punzi_stop_patience=3, punzi_batch=12_000,
    )  # fmt: skip
    small = _sample(3, n_per_mass=200, n_high=4000, n_low=2000)
    validation = _sample(4, n_per_mass=200, n_high=4000, n_low=2000)
    net = _train(small, settings, validation)
    bce, punzi = net.history["bce"], net.history["punzi"]
    for history in (bce, punzi):
        assert history.stop_reason == "early stopping"
        assert history.epochs < 40 and history.best_epoch < history.epochs
        monitored = (history.initial, *history.val_loss)
        assert history.best == min(monitored) and monitored[history.best_epoch] == history.best
        rates = np.array(history.learning_rate)
        assert rates[0] == 0.05 and np.all(np.isin(rates, 0.05 * 0.5 ** np.arange(10))) and rates[-1] < 0.05
    assert net.history["punzi"].monitored == punzi.val_loss
    # the returned network is the one of the best validation loss: re-evaluated, the same number
    x = net.inputs(np.vstack([validation["signal"], validation["background"]]))
    signal_x, background_x = net.inputs(validation["signal"]), net.inputs(validation["background"])
    assert evaluate_punzi(net.model, signal_x, background_x, _windows(validation), LUMINOSITY) == punzi.best
    assert punzi.best <= punzi.initial
    # BCE: restore the BCE stage's best weights into a fresh network and re-evaluate
    fresh = _train(small, dataclasses.replace(settings, punzi_epochs=0), validation)
    y = np.r_[np.ones(len(validation["signal"])), np.zeros(len(validation["background"]))]
    weights = np.r_[np.ones(len(validation["signal"])), validation["weights"]]
    assert evaluate_bce(fresh.model, x, y, weights) == bce.best
    assert fresh.history["punzi"].epochs == 0 and fresh.history["punzi"].best_epoch == 0


class _Weights:
    """A stand-in for a Keras model: its "weights" are the epoch they were taken at."""

    def __init__(self):
        self.epoch = 0

    def get_weights(self):
        return self.epoch

    def set_weights(self, epoch):
        self.epoch = epoch


def test_schedule_halves_the_rate_and_keeps_the_smallest_value():
    settings = dataclasses.replace(SETTINGS, min_delta=0.01, lr_factor=0.5, min_learning_rate=0.2)
    model = _Weights()
    schedule = _Schedule(model, 10.0, 1.0, 2, 4, settings)
    values = [9.0, 8.95, 8.93, 8.92, 9.5, 9.5]  # after 9.0 only improvements < 1 %
    stops, rates = [], []
    for epoch, value in enumerate(values, start=1):
        model.epoch = epoch
        stops.append(schedule.update(epoch, value))
        rates.append(schedule.learning_rate)
    assert stops == [False, False, False, False, True, True]
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]  # halved after 2 epochs without a 1 % gain
    schedule.restore()
    assert model.epoch == 4 and schedule.best == 8.92  # the smallest value, though not 1 % better
    floor = _Schedule(model, np.nan, 0.3, 1, 10, settings)
    for epoch in range(1, 4):
        floor.update(epoch, np.inf)
    assert floor.learning_rate == 0.2 and floor.best == np.inf and floor.best_epoch == 0
    assert not floor.update(4, 5.0) and (floor.best, floor.best_epoch, floor.since_improvement) == (5.0, 4, 0)


def test_save_and_load_round_trip(sample, trained, tmp_path):
    net = trained["net"]
    features = np.vstack([sample["signal"][:500], sample["background"][:3000]])
    features[7, 1] = np.nan
    folder = net.save(tmp_path / "punzinet")
    loaded = PunziNet.load(folder, feature_names=NAMES)
    scores = net.score(features)
    assert_array_equal(loaded.score(features), scores)  # bit-identical, NaN where NaN
    assert scores.dtype == np.float64 and np.isnan(scores[7]) and np.all((scores[:7] >= 0) & (scores[:7] <= 1))
    assert loaded.settings == net.settings and loaded.working_point == 0.5 and loaded.feature_names == NAMES
    assert loaded.history["punzi"] == net.history["punzi"]
    assert_array_equal(loaded.standardiser.mean, net.standardiser.mean)
    # saving again replaces the folder, and leaves no temporary folder behind
    dataclasses.replace(net, working_point=0.6).save(folder)
    assert PunziNet.load(folder).working_point == 0.6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["punzinet"]


def test_load_errors_are_one_line(sample, trained, tmp_path):
    net = trained["net"]
    folder = net.save(tmp_path / "net")
    with pytest.raises(BumphuntError, match=r"trained on features \['E_recoil', 'x1', 'x2'\], not \['E_recoil', 'x2'"):
        PunziNet.load(folder, feature_names=("E_recoil", "x2", "x1"))
    with pytest.raises(BumphuntError, match="does not exist"):
        PunziNet.load(tmp_path / "nothing")
    with pytest.raises(BumphuntError, match="punzinet.json is missing"):
        PunziNet.load(tmp_path)
    weights = folder / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(BumphuntError, match="corrupt") as error:
        PunziNet.load(folder)
    assert "\n" not in str(error.value)
    (folder / "punzinet.json").write_text("{not json")
    with pytest.raises(BumphuntError, match="corrupt Punzi-net description"):
        PunziNet.load(folder)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(BumphuntError, match="not a Punzi-net folder"):
        net.save(tmp_path / "other")
    with pytest.raises(ValueError, match="2 features per event, the standardisation has 3"):
        net.score(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="not the 3-feature network of settings.hidden"):
        dataclasses.replace(net, settings=dataclasses.replace(net.settings, hidden=(16,)))
    with pytest.raises(ValueError, match="working_point"):
        dataclasses.replace(net, working_point=1.5)
    folder = net.save(tmp_path / "net")  # replaces the corrupt one
    description = (folder / "punzinet.json").read_text()
    (folder / "punzinet.json").write_text(description.replace('"x2"', '"x2", "x3"', 1))
    with pytest.raises(BumphuntError, match="4 features but a standardisation of 3"):
        PunziNet.load(folder)


def test_standardiser_and_nan_features(trained):
    rng = np.random.default_rng(7)
    features = rng.normal([1.0, -2.0, 5.0], [0.5, 2.0, 1.0], (1000, 3))
    features[:, 2][:10] = 3.0
    bad = features.copy()
    bad[3, 0], bad[8, 2], bad[9, 1] = np.nan, np.inf, np.nan
    standardiser = Standardiser.fit(bad)
    good = np.isfinite(bad).all(axis=1)
    assert_array_equal(standardiser.mean, bad[good].mean(axis=0))  # events with a NaN are left out
    assert_array_equal(standardiser.scale, bad[good].std(axis=0))
    x = standardiser.transform(bad)
    assert x.dtype == np.float32 and np.isnan(x[3, 0]) and np.isinf(x[8, 2]) and np.isfinite(x[good]).all()
    assert Standardiser.fit(np.c_[features[:, :2], np.ones(1000)]).scale[2] == 1.0  # constant feature
    assert_array_equal(Standardiser.from_dict(standardiser.to_dict()).scale, standardiser.scale)
    with pytest.raises(ValueError, match="no event with all features finite"):
        Standardiser.fit(np.full((5, 3), np.nan))
    # scoring: NaN for events with a non-finite feature, the others as if scored alone
    net = trained["net"]
    scores = net.score(bad)
    assert_array_equal(np.isnan(scores), ~good)
    assert_array_equal(scores[good], net.score(bad[good]))
    # training refuses them
    with pytest.raises(ValueError, match="non-finite"):
        train_bce(net.model, net.inputs(bad), np.r_[np.ones(500), np.zeros(500)], None, SETTINGS)


def test_settings_from_config():
    settings = NetworkSettings.from_config({"hidden": [20, 10], "punzi_batch": None, "seed": 3})
    assert settings.hidden == (20, 10) and settings.punzi_batch is None and settings.seed == 3
    assert NetworkSettings.from_config(settings.to_dict()) == settings
    assert NetworkSettings.from_config({"bce_batch": 4096.0, "punzi_batch": 2e4}).bce_batch == 4096
    defaults = NetworkSettings()
    assert defaults.hidden == (30,) * 10 and defaults.bce_batch == 2048 and defaults.punzi_batch == 20_000
    assert defaults.lr_factor == 0.5 and defaults.optimizer == "adam"
    with pytest.raises(ConfigError, match="unknown network setting 'hiden' \\(did you mean 'hidden'\\?\\)"):
        NetworkSettings.from_config({"hiden": [10]})
    for key, value in [("hidden", []), ("bce_batch", 0), ("lr_factor", 1.0), ("optimizer", "rmsprop"),
                       ("punzi_learning_rate", -1.0), ("bce_epochs", 2.5), ("seed", True)]:  # fmt: skip
        with pytest.raises(ConfigError, match=f"'{key}'"):
            NetworkSettings.from_config({key: value})


def test_network_shape_and_initial_weights_are_seeded():
    settings = NetworkSettings(hidden=(8, 4), negative_slope=0.1, seed=9)
    model = build_network(5, settings)
    assert [w.shape for w in model.get_weights()] == [(5, 8), (8,), (8, 4), (4,), (4, 1), (1,)]
    assert all(w.dtype == np.float32 for w in model.get_weights())
    again, other = build_network(5, settings), build_network(5, dataclasses.replace(settings, seed=10))
    for first, second, third in zip(model.get_weights(), again.get_weights(), other.get_weights(), strict=True):
        assert_array_equal(first, second)
        assert first.any() == third.any() and (not first.any() or not np.array_equal(first, third))
    out = predict(model, np.random.default_rng(1).normal(size=(70_000, 5)), batch_size=30_000)
    assert out.shape == (70_000,) and out.dtype == np.float64 and np.all((out > 0) & (out < 1))


def test_bce_weights_are_balanced_and_shares_rescale(sample, trained):
    net = trained["net"]
    x, y, weights = _bce_data(net, sample)
    # the signal weights are rescaled to the background sum: a factor on them changes nothing
    reference = evaluate_bce(net.model, x, y, weights)
    assert evaluate_bce(net.model, x, y, np.where(y == 1, 7.0, 1.0) * weights) == pytest.approx(reference, rel=1e-12)
    # a share g of the sample with full-sample weights equals weights / g and N_generated x g
    half = _part(sample, np.arange(0, len(sample["signal"]), 2), np.arange(0, len(sample["background"]), 2))
    signal_x, background_x = net.inputs(half["signal"]), net.inputs(half["background"])
    shared = evaluate_punzi(net.model, signal_x, background_x, _windows(half), LUMINOSITY, share=0.5)
    scaled = dict(half, weights=half["weights"] / 0.5, n_generated=half["n_generated"] * 0.5)
    assert shared == pytest.approx(evaluate_punzi(net.model, signal_x, background_x, _windows(scaled), LUMINOSITY),
                                   rel=1e-12)  # fmt: skip
    with pytest.raises(ValueError, match="built for"):
        evaluate_punzi(net.model, signal_x[:-1], background_x, _windows(half), LUMINOSITY)
    with pytest.raises(ValueError, match="unknown Punzi-loss option"):
        evaluate_punzi(net.model, signal_x, background_x, _windows(half), LUMINOSITY, loss_options={"fraction": 0.5})
    with pytest.raises(ValueError, match="both signal"):
        evaluate_bce(net.model, x, np.zeros(len(x)))


def test_history_round_trips_through_a_dict(trained):
    history = trained["net"].history["bce"]
    assert TrainingHistory.from_dict(history.to_dict()) == history
    assert history.stage == "bce" and history.monitor == "training" and history.val_loss == ()
    assert len(history.monitored) == len(history.loss) == history.epochs == 10
