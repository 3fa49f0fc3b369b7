"""Benchmark of one mass point of the scan, against RooStats in the same run.

For 100,000 and 1,000,000 candidates in the fit window (a DSCB signal at 3 GeV on a
quadratic background), times the fit + p0 + observed and expected CLs limits of
``bumphunt.stats.evaluate_hypothesis``, unbinned and binned (2000 bins, what the scan
uses above ``scan.binned_above`` candidates), and, when the optional ``root`` package is
installed, RooStats' AsymptoticCalculator + HypoTestInverter (20-point scan) on the same
spectrum; and the binned point with the default analysis' systematic sources. With
``--full-scan`` it also times ``bumphunt scan`` on an existing default analysis, with the
systematics on (the default) and off.

Usage: python bench/bench_scan.py [--repeat K] [--full-scan]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import integrate


def spectrum(rng, shape, n_background, n_signal):
    def sample(pdf, n):
        grid = np.linspace(shape.lower, shape.upper, 20_001)
        cdf = integrate.cumulative_trapezoid(pdf(grid), grid, initial=0.0)
        return np.interp(rng.random(n), cdf / cdf[-1], grid)

    background = sample(lambda x: 1.0 + 0.8 * (x - 3.0) - 3.0 * (x - 3.0) ** 2, n_background)
    return np.r_[background, sample(shape.pdf, n_signal)]


def best_time(function, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full-scan", action="store_true", help="also time `bumphunt scan` on the default analysis")
    options = parser.parse_args()

    from bumphunt.config import load_config
    from bumphunt.models import SignalShape
    from bumphunt.stats import evaluate_hypothesis, hypothesis_data, nuisances_at
    from bumphunt.systematics import Systematics

    shape = SignalShape(3.0, 0.013, 0.013, 1.5, 10.0, 1.5, 10.0, 0.95, 0.1, 3.0 - 0.26, 3.0 + 0.26)
    rng = np.random.default_rng(1)
    try:
        from bumphunt.contrib.roostats import roostats_hypothesis_test
    except ImportError:
        roostats_hypothesis_test = None
    figures = {}
    for n_events in (100_000, 1_000_000):
        x = spectrum(rng, shape, n_events, int(3 * np.sqrt(n_events)))
        evaluate_hypothesis(hypothesis_data(x[:1000], shape))  # compile or load the kernels
        key = f"{n_events // 1000}k"
        seconds = best_time(lambda x=x: evaluate_hypothesis(hypothesis_data(x, shape, bins=2000)), options.repeat)
        figures[f"seconds_per_point_{key}"] = seconds
        figures[f"unbinned_seconds_per_point_{key}"] = best_time(
            lambda x=x: evaluate_hypothesis(hypothesis_data(x, shape)), 1 if n_events > 100_000 else options.repeat
        )
        # the default analysis' systematic sources: two normalisations, peak position and width,
        # the interpolation's position and width (at sizes typical of the default shapes)
        nuisances = nuisances_at(Systematics.from_config(load_config()["systematics"]), shape, 3.0,
                                 lambda mass: (3e-4, 0.02))  # fmt: skip
        figures[f"systematics_seconds_per_point_{key}"] = best_time(
            lambda x=x, n=nuisances: evaluate_hypothesis(hypothesis_data(x, shape, bins=2000, nuisances=n)),
            options.repeat,
        )
        try:
            import ROOT  # noqa: F401

            have_root = roostats_hypothesis_test is not None
        except ImportError:
            have_root = False
        if have_root:
            reference = best_time(lambda x=x: roostats_hypothesis_test(x, shape, scan_points=20), 1)
            figures[f"roostats_seconds_per_point_{key}"] = reference
            figures[f"speedup_over_roostats_{key}"] = reference / seconds
        print({k: v for k, v in figures.items() if key in k}, flush=True)
    if options.full_scan:
        from bumphunt.scan import run_scan

        for name, overrides in (("", {}), ("_statistics_only", {"systematics.sources": []})):
            config = load_config(None, {"scan.global_toys": 0, "scan.plots": False, "systematics.impact_step": 0,
                                        **overrides})  # fmt: skip
            summary = run_scan(config, output_dir="bench_scan_output", resume=False, progress=False)
            figures[f"full_default_scan_seconds{name}"] = summary.seconds
            figures[f"full_default_scan_seconds_per_point{name}"] = summary.seconds / len(summary.result)
        figures["full_default_scan_points"] = len(summary.result)
        figures["systematics_cost_ratio"] = (
            figures["full_default_scan_seconds"] / figures["full_default_scan_seconds_statistics_only"]
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
