"""The Punzi-net: a feed-forward network pre-trained with binary cross-entropy, then trained
on the Punzi loss of :mod:`bumphunt.select.loss` (Abudinen et al., EPJC 82 (2022) 121).

Arrays in, arrays out: :func:`train_bce` and :func:`train_punzi` take network inputs (features
already standardised, float32) and the sparse windows of :func:`~bumphunt.select.loss.soft_windows`,
and know nothing of ntuples or stages. :class:`PunziNet` bundles the trained network with its
:class:`Standardiser`, feature names, settings, working point and training history, scores raw
features and saves to / loads from a folder.

Training, following the reference recipe (feichtip/punzinet) and the Belle II ALP analysis:

1. BCE pre-training on signal (label 1) and background (label 0), the signal weights rescaled
   so that the signal and background weight sums are equal (then both to a mean weight of 1);
   minibatches of ``bce_batch`` events drawn from a seeded permutation every epoch.
2. Punzi training: minimise the mean of sigma_min over the training windows. A step uses the
   same fraction f = 1 / n_steps of the signal and of the background events (a seeded
   permutation of each, split into n_steps near-equal batches, n_steps = ceil(events /
   ``punzi_batch``)), and the yields are divided by f (:func:`~bumphunt.select.loss.soft_yields`);
   ``punzi_batch=None`` is full batch.

Both stages: Adam (default; its steps do not scale with the size of the loss, which is in pb
and spans orders of magnitude between analyses) or SGD; the learning rate is halved when the
monitored loss has not improved for ``*_lr_patience`` epochs (ReduceLROnPlateau); training
stops after ``*_stop_patience`` epochs without improvement (early stopping) and the weights of
the best monitored value, including the weights the stage started from (epoch 0), are restored.
The monitored value is the loss of the validation sample after each epoch when one is given,
else that of the training sample (re-evaluated after the epoch, so that the restored weights
are those of the recorded value).

Events with a NaN or infinite feature (:attr:`~bumphunt.select.features.FeatureTable.invalid`):
the training functions refuse them (leave them out first), :meth:`Standardiser.fit` ignores
them, and :meth:`PunziNet.score` gives them the score NaN (which
:func:`~bumphunt.select.fom.fom_grid` refuses: count them as not selected).

Determinism: each training calls ``tf.keras.utils.set_random_seed(seed)`` (which also seeds
Python's and numpy's global generators) and ``tf.config.experimental.enable_op_determinism()``,
which is process-global and stays on for the rest of the process. The weights are initialised
from seeds derived from ``settings.seed`` in :func:`build_network`, and the batches come from
``numpy.random.default_rng``; on one machine and thread count two trainings are bit-identical.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from .._io import write_json
from .._version import __version__
from ..errors import BumphuntError, ConfigError
from .loss import SoftWindows, punzi_loss

__all__ = [
    "NetworkSettings",
    "PunziNet",
    "Standardiser",
    "TrainingHistory",
    "build_network",
    "evaluate_bce",
    "evaluate_punzi",
    "predict",
    "train_bce",
    "train_punzi",
]

log = logging.getLogger(__name__)
keras = tf.keras

#: Optimisers :class:`NetworkSettings` accepts.
OPTIMIZERS = ("adam", "sgd")
#: Network outputs are clipped to [BCE_EPSILON, 1 - BCE_EPSILON] in the cross-entropy (as Keras).
BCE_EPSILON = 1e-7
#: Events per forward pass in :func:`predict`.
PREDICT_BATCH = 65_536
#: Files of a saved Punzi-net folder.
WEIGHTS_FILE = "model.weights.h5"
DESCRIPTION_FILE = "punzinet.json"
_FORMAT = "bumphunt-punzinet"
_FORMAT_VERSION = 1
#: Options of :func:`~bumphunt.select.loss.punzi_loss` that :func:`train_punzi` passes on.
_LOSS_OPTIONS = ("a", "b", "form", "constant", "scale", "normalise", "reference", "background_floor",
                 "efficiency_floor")  # fmt: skip


@dataclass(frozen=True)
class NetworkSettings:
    """Architecture and training settings of the Punzi-net.

    Defaults: the Belle II ALP analysis' network (10 hidden layers up to 30 wide, LeakyReLU,
    sigmoid output; BCE batches of 2048, Punzi batches of 20,000), all ten layers 30 wide. It
    is small enough for a CPU: on 2 cores, 500k events x 9 features and 200 windows (4.6 M
    background pairs), a BCE epoch takes 0.5 s, a Punzi epoch 0.9 s in batches of 20,000
    (0.35 s full batch), and monitoring 0.2 s per 500k events, so the epoch limits below
    (reached only without early stopping) take 2-4 minutes. Adam at 1e-3 replaces the
    reference's SGD (lr 1.0 for BCE, 0.05 for Punzi, tuned to its 8-4 tanh network). The
    patiences follow the reference (10 and 20 epochs), shortened since a minibatch epoch makes
    25 steps where the reference's full-batch Punzi epoch made one.

    Attributes
    ----------
    hidden : tuple of int
        Widths of the hidden layers.
    negative_slope : float
        Slope of LeakyReLU below 0 (PyTorch's default 0.01; Keras' is 0.3).
    optimizer : {"adam", "sgd"}
    bce_epochs, bce_batch, bce_learning_rate
        BCE pre-training: maximum epochs, events per step, initial learning rate.
    bce_lr_patience, bce_stop_patience : int
        Epochs without improvement before the learning rate is halved / training stops.
    punzi_epochs, punzi_batch, punzi_learning_rate, punzi_lr_patience, punzi_stop_patience
        The same for the Punzi stage; ``punzi_batch=None`` is full batch.
    lr_factor : float
        Factor on the learning rate at a plateau (0.5).
    min_learning_rate : float
        Floor of the learning rate.
    min_delta : float
        Relative improvement of the monitored loss that resets the patience counters.
    validation_fraction : float
        Share of the events the stage sets aside for validation (the training functions take
        the split as given).
    seed : int
        Seeds the weights, the batches and TensorFlow.
    """

    hidden: tuple[int, ...] = (30,) * 10
    negative_slope: float = 0.01
    optimizer: str = "adam"
    bce_epochs: int = 100
    bce_batch: int = 2048
    bce_learning_rate: float = 1e-3
    bce_lr_patience: int = 5
    bce_stop_patience: int = 15
    punzi_epochs: int = 100
    punzi_batch: int | None = 20_000
    punzi_learning_rate: float = 1e-3
    punzi_lr_patience: int = 10
    punzi_stop_patience: int = 25
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-6
    min_delta: float = 1e-4
    validation_fraction: float = 0.2
    seed: int = 1

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or len(hidden) == 0:
            raise ConfigError(f"network setting 'hidden' must be a non-empty list of layer widths, got {hidden!r}")
        object.__setattr__(self, "hidden", tuple(_integer("hidden", width, 1) for width in hidden))
        for name in ("bce_epochs", "punzi_epochs", "seed"):
            object.__setattr__(self, name, _integer(name, getattr(self, name), 0))
        for name in ("bce_batch", "bce_lr_patience", "bce_stop_patience", "punzi_lr_patience", "punzi_stop_patience"):
            object.__setattr__(self, name, _integer(name, getattr(self, name), 1))
        if self.punzi_batch is not None:
            object.__setattr__(self, "punzi_batch", _integer("punzi_batch", self.punzi_batch, 1))
        if self.optimizer not in OPTIMIZERS:
            choices = ", ".join(OPTIMIZERS)
            raise ConfigError(f"network setting 'optimizer' must be one of {choices}, got {self.optimizer!r}")
        bounds = {
            "negative_slope": (0.0, 1.0, True, False), "bce_learning_rate": (0.0, math.inf, False, False),
            "punzi_learning_rate": (0.0, math.inf, False, False), "lr_factor": (0.0, 1.0, False, False),
            "min_learning_rate": (0.0, math.inf, True, False), "min_delta": (0.0, 1.0, True, False),
            "validation_fraction": (0.0, 1.0, True, False),
        }  # fmt: skip
        for name, (low, high, low_ok, high_ok) in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"network setting {name!r} must be a number, got {value!r}")
            inside = (low <= value if low_ok else low < value) and (value <= high if high_ok else value < high)
            if not inside:
                interval = f"{'[' if low_ok else '('}{low}, {high}{']' if high_ok else ')'}"
                raise ConfigError(f"network setting {name!r} must lie in {interval}, got {value!r}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def from_config(cls, section: Mapping | None) -> NetworkSettings:
        """Settings from a configuration mapping (keys: the attribute names; missing: defaults).

        Raises
        ------
        ConfigError
            Naming an unknown key (with the closest known one) or an invalid value.
        """
        section = dict(section or {})
        names = [f.name for f in dataclasses.fields(cls)]
        for key in section:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"unknown network setting {key!r}{hint}")
        return cls(**section)

    def to_dict(self) -> dict:
        """The settings as a JSON-able mapping (:meth:`from_config` reads it back)."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out


