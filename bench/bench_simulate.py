"""Benchmark of `bumphunt simulate`: wall time and peak memory.

Runs, each in a fresh process so that peak memory is its own:

* the default configuration (all samples, 4.1 M signal + 1.15 M background events);
* 1,000,000 gamma gamma gamma background events alone, and 3,000,000 to show that memory
  stays bounded (chunks) while time scales;
* a reference in the same run: writing the same number of pre-selected events with random
  content straight to ROOT with uproot (the I/O floor), so the ratio holds on a noisy machine.

Usage: python bench/bench_simulate.py [--workers N] [--skip-default]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from bumphunt.config import load_config
from bumphunt.simulation import run_simulation
overrides = json.loads(sys.argv[1])
samples = json.loads(sys.argv[2])
config = load_config(None, overrides)
start = time.perf_counter()
summaries = run_simulation(config, samples=samples, progress=False)
seconds = time.perf_counter() - start
peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({
    "seconds": seconds,
    "peak_rss_main_mb": peak_self,
    "peak_rss_worker_mb": peak_children,
    "generated": {s.sample: s.n_generated for s in summaries},
    "selected": {s.sample: s.n_selected for s in summaries},
}))
"""

IO_FLOOR = r"""
import sys, time, numpy as np
from bumphunt.ntuple import BRANCHES, NtupleWriter
n_events, chunk, path = int(sys.argv[1]), 250_000, sys.argv[2]
rng = np.random.default_rng(0)
start = time.perf_counter()
with NtupleWriter(path) as writer:
    for first in range(0, n_events, chunk):
        n = min(chunk, n_events - first)
        writer.extend({name: rng.random((n, *b.shape)).astype(b.dtype) for name, b in BRANCHES.items()})
print(time.perf_counter() - start)
"""


def simulate_in_subprocess(output: Path, overrides: dict, samples=None) -> dict:
    overrides = {"output_dir": str(output), **overrides}
    args = [sys.executable, "-c", CHILD, json.dumps(overrides), json.dumps(samples)]
    wall = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["process_seconds"] = time.perf_counter() - wall  # includes interpreter start and imports
    return figures


def io_floor(output: Path, n_events: int) -> float:
    args = [sys.executable, "-c", IO_FLOOR, str(n_events), str(output / "floor.root")]
    return float(subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0 = one per core)")
    parser.add_argument("--skip-default", action="store_true", help="skip the default configuration")
    options = parser.parse_args()
    base = {"simulation.workers": options.workers}
    figures = {"workers": options.workers, "peak_rss_note": "MB; main process and largest worker"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not options.skip_default:
            figures["default"] = simulate_in_subprocess(tmp / "default", base)
            print("default configuration:", figures["default"], flush=True)
        for n_events in (1_000_000, 3_000_000):
            key = f"ggg_{n_events // 1_000_000}M"
            figures[key] = simulate_in_subprocess(
                tmp / key, {**base, "simulation.backgrounds.ggg.events": n_events}, ["ggg"]
            )
            floor = io_floor(tmp, figures[key]["selected"]["ggg"])
            figures[key]["io_floor_seconds"] = floor
            figures[key]["ratio_to_io_floor"] = figures[key]["seconds"] / floor
            print(f"{key}:", figures[key], flush=True)
    figures["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
