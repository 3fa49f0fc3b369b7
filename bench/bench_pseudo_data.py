"""Benchmark of drawing pseudo-data at any luminosity: binned against unbinned, in the same run.

A background of 99 % smooth spectrum (a falling exponential, drawn bin by bin) and 1 % light
events drawn event by event (200,000 events of three candidates, as the meson samples are),
with the resolution of the tests' synthetic signal model (sigma = 4 + 3 m MeV). For 10^6,
10^7 and 10^8 expected candidates it times
``BackgroundModel.sample_histogram`` (Poisson counts in bins of sigma/50, filled chunk by
chunk; what ``scan.data_binning`` gives above 2,000,000 candidates) and, at 10^6 and 10^7,
``BackgroundModel.sample`` (every candidate, sorted: the reference; at 10^8 it would need
about 3.2 GB). Every case runs in a fresh process, whose peak RSS (``ru_maxrss``) is reported
with that of a process that builds the model and draws nothing.

Usage: python bench/bench_pseudo_data.py [--repeat K]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

EVENTS = 200_000  # the light sample drawn event by event
LIGHT_FRACTION = 0.01


def background(expected: float):
    """A :class:`~bumphunt.scan.BackgroundModel` of ``expected`` candidates on average."""
    from bumphunt.scan import BackgroundModel, SmoothBackground
    from bumphunt.scan.data import _EventSample

    edges = np.linspace(0.0, 10.5, 1051)
    centres = 0.5 * (edges[1:] + edges[:-1])
    density = np.exp(-centres / 2.0) * (1.0 - np.exp(-centres / 0.1))
    smooth = SmoothBackground(edges, (1.0 - LIGHT_FRACTION) * expected * density / density.sum())
    rng = np.random.default_rng(1)
    masses = rng.uniform(0.1, 10.4, (EVENTS, 3))
    light = _EventSample(masses, np.full(EVENTS, LIGHT_FRACTION * expected / masses.size))
    return BackgroundModel.of_samples([smooth, light], lambda m: 0.004 + 0.003 * np.asarray(m))


def run_case(kind: str, expected: float, repeat: int) -> dict:
    """One case in this process: seconds (best of ``repeat`` draws), peak RSS, candidates."""
    model = background(expected)
    model.histogram_edges()  # the bins, as every draw makes them
    seconds, drawn = np.inf, 0.0
    for seed in range(repeat if kind != "none" else 0):
        start = time.perf_counter()
        if kind == "binned":
            drawn = model.sample_histogram(seed).n_events
        else:
            drawn = float(len(model.sample(seed)))
        seconds = min(seconds, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"seconds": seconds if np.isfinite(seconds) else 0.0, "peak_rss_mb": peak, "candidates": drawn}


def in_fresh_process(kind: str, expected: float, repeat: int) -> dict:
    command = [sys.executable, __file__, "--case", kind, str(expected), "--repeat", str(repeat)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", nargs=2, metavar=("KIND", "EXPECTED"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.case:
        kind, expected = options.case
        print(json.dumps(run_case(kind, float(expected), options.repeat)))
        return
    figures = {"baseline_peak_rss_mb": in_fresh_process("none", 1e6, 1)["peak_rss_mb"]}
    cases = [("binned", 1e6), ("binned", 1e7), ("binned", 1e8), ("unbinned", 1e6), ("unbinned", 1e7)]
    for kind, expected in cases:
        result = in_fresh_process(kind, expected, options.repeat if expected < 1e8 else 1)
        key = f"{kind}_1e{int(round(np.log10(expected)))}"
        figures[f"{key}_seconds"] = result["seconds"]
        figures[f"{key}_peak_rss_mb"] = result["peak_rss_mb"]
        figures[f"{key}_candidates"] = result["candidates"]
        print(key, result, flush=True)
    figures["speedup_binned_over_unbinned_1e7"] = figures["unbinned_1e7_seconds"] / figures["binned_1e7_seconds"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