def _integer(name: str, value, minimum: int) -> int:
    """``value`` as an int >= minimum (whole floats such as 2e4 accepted), else ConfigError."""
    whole = isinstance(value, float) and value.is_integer()
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) or whole) or value < minimum:
        raise ConfigError(f"network setting {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True, eq=False)
class Standardiser:
    """Per-feature shift and scale to zero mean and unit variance.

    Fitted on the events whose features are all finite (events with a NaN or infinite feature
    are left out); a feature of zero spread gets scale 1. :meth:`transform` keeps non-finite
    values non-finite, and :meth:`PunziNet.score` gives such events the score NaN.

    Attributes
    ----------
    mean, scale : float64 arrays (n_features,)
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features) -> Standardiser:
        """Fit on ``features`` (n_events, n_features) of the training events.

        Raises
        ------
        ValueError
            Not 2-d, or no event with all features finite.
        """
        features = _matrix(features, "features")
        finite = np.isfinite(features).all(axis=1)
        if not finite.any():
            raise ValueError("no event with all features finite to fit the standardisation on")
        mean = features[finite].mean(axis=0)
        scale = features[finite].std(axis=0)
        return cls(mean, np.where(scale > 0.0, scale, 1.0))

    @property
    def n_features(self) -> int:
        return len(self.mean)

    def transform(self, features) -> np.ndarray:
        """Standardised features as float32 (n_events, n_features); non-finite stay non-finite."""
        features = _matrix(features, "features")
        if features.shape[1] != self.n_features:
            raise ValueError(f"{features.shape[1]} features per event, the standardisation has {self.n_features}")
        with np.errstate(invalid="ignore"):
            return ((features - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, document: Mapping) -> Standardiser:
        mean = np.asarray(document["mean"], dtype=np.float64)
        scale = np.asarray(document["scale"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape or not np.all(np.isfinite(mean) & (scale > 0)):
            raise ValueError("standardisation needs finite means and positive scales, one per feature")
        return cls(mean, scale)


def _matrix(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must have shape (n_events, n_features), got {values.shape}")
    return values


@dataclass(frozen=True)
class TrainingHistory:
    """What one training stage did, epoch by epoch.

    Attributes
    ----------
    stage : {"bce", "punzi"}
    monitor : {"validation", "training"}
        The sample whose loss the schedule and early stopping watched: the validation sample,
        or without one the training sample (re-evaluated after each epoch).
    loss : tuple of float
        Training loss per epoch: the mean over the epoch's batches (weights moving).
    monitored : tuple of float
        The monitored loss after each epoch.
    learning_rate : tuple of float
        Learning rate of each epoch.
    initial : float
        The monitored loss before the first epoch (the weights the stage started from).
    best_epoch : int
        Epoch whose weights were restored (0: the starting weights).
    best : float
        Its monitored loss: the smallest of ``initial`` and ``monitored``.
    stop_reason : {"epochs", "early stopping", "non-finite loss"}
    seconds : float
        Wall time of the stage.
    """

    stage: str
    monitor: str
    loss: tuple[float, ...]
    monitored: tuple[float, ...]
    learning_rate: tuple[float, ...]
    initial: float
    best_epoch: int
    best: float
    stop_reason: str
    seconds: float

    @property
    def epochs(self) -> int:
        """Epochs run."""
        return len(self.loss)

    @property
    def val_loss(self) -> tuple[float, ...]:
        """Validation loss after each epoch (empty without validation)."""
        return self.monitored if self.monitor == "validation" else ()

    def to_dict(self) -> dict:
        """JSON-able (non-finite losses become null when written with ``_io.write_json``)."""
        return dataclasses.asdict(self) | {name: list(getattr(self, name)) for name in _HISTORY_SERIES}

    @classmethod
    def from_dict(cls, document: Mapping) -> TrainingHistory:
        def number(value) -> float:
            return math.nan if value is None else float(value)

        values = {f.name: document[f.name] for f in dataclasses.fields(cls)}
        values.update({name: tuple(map(number, document[name])) for name in _HISTORY_SERIES})
        values.update(initial=number(values["initial"]), best=number(values["best"]),
                      best_epoch=int(values["best_epoch"]), seconds=float(values["seconds"]))  # fmt: skip
        return cls(**values)


_HISTORY_SERIES = ("loss", "monitored", "learning_rate")


def _layer_seed(seed: int, layer: int) -> int:
    return int(np.random.SeedSequence([seed, layer]).generate_state(1)[0])


def build_network(n_features: int, settings: NetworkSettings | None = None) -> keras.Model:
    """The Punzi-net: Dense + LeakyReLU hidden layers, one sigmoid output, float32.

    Kernels are He-normal (Glorot-uniform for the output), seeded from ``settings.seed`` and
    the layer index, biases 0: the same settings give the same initial weights.
    """
    settings = settings or NetworkSettings()
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    inputs = keras.Input((int(n_features),), dtype="float32", name="features")
    hidden = inputs
    for k, width in enumerate(settings.hidden):
        initializer = keras.initializers.HeNormal(seed=_layer_seed(settings.seed, k))
        hidden = keras.layers.Dense(width, kernel_initializer=initializer, dtype="float32", name=f"dense_{k}")(hidden)
        hidden = keras.layers.LeakyReLU(negative_slope=settings.negative_slope, dtype="float32",
                                        name=f"leaky_relu_{k}")(hidden)  # fmt: skip
    initializer = keras.initializers.GlorotUniform(seed=_layer_seed(settings.seed, len(settings.hidden)))
    output = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=initializer, dtype="float32",
                                name="output")(hidden)  # fmt: skip
    return keras.Model(inputs, output, name="punzinet")


def predict(model: keras.Model, x, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Network outputs (float64, n_events) of network inputs ``x``, ``batch_size`` events per call.

    Uses ``model(x, training=False)`` (no progress output); the same inputs give the same bits.
    """
    x = _network_inputs(x, model, "x", finite=False)
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), batch_size):
        out[start : start + batch_size] = model(x[start : start + batch_size], training=False).numpy()[:, 0]
    return out


