"""Benchmark of the signal-shape stage: wall time and memory on the default sample.

Runs ``bumphunt.shapes.run_shapes`` (plots off) on the ALP ntuple after the kinematic fit
(run ``bumphunt run`` first, in the directory given by ``--analysis``) and, as a reference
measured in the same run, the fit of one mass with the zfit engine (unbinned) against the
compiled one (binned in 0.01 core widths; the same estimates, see docs/shapes.md).

Usage: python bench/bench_shapes.py [--analysis DIR] [--mass M]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analysis", default=".", help="directory where `bumphunt run` was run")
    parser.add_argument("--mass", type=float, default=3.025, help="generated mass of the engine comparison")
    args = parser.parse_args()

    from bumphunt.config import load_config
    from bumphunt.cuts import branches_used
    from bumphunt.layout import OutputLayout
    from bumphunt.shapes import fit_mass, run_shapes, signal_candidates

    default_output = load_config()["output_dir"]
    config = load_config(None, {"shapes.plots": False, "output_dir": str(Path(args.analysis) / default_output)})
    layout = OutputLayout.from_config(config)
    source = layout.ntuple("kinfit", "alp")
    with tempfile.TemporaryDirectory() as output:
        started = time.perf_counter()
        summary = run_shapes(config, source, output, progress=False)
        stage_seconds = time.perf_counter() - started
    model = summary.model

    selection = config["shapes"]["selection"]
    friends = layout.friends("alp", branches_used(selection))
    grouped, generated = signal_candidates(source, "m_gg_fit", selection, friends=friends)
    mass = min(grouped, key=lambda m: abs(m - args.mass))
    candidates, matched = grouped[mass]
    options = dict(second_gaussian=True, sqrt_s=model.settings["sqrt_s"], edge_width=model.settings["edge_width"])
    timings = {}
    for engine in ("numba", "zfit"):
        fit_mass(mass, candidates, matched, generated[mass], engine=engine, **options)  # compile / trace once
        started = time.perf_counter()
        fit_mass(mass, candidates, matched, generated[mass], engine=engine, **options)
        timings[engine] = time.perf_counter() - started

    figures = {
        "masses": len(model.fits),
        "candidates": sum(f.n_candidates for f in model.fits),
        "shape_stage_seconds": round(stage_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "one_mass_seconds_numba": round(timings["numba"], 3),
        "one_mass_seconds_zfit": round(timings["zfit"], 3),
        "zfit_over_numba": round(timings["zfit"] / timings["numba"], 1),
        "held_out": model.validation["summary"],
    }
    print(f"shape stage: {figures['shape_stage_seconds']} s for {figures['masses']} masses")
    print(f"one mass ({mass:.3f} GeV): numba {timings['numba']:.3f} s, zfit {timings['zfit']:.3f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
