"""Benchmark of the Punzi figure of merit: 200 cuts x 200 masses over 10^6 background events.

Seeded random inputs: 1,000,000 background events with three diphoton candidates each (masses
uniform in 0-10.5 GeV, 10 % missing), 200 masses x 5,000 signal events, windows of +-10
sigma(m). Times :func:`~bumphunt.select.fom.window_membership` (signal and background) and
:func:`~bumphunt.select.fom.fom_grid`; as a reference in the same run, the naive loop (a boolean
mask per window, then one per cut and window) on 20 of the 200 cuts, extrapolated to 200; and
one evaluation + gradient of :func:`~bumphunt.select.loss.punzi_loss` (tf.function, float32
outputs) on the full sample.

Usage: python bench/bench_fom.py [--repeat K] [--quick]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

LUMINOSITY = 50_000.0  # pb^-1
N_CUTS = 200
N_NAIVE_CUTS = 20


def best_time(function, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def sample(rng, n_background: int, n_masses: int, n_per_mass: int) -> dict:
    masses = np.linspace(0.2, 9.7, n_masses)
    width = 10.0 * (0.004 + 0.0015 * masses)  # +-10 sigma(m), GeV
    background = rng.uniform(0.0, 10.5, (n_background, 3))
    background[rng.random(background.shape) < 0.1] = np.nan
    event_mass = np.repeat(np.arange(n_masses), n_per_mass)
    signal = rng.uniform(0.0, 10.5, (len(event_mass), 3))
    signal[:, 0] = masses[event_mass] + rng.normal(0.0, 0.1, len(event_mass)) * width[event_mass]
    signal[rng.random(signal.shape) < 0.3] = np.nan
    return {
        "lower": masses - width, "upper": masses + width, "event_mass": event_mass,
        "signal_candidates": signal, "signal_scores": rng.beta(4.0, 1.0, len(event_mass)).astype(np.float32),
        "n_generated": np.full(n_masses, 1.25 * n_per_mass),
        "background_candidates": background, "background_scores": rng.beta(1.0, 4.0, n_background).astype(np.float32),
        "background_weights": rng.exponential(0.05, n_background),
    }  # fmt: skip


def naive_yields(scores, weights, candidates, lower, upper, cuts, own=None):
    """One boolean mask per window, then one per cut and window (what the reference code does per block)."""
    out = np.empty((len(cuts), len(lower)))
    for j in range(len(lower)):
        inside = np.any((candidates >= lower[j]) & (candidates <= upper[j]), axis=1)
        if own is not None:
            inside &= own == j
        for k, cut in enumerate(cuts):
            selected = inside & (scores >= cut)
            out[k, j] = selected.sum() if weights is None else weights[selected].sum()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 background events, 200 x 500 signal")
    options = parser.parse_args()

    import tensorflow as tf

    from bumphunt.select.fom import fom_grid, hard_cut_yields, own_window, window_membership
    from bumphunt.select.loss import punzi_loss, soft_windows

    n_background, n_per_mass = (100_000, 500) if options.quick else (1_000_000, 5_000)
    data = sample(np.random.default_rng(1), n_background, 200, n_per_mass)
    cuts = np.linspace(0.0, 1.0, N_CUTS)
    figures = {"n_background": n_background, "n_signal": len(data["event_mass"]), "n_cuts": N_CUTS, "n_masses": 200}

    def memberships():
        signal = window_membership(data["signal_candidates"], data["lower"], data["upper"])
        background = window_membership(data["background_candidates"], data["lower"], data["upper"])
        return own_window(signal, data["event_mass"]), background

    signal_membership, background_membership = memberships()
    figures["background_pairs"] = len(background_membership)
    figures["membership_seconds"] = best_time(memberships, options.repeat)

    def grid():
        return fom_grid(
            data["signal_scores"], signal_membership, data["n_generated"], data["background_scores"],
            data["background_weights"], background_membership, cuts, LUMINOSITY,
        )  # fmt: skip

    figures["fom_grid_seconds"] = best_time(grid, options.repeat)
    result = grid()
    print(f"memberships {figures['membership_seconds']:.2f} s ({len(background_membership):,} background pairs), "
          f"fom_grid {figures['fom_grid_seconds']:.2f} s for {N_CUTS} cuts x 200 masses", flush=True)  # fmt: skip

    subset = cuts[:: N_CUTS // N_NAIVE_CUTS]
    started = time.perf_counter()
    naive_background = naive_yields(
        data["background_scores"], data["background_weights"], data["background_candidates"],
        data["lower"], data["upper"], subset,
    )  # fmt: skip
    naive_signal = naive_yields(
        data["signal_scores"], None, data["signal_candidates"], data["lower"], data["upper"], subset,
        own=data["event_mass"],
    )  # fmt: skip
    naive_seconds = time.perf_counter() - started
    # the per-window masks cost the same for 20 or 200 cuts: time them alone to extrapolate
    started = time.perf_counter()
    naive_yields(None, None, data["background_candidates"], data["lower"], data["upper"], [])
    naive_yields(None, None, data["signal_candidates"], data["lower"], data["upper"], [], own=data["event_mass"])
    masks_seconds = time.perf_counter() - started
    per_cut = max(naive_seconds - masks_seconds, 0.0) / len(subset)
    figures["naive_seconds_20_cuts"] = naive_seconds
    figures["naive_window_masks_seconds"] = masks_seconds
    figures["naive_seconds_extrapolated"] = masks_seconds + per_cut * N_CUTS
    figures["speedup_over_naive"] = figures["naive_seconds_extrapolated"] / (
        figures["membership_seconds"] + figures["fom_grid_seconds"]
    )
    check_background = hard_cut_yields(
        data["background_scores"], data["background_weights"], background_membership, subset
    )
    check_signal = result.efficiency[:: N_CUTS // N_NAIVE_CUTS] * data["n_generated"]
    figures["max_relative_difference_to_naive"] = max(
        float(np.max(np.abs(check_background - naive_background) / np.maximum(naive_background, 1e-300))),
        float(np.max(np.abs(check_signal - naive_signal) / np.maximum(naive_signal, 1.0))),
    )
    print(f"naive loop: {naive_seconds:.1f} s for {len(subset)} cuts, {figures['naive_seconds_extrapolated']:.1f} s "
          f"extrapolated to {N_CUTS}; speed-up {figures['speedup_over_naive']:.0f}x", flush=True)  # fmt: skip

    started = time.perf_counter()
    windows = soft_windows(signal_membership, data["n_generated"], data["background_weights"], background_membership)
    figures["soft_windows_seconds"] = time.perf_counter() - started
    y_signal = tf.Variable(data["signal_scores"])
    y_background = tf.Variable(data["background_scores"])

    @tf.function
    def loss_and_gradient():
        with tf.GradientTape() as tape:
            loss = punzi_loss(y_signal, y_background, windows, LUMINOSITY)
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, [y_signal, y_background])]

    started = time.perf_counter()
    loss_and_gradient()
    figures["soft_loss_first_call_seconds"] = time.perf_counter() - started
    figures["soft_loss_gradient_seconds"] = best_time(
        lambda: [t.numpy() for t in tf.nest.flatten(loss_and_gradient())], options.repeat
    )
    print(f"soft loss + gradient: {figures['soft_loss_gradient_seconds'] * 1e3:.0f} ms per call "
          f"(first call with tracing {figures['soft_loss_first_call_seconds']:.1f} s)", flush=True)  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
