"""Benchmark of the selection stage: Punzi-net training time on the default sample, scoring rate.

Runs ``bumphunt.select.run_select`` (plots off, into a temporary folder) on the ntuples after
the kinematic fit of an analysis (run ``bumphunt run`` first, in the directory given by
``--analysis``), then scores 1,000,000 events with the trained network, and, as a reference
measured in the same run, evaluates the same network as a plain numpy forward pass (float32
matrix products and LeakyReLU), so the ratio holds on a busy machine. The figure-of-merit
evaluation (200 cuts x 200 masses over 1,000,000 events) is bench/bench_fom.py.

Usage: python bench/bench_select.py [--analysis DIR] [--events N]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def numpy_forward(model, x: np.ndarray, negative_slope: float) -> np.ndarray:
    """The network's output from its weights with numpy alone (dense layers, LeakyReLU, sigmoid)."""
    layers = [layer for layer in model.layers if layer.get_weights()]
    for layer in layers[:-1]:
        kernel, bias = layer.get_weights()
        x = x @ kernel + bias
        x = np.where(x > 0, x, negative_slope * x)
    kernel, bias = layers[-1].get_weights()
    return 1.0 / (1.0 + np.exp(-(x @ kernel + bias)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analysis", default=".", help="directory where `bumphunt run` was run")
    parser.add_argument("--events", type=int, default=1_000_000, help="events scored for the scoring rate")
    args = parser.parse_args()

    from bumphunt.config import load_config
    from bumphunt.select.network import PunziNet
    from bumphunt.select.stage import run_select

    default_output = load_config()["output_dir"]
    config = load_config(None, {"select.plots": False, "output_dir": str(Path(args.analysis) / default_output)})
    with tempfile.TemporaryDirectory() as output:
        summary = run_select(config, output, progress=False)
        net = PunziNet.load(summary.model_path)
    history = {stage: record for stage, record in net.history.items()}

    rng = np.random.default_rng(1)
    features = rng.normal(size=(args.events, len(net.feature_names))) * net.standardiser.scale + net.standardiser.mean
    net.score(features[:10_000])  # trace once
    started = time.perf_counter()
    scores = net.score(features)
    keras_seconds = time.perf_counter() - started
    inputs = net.inputs(features)
    started = time.perf_counter()
    reference = numpy_forward(net.model, inputs, net.settings.negative_slope).ravel()
    numpy_seconds = time.perf_counter() - started

    figures = {
        "stage_seconds": round(summary.seconds, 1),
        "bce_seconds": round(history["bce"].seconds, 1),
        "bce_epochs": history["bce"].epochs,
        "punzi_seconds": round(history["punzi"].seconds, 1),
        "punzi_epochs": history["punzi"].epochs,
        "working_point": summary.working_point,
        "scoring_events_per_second": round(args.events / keras_seconds),
        "numpy_forward_events_per_second": round(args.events / numpy_seconds),
        "keras_over_numpy_speed": round(numpy_seconds / keras_seconds, 2),
        "max_score_difference_to_numpy": float(np.max(np.abs(scores - reference))),
        "mean_sigma_min_training_pb": {
            column: round(summary.mean_sigma_min(column, held_out=False), 5)
            for column in (
                "sigma_min_preselection",
                "sigma_min_bce_best_cut",
                "sigma_min_bdt_best_cut",
                "sigma_min_punzi",
            )
            if column in summary.table["masses"][0]
        },  # fmt: skip
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"select stage: {figures['stage_seconds']} s (BCE {figures['bce_seconds']} s / {figures['bce_epochs']} "
          f"epochs, Punzi {figures['punzi_seconds']} s / {figures['punzi_epochs']} epochs)")  # fmt: skip
    print(f"scoring: {figures['scoring_events_per_second']:,} events/s "
          f"(numpy forward pass {figures['numpy_forward_events_per_second']:,} events/s)")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
