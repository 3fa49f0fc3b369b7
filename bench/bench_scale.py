"""Benchmark of the chain at growing luminosity: wall time and peak memory of every stage at
0.445, 36 and 362 fb^-1, in process and on a two-worker Dask LocalCluster.

The simulation and the kinematic fit do not depend on the luminosity (weights are brought to
it where they are read, docs/running.md#another-luminosity): they run once, and every
luminosity starts from a copy of their folders. Each stage runs as its own `bumphunt <stage>`
process; its peak memory is the largest sum of the resident sets of that process, its
children and (with --dask) the cluster's workers, sampled every 50 ms. The reference measured
in the same run is the first luminosity: the goal is memory flat in luminosity, and time
growing at most as the candidates in the largest window do.

Usage: python bench/bench_scale.py [--luminosities 445 36000 362000] [--analysis run1|default|quick]
                                    [--dask] [--output DIR] [--keep]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

STAGES_ONCE = ("simulate", "kinfit")
STAGES_PER_LUMINOSITY = ("select", "shapes", "scan", "exclusion")
#: The stages that take ``--scheduler`` (docs/cluster.md).
ON_DASK = ("simulate", "kinfit", "select", "scan")


class PeakMemory:
    """The largest resident memory (MB) of a set of processes, sampled in a thread."""

    def __init__(self, processes):
        self.processes, self.peak_mb = processes, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            total, seen = 0, set()
            for process in self.processes():  # a process reached twice (a child and a worker) counts once
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 1e6)
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _stage(name: str, folder: Path, analysis: str, settings: list[str], scheduler: str | None, workers) -> dict:
    """One `bumphunt <name>` in a child process: wall seconds and peak RSS (MB)."""
    command = [sys.executable, "-m", "bumphunt.cli", name, "-q", "--set", f"output_dir={folder}"]
    command += [] if analysis == "default" else ["--analysis", analysis]
    for setting in settings:
        command += ["--set", setting]
    if scheduler and name in ON_DASK:
        command += ["--scheduler", scheduler]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = psutil.Process(child.pid)

    def processes():
        with contextlib.suppress(psutil.Error):
            yield tree
            yield from tree.children(recursive=True)
        yield from workers()

    with PeakMemory(processes) as memory:
        out, err = child.communicate()
    seconds = time.perf_counter() - start
    if child.returncode:
        sys.exit(f"bumphunt {name} failed:\n{out}\n{err}")
    print(out, end="", flush=True)
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(memory.peak_mb)}


def _cluster_workers(cluster):
    """The worker processes of a LocalCluster (none without one)."""
    if cluster is None:
        return lambda: iter(())
    me = psutil.Process()
    return lambda: (p for p in me.children(recursive=True) if "python" in p.name().lower())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--luminosities", type=float, nargs="+", default=[445.0, 36_000.0, 362_000.0],
                        help="pb^-1 (default: 0.445, 36 and 362 fb^-1)")  # fmt: skip
    parser.add_argument("--analysis", choices=("run1", "default", "quick"), default="run1",
                        help="the bundled analysis whose samples and settings are used")  # fmt: skip
    parser.add_argument("--dask", action="store_true", help="also on a two-worker Dask LocalCluster")
    parser.add_argument("--output", type=Path, help="results folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the results folders")
    args = parser.parse_args()
    root = args.output or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    figures = {"analysis": args.analysis, "cores": psutil.cpu_count(), "modes": {}}
    try:
        for mode in ("in_process", "dask") if args.dask else ("in_process",):
            cluster = None
            if mode == "dask":
                from dask.distributed import LocalCluster

                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            scheduler = cluster.scheduler_address if cluster else None
            workers = _cluster_workers(cluster)
            try:
                base = root / mode / "base"
                once = {s: _stage(s, base, args.analysis, [], scheduler, workers) for s in STAGES_ONCE}
                per_luminosity = {}
                for luminosity in args.luminosities:
                    folder = root / mode / f"L{luminosity:g}"
                    for stage_dir in ("simulation", "kinfit"):
                        shutil.copytree(base / stage_dir, folder / stage_dir, symlinks=True)
                    settings = [f"luminosity={luminosity:g}"]
                    per_luminosity[f"{luminosity:g}"] = {
                        s: _stage(s, folder, args.analysis, settings, scheduler, workers) for s in STAGES_PER_LUMINOSITY
                    }
                    if not args.keep:
                        shutil.rmtree(folder)
            finally:
                if cluster is not None:
                    cluster.close()
            first, last = (per_luminosity[f"{x:g}"] for x in (args.luminosities[0], args.luminosities[-1]))
            figures["modes"][mode] = {
                "independent_of_luminosity": once,
                "per_luminosity": per_luminosity,
                "peak_rss_ratio_last_to_first": round(
                    max(v["peak_rss_mb"] for v in last.values()) / max(v["peak_rss_mb"] for v in first.values()), 2
                ),
                "chain_seconds": {
                    key: round(sum(v["seconds"] for v in stages.values()) + sum(v["seconds"] for v in once.values()), 1)
                    for key, stages in per_luminosity.items()
                },
            }
    finally:
        if not args.keep and args.output is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