def _network_inputs(x, model: keras.Model, name: str, *, finite: bool = True) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n_features = model.inputs[0].shape[-1]
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n_events, {n_features}), got {x.shape}")
    if finite and not np.isfinite(x).all():
        raise ValueError(f"{name} holds non-finite features: leave such events out of training")
    return x


def _bce_weights(y: np.ndarray, sample_weight, name: str) -> np.ndarray:
    """Weights with the signal and background sums equal, and mean 1 over all events."""
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if weight.shape != y.shape or not np.all(np.isfinite(weight) & (weight >= 0.0)):
        raise ValueError(f"{name}: sample weights must be {len(y)} finite numbers >= 0")
    signal = y == 1.0
    sums = weight[signal].sum(), weight[~signal].sum()
    if not (sums[0] > 0.0 and sums[1] > 0.0):
        raise ValueError(f"{name}: both signal (y = 1) and background (y = 0) need a positive weight sum")
    half = 0.5 * len(y)
    return np.where(signal, weight * (half / sums[0]), weight * (half / sums[1]))


def _labels(y, n: int, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape != (n,) or not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError(f"{name}: labels must be {n} values 0 (background) or 1 (signal)")
    return y


def evaluate_bce(model: keras.Model, x, y, sample_weight=None) -> float:
    """Weighted binary cross-entropy of ``model`` on (x, y), the weights balanced as in training.

    Returns sum(w_i l_i) / sum(w_i) in float64, outputs clipped to [1e-7, 1 - 1e-7].
    """
    x = _network_inputs(x, model, "x")
    y = _labels(y, len(x), "evaluate_bce")
    weight = _bce_weights(y, sample_weight, "evaluate_bce")
    return _bce_value(predict(model, x), y, weight)


def _bce_value(p: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    p = np.clip(p, BCE_EPSILON, 1.0 - BCE_EPSILON)
    losses = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return float(np.sum(weight * losses) / np.sum(weight))


def _seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _optimizer(settings: NetworkSettings, learning_rate: float, model: keras.Model) -> keras.optimizers.Optimizer:
    if settings.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate)
    else:
        optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    return optimizer


class _Schedule:
    """ReduceLROnPlateau and early stopping on one monitored value; keeps the best weights.

    The best weights are those of the smallest value seen; the patience counters reset only
    on an improvement by more than ``min_delta`` (relative) over the last such improvement.
    """

    def __init__(self, model, initial: float, learning_rate: float, lr_patience: int, stop_patience: int,
                 settings: NetworkSettings) -> None:  # fmt: skip
        self.model = model
        self.best = initial if math.isfinite(initial) else math.inf
        self.reference = self.best
        self.best_epoch = 0
        self.best_weights = model.get_weights()
        self.learning_rate = learning_rate
        self.lr_patience, self.stop_patience = lr_patience, stop_patience
        self.settings = settings
        self.since_improvement = self.since_lr_change = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record the monitored ``value`` after ``epoch``; True when training should stop."""
        finite = math.isfinite(value)
        if finite and value < self.best:
            self.best, self.best_epoch, self.best_weights = value, epoch, self.model.get_weights()
        margin = self.settings.min_delta * abs(self.reference)
        if finite and (math.isinf(self.reference) or value < self.reference - margin):  # inf: no reference yet
            self.reference = value
            self.since_improvement = self.since_lr_change = 0
            return False
        self.since_improvement += 1
        self.since_lr_change += 1
        if self.since_lr_change >= self.lr_patience and self.learning_rate > self.settings.min_learning_rate:
            self.learning_rate = max(self.learning_rate * self.settings.lr_factor, self.settings.min_learning_rate)
            self.since_lr_change = 0
        return self.since_improvement >= self.stop_patience

    def restore(self) -> None:
        self.model.set_weights(self.best_weights)


def _run(stage: str, model, settings: NetworkSettings, epochs: int, learning_rate: float, lr_patience: int,
         stop_patience: int, make_epoch, monitor, on_validation: bool) -> TrainingHistory:  # fmt: skip
    """The epoch loop shared by both stages.

    ``make_epoch(optimizer)`` returns ``run_epoch(rng)``, which trains one epoch and returns the
    mean batch loss; ``monitor()`` evaluates the monitored loss of the current weights.
    """
    start = time.perf_counter()
    _seed_everything(settings.seed)
    rng = np.random.default_rng([settings.seed, 0 if stage == "bce" else 1])
    optimizer = _optimizer(settings, learning_rate, model)
    run_epoch = make_epoch(optimizer)
    initial = monitor()
    schedule = _Schedule(model, initial, learning_rate, lr_patience, stop_patience, settings)
    losses, monitored, rates = [], [], []
    reason = "epochs"
    for epoch in range(1, epochs + 1):
        optimizer.learning_rate = schedule.learning_rate
        rates.append(schedule.learning_rate)
        losses.append(run_epoch(rng))
        monitored.append(monitor() if math.isfinite(losses[-1]) else math.nan)
        log.debug("%s epoch %d: loss %.6g, monitored %.6g, lr %.3g", stage, epoch, losses[-1], monitored[-1], rates[-1])
        if not math.isfinite(losses[-1]):
            reason = "non-finite loss"
            break
        if schedule.update(epoch, monitored[-1]):
            reason = "early stopping"
            break
    schedule.restore()
    history = TrainingHistory(
        stage, "validation" if on_validation else "training", tuple(losses), tuple(monitored), tuple(rates),
        float(initial), schedule.best_epoch, float(schedule.best), reason, time.perf_counter() - start,
    )  # fmt: skip
    log.info("%s training: %d epochs (%s), best epoch %d, monitored loss %.6g -> %.6g", stage, history.epochs,
             reason, history.best_epoch, history.initial, history.best)  # fmt: skip
    return history


def train_bce(
    model: keras.Model,
    x,
    y,
    sample_weight,
    settings: NetworkSettings | None = None,
    *,
    validation: tuple | None = None,
) -> TrainingHistory:
    """Pre-train ``model`` with weighted binary cross-entropy; restores the best weights.

    Parameters
    ----------
    model : keras.Model
        From :func:`build_network`; trained in place.
    x : array (n_events, n_features)
        Network inputs (standardised, all finite).
    y : array (n_events,)
        1 for signal, 0 for background.
    sample_weight : array (n_events,) or None
        Event weights (e.g. expected events for background); the signal weights are then
        rescaled so that the signal and background sums are equal, and all to mean 1.
    settings : NetworkSettings
        ``bce_*`` settings, optimiser, schedule, seed.
    validation : (x, y, sample_weight), optional
        Validation events (weights balanced the same way): their loss after each epoch drives
        the learning-rate schedule and early stopping. Without it the training sample is
        re-evaluated after each epoch instead (one more forward pass per epoch).

    Returns
    -------
    TrainingHistory
        ``stage="bce"``.
    """
    settings = settings or NetworkSettings()
    x = _network_inputs(x, model, "x")
    y = _labels(y, len(x), "train_bce")
    weight = _bce_weights(y, sample_weight, "train_bce")
    monitor_x, monitor_y, monitor_weight = x, y, weight
    if validation is not None:
        val_x, val_y, val_weight = validation
        monitor_x = _network_inputs(val_x, model, "validation x")
        monitor_y = _labels(val_y, len(monitor_x), "train_bce validation")
        monitor_weight = _bce_weights(monitor_y, val_weight, "train_bce validation")

    def monitor():
        return _bce_value(predict(model, monitor_x), monitor_y, monitor_weight)

    x_all, y_all, w_all = tf.constant(x), tf.constant(y, tf.float32), tf.constant(weight, tf.float32)
    n, batch = len(x), settings.bce_batch
    variables = model.trainable_variables

    def make_epoch(optimizer):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def step(events):
            xb, yb, wb = tf.gather(x_all, events), tf.gather(y_all, events), tf.gather(w_all, events)
            with tf.GradientTape() as tape:
                p = tf.clip_by_value(model(xb, training=True)[:, 0], BCE_EPSILON, 1.0 - BCE_EPSILON)
                loss = -tf.reduce_mean(wb * (yb * tf.math.log(p) + (1.0 - yb) * tf.math.log(1.0 - p)))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        def run_epoch(rng):
            order = rng.permutation(n)
            total = 0.0
            for start in range(0, n, batch):
                events = np.sort(order[start : start + batch])
                total += float(step(events)) * len(events)
            return total / n

        return run_epoch

    return _run("bce", model, settings, settings.bce_epochs, settings.bce_learning_rate, settings.bce_lr_patience,
                settings.bce_stop_patience, make_epoch, monitor, validation is not None)  # fmt: skip


def _loss_options(options: Mapping | None) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(_LOSS_OPTIONS))
    if unknown:
        raise ValueError(f"unknown Punzi-loss option(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(_LOSS_OPTIONS)}")  # fmt: skip
    return options


def _check_windows(windows: SoftWindows, n_signal: int, n_background: int, name: str) -> None:
    if not isinstance(windows, SoftWindows):
        raise TypeError(f"{name} must be loss.SoftWindows (loss.soft_windows), got {type(windows).__name__}")
    if (windows.n_signal, windows.n_background) != (n_signal, n_background):
        raise ValueError(f"{name} are built for {windows.n_signal} signal and {windows.n_background} background "
                         f"events, given {n_signal} and {n_background}")  # fmt: skip


def _check_share(share: float, name: str) -> float:
    if not 0.0 < share <= 1.0:
        raise ValueError(f"{name} must lie in (0, 1], got {share}")
    return float(share)


def evaluate_punzi(
    model: keras.Model,
    signal_x,
    background_x,
    windows: SoftWindows,
    luminosity: float,
    *,
    share: float = 1.0,
    loss_options: Mapping | None = None,
) -> float:
    """The Punzi loss (mean sigma_min over the windows, pb) of ``model`` on a full sample.

    Parameters
    ----------
    model : keras.Model
    signal_x, background_x : arrays (n, n_features)
        Network inputs of the signal and background events of ``windows``.
    windows : loss.SoftWindows
        Their windows (:func:`~bumphunt.select.loss.soft_windows`).
    luminosity : float
        pb^-1, at which the background weights of ``windows`` are expected events.
    share : float
        The fraction of the full sample these events are (e.g. 0.2 for a validation split):
        the yields are divided by it, so sigma_min is that of the full sample.
    loss_options : mapping, optional
        Options of :func:`~bumphunt.select.loss.punzi_loss` (a, b, form, constant, scale,
        normalise, reference, background_floor, efficiency_floor).
    """
    options = _loss_options(loss_options)
    signal_x = _network_inputs(signal_x, model, "signal_x")
    background_x = _network_inputs(background_x, model, "background_x")
    _check_windows(windows, len(signal_x), len(background_x), "windows")
    fraction = _check_share(share, "share")
    loss = punzi_loss(predict(model, signal_x), predict(model, background_x), windows, luminosity,
                      fraction=fraction, **options)  # fmt: skip
    return float(loss)


def train_punzi(
    model: keras.Model,
    signal_x,
    background_x,
    windows: SoftWindows,
    luminosity: float,
    settings: NetworkSettings | None = None,
    *,
    validation: tuple | None = None,
    share: float = 1.0,
    validation_share: float = 1.0,
    loss_options: Mapping | None = None,
) -> TrainingHistory:
    """Train ``model`` on the Punzi loss (mean sigma_min over ``windows``); restores the best weights.

    Parameters
    ----------
    model : keras.Model
        Pre-trained with :func:`train_bce`; trained in place.
    signal_x, background_x : arrays (n, n_features)
        Network inputs (standardised, finite) of the training events of ``windows``.
    windows : loss.SoftWindows
        The training events' windows: signal with ``1 / N_generated`` in its own mass's window,
        background with its weight (expected events at ``luminosity``) in every window it is in.
    luminosity : float
        pb^-1.
    settings : NetworkSettings
        ``punzi_*`` settings, optimiser, schedule, seed. A step uses a fraction f = 1 / n_steps
        of the signal and of the background events, n_steps = ceil(events / punzi_batch).
    validation : (signal_x, background_x, windows), optional
        Validation events with their own windows, monitored (:func:`evaluate_punzi`) for the
        schedule and early stopping; without it the training sample is re-evaluated after
        each epoch instead.
    share, validation_share : float
        The fraction of the full sample the training / validation events are; their yields
        are divided by it (with f for a batch), so that each loss is sigma_min of the full
        sample at ``luminosity``. 1 when the windows' weights and ``N_generated`` were already
        scaled to the subsample.
    loss_options : mapping, optional
        Options of :func:`~bumphunt.select.loss.punzi_loss`: a, b, form, constant, scale,
        normalise, reference, background_floor, efficiency_floor.

    Returns
    -------
    TrainingHistory
        ``stage="punzi"``; losses in pb (or relative with ``normalise``).
    """
    settings = settings or NetworkSettings()
    options = _loss_options(loss_options)
    signal_x = _network_inputs(signal_x, model, "signal_x")
    background_x = _network_inputs(background_x, model, "background_x")
    _check_windows(windows, len(signal_x), len(background_x), "windows")
    share = _check_share(share, "share")
    if not luminosity > 0.0:
        raise ValueError(f"luminosity must be > 0 pb^-1, got {luminosity}")
    monitored = signal_x, background_x, windows, share
    if validation is not None:
        val_signal, val_background, val_windows = validation
        val_signal = _network_inputs(val_signal, model, "validation signal_x")
        val_background = _network_inputs(val_background, model, "validation background_x")
        _check_windows(val_windows, len(val_signal), len(val_background), "validation windows")
        monitored = val_signal, val_background, val_windows, _check_share(validation_share, "validation_share")

    def monitored_loss():
        monitor_signal, monitor_background, monitor_windows, monitor_share = monitored
        return evaluate_punzi(model, monitor_signal, monitor_background, monitor_windows, luminosity,
                              share=monitor_share, loss_options=options)  # fmt: skip

    n_signal, n_background = len(signal_x), len(background_x)
    batch = settings.punzi_batch
    n_steps = 1 if batch is None else max(1, math.ceil((n_signal + n_background) / batch))
    fraction = share / n_steps
    signal_all, background_all = tf.constant(signal_x), tf.constant(background_x)
    variables = model.trainable_variables

    def make_step(optimizer):
        if n_steps == 1:
            both = tf.concat([signal_all, background_all], axis=0)

            @tf.function
            def full_step():
                with tf.GradientTape() as tape:
                    y = model(both, training=True)
                    loss = punzi_loss(y[:n_signal], y[n_signal:], windows, luminosity, fraction=fraction, **options)
                optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
                return loss

            return full_step

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64)])
        def batch_step(signal_events, background_events):
            inputs = tf.concat([tf.gather(signal_all, signal_events), tf.gather(background_all, background_events)], 0)
            with tf.GradientTape() as tape:
                y = model(inputs, training=True)
                split = tf.shape(signal_events)[0]
                loss = punzi_loss(
                    y[:split], y[split:], windows, luminosity, fraction=fraction,
                    signal_batch=signal_events, background_batch=background_events, **options,
                )  # fmt: skip
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        return batch_step

    def make_epoch(optimizer):
        step = make_step(optimizer)

        def run_epoch(rng):
            if n_steps == 1:
                return float(step())
            signal_batches = np.array_split(rng.permutation(n_signal), n_steps)
            background_batches = np.array_split(rng.permutation(n_background), n_steps)
            total = 0.0
            for signal_events, background_events in zip(signal_batches, background_batches, strict=True):
                total += float(step(np.sort(signal_events), np.sort(background_events)))
            return total / n_steps

        return run_epoch

    return _run("punzi", model, settings, settings.punzi_epochs, settings.punzi_learning_rate,
                settings.punzi_lr_patience, settings.punzi_stop_patience, make_epoch, monitored_loss,
                validation is not None)  # fmt: skip


@dataclass(frozen=True, eq=False)
class PunziNet:
    """A Punzi-net with everything needed to score raw features.

    Build one with :meth:`create`, train ``net.model`` with :func:`train_bce` and
    :func:`train_punzi` on ``net.inputs(features)``, and record the outcome with
    ``dataclasses.replace(net, history={...}, working_point=cut)``.

    Attributes
    ----------
    model : keras.Model
    standardiser : Standardiser
    feature_names : tuple of str
        Names of the feature columns, in order.
    settings : NetworkSettings
    working_point : float or None
        The cut on the score (selected: score >= cut), when chosen.
    history : mapping of str to TrainingHistory
        By stage ("bce", "punzi").
    """

    model: keras.Model
    standardiser: Standardiser
    feature_names: tuple[str, ...]
    settings: NetworkSettings = field(default_factory=NetworkSettings)
    working_point: float | None = None
    history: Mapping[str, TrainingHistory] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        if len(self.feature_names) != self.standardiser.n_features:
            raise ValueError(f"{len(self.feature_names)} feature names for a standardisation of "
                             f"{self.standardiser.n_features} features")  # fmt: skip
        widths = (len(self.feature_names), *self.settings.hidden, 1)
        expected = [shape for n_in, n_out in zip(widths[:-1], widths[1:]) for shape in ((n_in, n_out), (n_out,))]
        if [tuple(w.shape) for w in self.model.weights] != expected:
            raise ValueError(f"the network is not the {len(self.feature_names)}-feature network of settings.hidden "
                             f"{list(self.settings.hidden)} (build it with build_network)")  # fmt: skip
        if self.working_point is not None and not 0.0 <= self.working_point <= 1.0:
            raise ValueError(f"working_point must lie in [0, 1], got {self.working_point}")

    @classmethod
    def create(cls, features, feature_names: Sequence[str], settings: NetworkSettings | None = None) -> PunziNet:
        """An untrained network, its standardisation fitted on ``features`` (training events)."""
        settings = settings or NetworkSettings()
        standardiser = Standardiser.fit(features)
        return cls(build_network(standardiser.n_features, settings), standardiser, tuple(feature_names), settings)

    def inputs(self, features) -> np.ndarray:
        """Network inputs (float32) of raw ``features`` (n_events, n_features); NaN rows stay NaN."""
        return self.standardiser.transform(features)

    def score(self, features, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Network output (float64 in [0, 1]) per event; NaN for events with a non-finite feature."""
        x = self.inputs(features)
        valid = np.isfinite(x).all(axis=1)
        scores = np.full(len(x), np.nan)
        scores[valid] = predict(self.model, x[valid], batch_size=batch_size)
        return scores

    def save(self, folder: str | Path) -> Path:
        """Write ``model.weights.h5`` and ``punzinet.json`` into ``folder``, atomically.

        Both are written to a temporary folder beside ``folder`` and renamed into place, so a
        crash never leaves a half-written network; an existing Punzi-net (or empty) folder is
        replaced, any other existing folder is refused.
        """
        folder = Path(folder)
        if folder.exists() and not (folder.is_dir() and (not any(folder.iterdir())
                                                        or (folder / DESCRIPTION_FILE).is_file())):  # fmt: skip
            raise BumphuntError(f"{folder}: exists and is not a Punzi-net folder; not overwriting it")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            with warnings.catch_warnings():  # Keras 3.15 converts variables with np.array(x, copy=False)
                warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
                self.model.save_weights(tmp / WEIGHTS_FILE)
            document = {
                "format": _FORMAT, "format_version": _FORMAT_VERSION, "bumphunt_version": __version__,
                "features": list(self.feature_names), "standardiser": self.standardiser.to_dict(),
                "working_point": self.working_point, "settings": self.settings.to_dict(),
                "history": {stage: history.to_dict() for stage, history in self.history.items()},
                "weights_sha256": _sha256(tmp / WEIGHTS_FILE),
            }  # fmt: skip
            write_json(tmp / DESCRIPTION_FILE, document)
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, feature_names: Sequence[str] | None = None) -> PunziNet:
        """Read a folder written by :meth:`save`.

        Parameters
        ----------
        folder : str or Path
        feature_names : sequence of str, optional
            The features the caller will score; must equal the saved ones.

        Raises
        ------
        BumphuntError
            One line naming the folder: missing, not a Punzi-net, corrupt, or trained on other features.
        """
        folder = Path(folder)
        description = folder / DESCRIPTION_FILE
        if not folder.is_dir():
            raise BumphuntError(f"{folder}: no Punzi-net there (the folder does not exist)")
        if not description.is_file():
            raise BumphuntError(f"{folder}: no Punzi-net there ({DESCRIPTION_FILE} is missing)")
        try:
            document = json.loads(description.read_text())
            if document.get("format") != _FORMAT or document.get("format_version") != _FORMAT_VERSION:
                raise ValueError(f"not a {_FORMAT} version {_FORMAT_VERSION} description")
            names = tuple(document["features"])
            standardiser = Standardiser.from_dict(document["standardiser"])
            settings = NetworkSettings.from_config(document["settings"])
            history = {stage: TrainingHistory.from_dict(h) for stage, h in document["history"].items()}
            working_point = None if document["working_point"] is None else float(document["working_point"])
            if len(names) != standardiser.n_features:
                raise ValueError(f"{len(names)} features but a standardisation of {standardiser.n_features}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, BumphuntError) as error:
            reason = _one_line(error)
            raise BumphuntError(f"{folder}: corrupt Punzi-net description {DESCRIPTION_FILE} ({reason})") from None
        if feature_names is not None and tuple(feature_names) != names:
            raise BumphuntError(f"{folder}: the Punzi-net was trained on features {list(names)}, "
                                f"not {list(feature_names)}")  # fmt: skip
        weights = folder / WEIGHTS_FILE
        if not weights.is_file() or _sha256(weights) != document.get("weights_sha256"):
            raise BumphuntError(f"{folder}: the network weights {WEIGHTS_FILE} are missing or corrupt (checksum)")
        model = build_network(len(names), settings)
        try:
            model.load_weights(weights)
        except Exception as error:  # h5py and Keras raise many kinds
            raise BumphuntError(f"{folder}: cannot read the network weights ({_one_line(error)})") from None
        try:
            return cls(model, standardiser, names, settings, working_point, history)
        except ValueError as error:
            raise BumphuntError(f"{folder}: corrupt Punzi-net ({_one_line(error)})") from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
