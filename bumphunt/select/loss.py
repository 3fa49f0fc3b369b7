"""The Punzi loss: the figure of merit of :mod:`bumphunt.select.fom` with the cut replaced by
the network output y in [0, 1] (Abudinen et al., EPJC 82 (2022) 121).

For window m, with the sums over the (event, window) pairs of :class:`~bumphunt.select.fom.Membership`,

    eps_m = s sum_{signal i in m} y_i / N_generated(m),      B_m = s sum_{background i in m} w_i y_i,

and sigma_min(eps_m, B_m) is the formula of :func:`~bumphunt.select.fom.sigma_min` (the same
forms and constants; :func:`~bumphunt.select.fom.punzi_numerator` is shared). With outputs
exactly 0 or 1 it equals the hard-cut figure of merit.

Numerics: sqrt(B + ``background_floor``) keeps the gradient finite at B = 0, and eps is
clamped from below by ``tf.maximum`` (no in-place assignment). The network may run in float32;
the sums and the figure of merit are computed in float64 (``tf.cast`` passes the gradient back
as float32), because B sums up to 10^6 weighted events and the Punzi terms differ in scale.

Minibatches: a batch holding a random fraction f of the events sums to f times the full-sample
eps and B on average, and sigma_min is not linear in them (the constant and the sqrt(B) terms
would weigh wrongly), so the batch sums are divided by f. Draw the same fraction of signal and
background events, with enough weighted background in each window per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .fom import DEFAULT_A, DEFAULT_B, Membership, check_form, punzi_numerator

#: Added to B (expected events) under the square root: a finite gradient at B = 0, and a
#: shift of sqrt(B) by at most 1e-12 events.
BACKGROUND_FLOOR = 1e-24
#: Lower clamp of the soft efficiency.
EFFICIENCY_FLOOR = 1e-9


@dataclass(frozen=True, eq=False)
class SoftWindows:
    """The (event, window) pairs of the full sample as TensorFlow sparse matrices.

    Build it with :func:`soft_windows`. ``eq=False``: compared and hashed by identity, so
    tf.function can take it as an argument without retracing.

    Attributes
    ----------
    signal_matrix : tf.sparse.SparseTensor (n_windows, n_signal), float64
        1 / N_generated(m) at each (window m, signal event of mass m inside it).
    background_matrix : tf.sparse.SparseTensor (n_windows, n_background), float64
        The event's weight (expected events) at each (window, background event inside it).
    n_signal, n_background, n_windows : int
    """

    signal_matrix: tf.sparse.SparseTensor
    background_matrix: tf.sparse.SparseTensor
    n_signal: int
    n_background: int
    n_windows: int


def soft_windows(
    signal_membership: Membership, n_generated, background_weights, background_membership: Membership
) -> SoftWindows:
    """The sparse window matrices of :func:`soft_sigma_min`, from the numpy memberships.

    Parameters
    ----------
    signal_membership : Membership
        Signal events with their own mass's window (:func:`~bumphunt.select.fom.own_window`).
    n_generated : array_like (n_windows,)
        Signal events generated at each window's mass (> 0).
    background_weights : array_like (n_background,)
        Expected events at the luminosity of the loss for each background event.
    background_membership : Membership
        Every window each background event falls into.
    """
    n_windows = signal_membership.n_windows
    if background_membership.n_windows != n_windows:
        raise ValueError("signal and background memberships have different numbers of windows")
    n_generated = np.asarray(n_generated, dtype=np.float64).reshape(-1)
    if n_generated.shape != (n_windows,) or not np.all(n_generated > 0):
        raise ValueError(f"n_generated must hold {n_windows} positive counts, one per window")
    background_weights = np.asarray(background_weights, dtype=np.float64).reshape(-1)
    if len(background_weights) != background_membership.n_events or not np.all(np.isfinite(background_weights)):
        raise ValueError(f"background_weights must be {background_membership.n_events} finite numbers")
    signal_values = 1.0 / n_generated[signal_membership.window]
    background_values = background_weights[background_membership.event]
    return SoftWindows(
        _sparse(signal_membership, signal_values), _sparse(background_membership, background_values),
        signal_membership.n_events, background_membership.n_events, n_windows,
    )  # fmt: skip


def _sparse(membership: Membership, values: np.ndarray) -> tf.sparse.SparseTensor:
    """The (window, event) matrix; the pairs are sorted by window then event (row-major order)."""
    indices = np.stack([membership.window, membership.event], axis=1)
    return tf.sparse.SparseTensor(indices, tf.constant(values, tf.float64), [membership.n_windows, membership.n_events])


def _full_sample(output, batch, n_events: int, name: str) -> tf.Tensor:
    """Outputs as a float64 vector over the full sample (zeros outside ``batch``)."""
    output = tf.reshape(tf.cast(output, tf.float64), [-1])
    expected = n_events if batch is None else (batch.shape[0] if hasattr(batch, "shape") else len(batch))
    if output.shape[0] is not None and expected is not None and output.shape[0] != expected:
        raise ValueError(f"{output.shape[0]} {name} outputs, expected {expected}")
    if batch is None:
        return output
    batch = tf.reshape(tf.cast(batch, tf.int64), [-1, 1])
    return tf.scatter_nd(batch, output, tf.constant([n_events], tf.int64))


def soft_yields(
    signal_output,
    background_output,
    windows: SoftWindows,
    *,
    scale: float = 1.0,
    fraction: float | None = None,
    signal_batch=None,
    background_batch=None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Soft efficiency and background (expected events) per window, float64.

    Parameters
    ----------
    signal_output, background_output : tf.Tensor
        Network outputs in [0, 1], shape (n,) or (n, 1): of the full sample, or of the events
        ``signal_batch`` / ``background_batch`` when given.
    windows : SoftWindows
        The pairs of the full sample.
    scale : float
        Overall factor on both (e.g. a trigger efficiency).
    fraction : float, optional
        The fraction f of the events in the batch (a Python float); both sums are divided by f. Required with
        ``signal_batch`` or ``background_batch``; default 1 (the full sample).
    signal_batch, background_batch : int tensor, optional
        Indices into the full sample of the batch's events (distinct).

    Returns
    -------
    efficiency, background : tf.Tensor (n_windows,)

    Notes
    -----
    The sums are sparse x dense products (window x event matrices); their gradient is the
    transposed product. On 10^6 + 10^6 events and 1.2 x 10^7 pairs this is ~7x faster than
    ``tf.gather`` + ``tf.math.unsorted_segment_sum``, whose gradient is an IndexedSlices of
    one row per pair that the network's backward pass must densify.
    """
    if fraction is None:
        if signal_batch is not None or background_batch is not None:
            raise ValueError("a batch needs its fraction of the sample (fraction=...)")
        fraction = 1.0
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    y_signal = _full_sample(signal_output, signal_batch, windows.n_signal, "signal")
    y_background = _full_sample(background_output, background_batch, windows.n_background, "background")
    factor = tf.constant(scale / fraction, tf.float64)
    efficiency = tf.sparse.sparse_dense_matmul(windows.signal_matrix, y_signal[:, None])[:, 0]
    background = tf.sparse.sparse_dense_matmul(windows.background_matrix, y_background[:, None])[:, 0]
    return factor * efficiency, factor * background


