"""Benchmark of `bumphunt run`: wall time, peak memory and disk use of the whole chain.

Runs `bumphunt run` (the bundled analysis, or `--quick`) in a fresh process into a new
folder, then again into the same folder: the second run skips every stage, and its time is
the reference measured in the same run (what a rerun costs when nothing changed). Stage
times come from the `fingerprint.json` records; disk use per stage folder from the files.

Usage: python bench/bench_run.py [--quick] [--output DIR] [--keep]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(output: Path, quick: bool) -> tuple[float, float, str]:
    """One `bumphunt run` in a child process: wall seconds, its peak RSS (MB) and its output."""
    command = [sys.executable, "-m", "bumphunt.cli", "run", "-q", "--set", f"output_dir={output}"]
    command += ["--quick"] if quick else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"bumphunt run failed:\n{done.stdout}\n{done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest of any child so far: a run that peaks lower
    # than an earlier one cannot be told apart, so only the first run's peak is reported
    return seconds, max(peak, before) / 1024, done.stdout


def _disk(folder: Path) -> dict:
    """MB per stage folder and in total."""
    sizes = {
        stage.name: sum(p.stat().st_size for p in stage.rglob("*") if p.is_file()) / 1e6
        for stage in sorted(folder.iterdir())
        if stage.is_dir()
    }
    return {**{name: round(mb, 1) for name, mb in sizes.items()}, "total": round(sum(sizes.values()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced analysis of `bumphunt run --quick`")
    parser.add_argument("--output", type=Path, help="results folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the results folder")
    args = parser.parse_args()
    folder = args.output or Path(tempfile.mkdtemp(prefix="bench_run_")) / "run"
    if folder.exists():
        sys.exit(f"{folder} exists: the benchmark needs a new folder")
    try:
        seconds, peak_mb, output = _run(folder, args.quick)
        print(output, end="")
        again, _, output_again = _run(folder, args.quick)
        skipped = output_again.count("up to date, skipped")
        stages = {}
        for record in sorted(folder.glob("*/fingerprint.json")):
            content = json.loads(record.read_text())
            stages[content["stage"]] = content["seconds"]
        figures = {
            "analysis": "quick" if args.quick else "default",
            "wall_seconds": round(seconds, 1),
            "peak_rss_mb": round(peak_mb),
            "disk_mb": _disk(folder),
            "stage_seconds": {name: round(value, 1) for name, value in stages.items()},
            "plots": sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")),
            "rerun_seconds": round(again, 1),
            "rerun_stages_skipped": skipped,
            "rerun_speedup": round(seconds / again, 1),
        }
    finally:
        if not args.keep and args.output is None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
