"""Benchmark of reading an analyst's candidate-row ntuples into the kinematic fit.

Writes one basf2-like file of N candidates (bookkeeping branches and three photons as
``gamma{i}_E``, ``_theta``, ``_phi``, ``_clusterErrorE/Theta/Phi``, ``_clusterTiming``, seeded),
then times :func:`bumphunt.samples.read_sample` over it (branch map, expressions, photon order,
covariance, weights, beams: everything the kinematic fit gets) and, as the reference in the same
run, a plain ``uproot`` read of the same branches (``tree.iterate`` to numpy, same step size).
Also, for scale, the kinematic fit of the events read (``fit_photons``).

Usage: python bench/bench_read_samples.py [--events N] [--repeat K]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot

from bumphunt.config import load_config
from bumphunt.kinfit import fit_photons
from bumphunt.samples import analysis_samples, read_sample

STEP = 200_000
PHOTONS = {
    "photon_E": "gamma{i}_E",
    "photon_theta": "gamma{i}_theta",
    "photon_phi": "gamma{i}_phi",
    "photon_error_E": "gamma{i}_clusterErrorE",
    "photon_error_theta": "gamma{i}_clusterErrorTheta",
    "photon_error_phi": "gamma{i}_clusterErrorPhi",
    "photon_time": "gamma{i}_clusterTiming",
    "weight": "__weight__",
}


def write_file(path: Path, n: int) -> list[str]:
    rng = np.random.default_rng(1)
    branches = {
        "__experiment__": np.full(n, 8, dtype=np.int32),
        "__run__": np.full(n, 101, dtype=np.int32),
        "__event__": np.arange(n, dtype=np.int32),
        "__candidate__": np.zeros(n, dtype=np.int32),
        "__weight__": np.ones(n),
    }
    for i, energy in enumerate((5.0, 3.0, 1.5)):
        branches[f"gamma{i}_E"] = energy * rng.uniform(0.9, 1.1, n)
        branches[f"gamma{i}_theta"] = rng.uniform(0.4, 2.5, n)
        branches[f"gamma{i}_phi"] = rng.uniform(-np.pi, np.pi, n)
        for q in ("E", "Theta", "Phi"):
            branches[f"gamma{i}_clusterError{q}"] = rng.uniform(0.005, 0.05, n)
        branches[f"gamma{i}_clusterTiming"] = rng.normal(0.0, 2.0, n)
    with uproot.recreate(path) as file:
        file["candidates"] = branches
    return list(branches)


def best_time(function, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bkg.root"
        names = write_file(path, args.events)
        config = load_config(None, {"output_dir": folder, "samples": {
            "alp": {"role": "signal", "files": str(path), "tree": "candidates", "mass": 1.0, "n_generated": 1,
                    "branches": PHOTONS},
            "bkg": {"role": "background", "files": str(path), "tree": "candidates", "cross_section_pb": 1.0,
                    "n_generated": args.events, "branches": PHOTONS}}})  # fmt: skip
        sample = analysis_samples(config)["bkg"]

        def plain():
            with uproot.open(path) as file:
                return sum(len(c["__event__"]) for c in file["candidates"].iterate(names, step_size=STEP, library="np"))

        def bumphunt_read():
            return sum(len(chunk["weight"]) for _, chunk in read_sample(sample, config, step_size=STEP))

        assert plain() == bumphunt_read() == args.events
        plain_seconds = best_time(plain, args.repeat)
        read_seconds = best_time(bumphunt_read, args.repeat)
        chunk = next(iter(read_sample(sample, config, step_size=STEP)))[1]
        fit_photons(chunk["photon_E"][:10], chunk["photon_theta"][:10], chunk["photon_phi"][:10],
                    chunk["photon_cov"][:10], chunk["beam"][:10])  # compile  # fmt: skip
        fit_seconds = best_time(lambda: fit_photons(chunk["photon_E"], chunk["photon_theta"], chunk["photon_phi"],
                                                    chunk["photon_cov"], chunk["beam"]), args.repeat)  # fmt: skip
    figures = {
        "events": args.events,
        "branches": len(names),
        "read_sample_events_per_s": args.events / read_seconds,
        "plain_uproot_events_per_s": args.events / plain_seconds,
        "read_over_plain_time": read_seconds / plain_seconds,
        "kinfit_events_per_s": len(chunk["weight"]) / fit_seconds,
    }
    print(f"read_sample {figures['read_sample_events_per_s']:.3g} events/s, plain uproot "
          f"{figures['plain_uproot_events_per_s']:.3g} events/s ({figures['read_over_plain_time']:.2f} x its time); "
          f"kinematic fit {figures['kinfit_events_per_s']:.3g} events/s")  # fmt: skip
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