def soft_sigma_min(
    signal_output,
    background_output,
    windows: SoftWindows,
    luminosity: float,
    *,
    a: float = DEFAULT_A,
    b: float = DEFAULT_B,
    form: str = "full",
    constant: float | None = None,
    scale: float = 1.0,
    fraction: float | None = None,
    signal_batch=None,
    background_batch=None,
    background_floor: float = BACKGROUND_FLOOR,
    efficiency_floor: float = EFFICIENCY_FLOOR,
) -> tf.Tensor:
    """sigma_min (pb) per window from the soft efficiency and background, float64.

    Parameters
    ----------
    signal_output, background_output, windows, scale, fraction, signal_batch, background_batch
        As in :func:`soft_yields`.
    luminosity : float
        Integrated luminosity (pb^-1) at which the background weights are expected events.
    a, b, form, constant
        As in :func:`bumphunt.select.fom.sigma_min`.
    background_floor : float
        Added to B under the square root (finite gradient at B = 0).
    efficiency_floor : float
        Lower clamp of the efficiency.

    Returns
    -------
    tf.Tensor (n_windows,)
    """
    check_form(form, constant)
    efficiency, background = soft_yields(
        signal_output, background_output, windows, scale=scale, fraction=fraction,
        signal_batch=signal_batch, background_batch=background_batch,
    )  # fmt: skip
    numerator = punzi_numerator(tf.sqrt(background + background_floor), a=a, b=b, form=form, constant=constant,
                                sqrt=tf.sqrt)  # fmt: skip
    return numerator / (tf.maximum(efficiency, efficiency_floor) * luminosity)


def punzi_loss(
    signal_output,
    background_output,
    windows: SoftWindows,
    luminosity: float,
    *,
    normalise: bool = False,
    reference=None,
    **options,
) -> tf.Tensor:
    """The Punzi loss: mean over the windows of :func:`soft_sigma_min` (float64 scalar).

    Parameters
    ----------
    signal_output, background_output, windows, luminosity
        As in :func:`soft_sigma_min`; the windows are the training masses.
    normalise : bool
        False (default): the plain mean in pb, dominated by the windows of large sigma_min.
        True: the mean of sigma_min / ``reference``, each window weighing the same.
    reference : array_like (n_windows,), optional
        Per-window scale of the normalised loss (> 0), e.g. the best hard-cut sigma_min of the
        BCE-trained network at each mass.
    **options
        Keyword options of :func:`soft_sigma_min` (a, b, form, constant, scale, fraction,
        signal_batch, background_batch, background_floor, efficiency_floor).
    """
    sigma = soft_sigma_min(signal_output, background_output, windows, luminosity, **options)
    if not normalise:
        return tf.reduce_mean(sigma)
    if reference is None:
        raise ValueError("normalise=True needs a reference sigma_min per window")
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    if reference.shape != (windows.n_windows,) or not np.all(np.isfinite(reference) & (reference > 0)):
        raise ValueError(f"reference must hold {windows.n_windows} positive finite values, one per window")
    return tf.reduce_mean(sigma / tf.constant(reference, tf.float64))
