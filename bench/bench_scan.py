"""Benchmark of one mass point of the scan, against RooStats in the same run.

For 100,000 and 1,000,000 candidates in the fit window (a DSCB signal at 3 GeV on a
quadratic background), times the fit + p0 + observed and expected CLs limits of
``bumphunt.stats.evaluate_hypothesis``, unbinned and binned (2000 bins, what the scan
uses above ``scan.binned_above`` candidates), and, when the optional ``root`` package is
installed, RooStats' AsymptoticCalculator + HypoTestInverter (20-point scan) on the same
spectrum. With ``--full-scan`` it also times ``bumphunt scan`` on an existing default analysis.

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

    from bumphunt.models import SignalShape
    from bumphunt.stats import evaluate_hypothesis, hypothesis_data

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
        from bumphunt.config import load_config
        from bumphunt.scan import run_scan

        config = load_config(None, {"scan.global_toys": 0, "scan.plots": False})
        summary = run_scan(config, output_dir="bench_scan_output", resume=False, progress=False)
        figures["full_default_scan_seconds"] = summary.seconds
        figures["full_default_scan_points"] = len(summary.result)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
