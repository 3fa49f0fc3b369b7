"""Expected cross-section limit of the scan on the Punzi-net-selected events over the one on the
pre-selection, per mass (the figure in docs/select.md).

Run after ``bumphunt run`` (shapes and scan on the selected events, the default, in
<analysis>/bumphunt_output); the pre-selection's shapes and scan are made here, in
shapes_preselection/ and scan_preselection/ beside them.

Usage: python examples/select_limit_ratio.py [ANALYSIS_OUTPUT_DIR] [--figure PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bumphunt.config import load_config
from bumphunt.coupling import cross_section_limit
from bumphunt.scan import read_table, run_scan
from bumphunt.shapes import run_shapes


def expected_cross_section_limits(result, luminosity: float) -> np.ndarray:
    """Median expected cross-section limit (pb) per mass hypothesis of a scan."""
    return np.array([cross_section_limit(u, e, luminosity) for u, e in zip(result["ul_exp"], result["efficiency"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="bumphunt_output", help="the analysis' output_dir")
    parser.add_argument("--figure", default="select_limit_ratio.png")
    args = parser.parse_args()
    root = Path(args.output).resolve()
    preselection = load_config()["select"]["preselection"]
    config = load_config(None, {"output_dir": str(root), "shapes.selection": preselection, "shapes.plots": False,
                                "scan.plots": False, "scan.global_toys": 0})  # fmt: skip
    shapes_file = root / "shapes_preselection" / "signal_shapes.json"
    if not shapes_file.exists():
        run_shapes(config, output_dir=shapes_file.parent, progress=False)
    table = root / "scan_preselection" / "results.json"
    if not table.exists():
        run_scan(dict(config, scan=dict(config["scan"], shapes=str(shapes_file))), output_dir=table.parent,
                 progress=False)  # fmt: skip
    selected, plain = read_table(root / "scan" / "results.json"), read_table(table)
    mass = plain["mass"]
    luminosity = config["luminosity"]
    ratio = np.interp(mass, selected["mass"], expected_cross_section_limits(selected, luminosity))
    ratio /= expected_cross_section_limits(plain, luminosity)
    finite = np.isfinite(ratio)
    print(f"{finite.sum()} hypotheses: selected better at {np.mean(ratio[finite] < 1):.1%}")
    for low, high in ((0.2, 1), (1, 2), (2, 4), (4, 6), (6, 8), (8, 9.7)):
        inside = finite & (mass >= low) & (mass < high)
        median, better = np.median(ratio[inside]), np.mean(ratio[inside] < 1)
        print(f"{low}-{high} GeV: median ratio {median:.3f}, better at {better:.0%}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot(mass[finite], ratio[finite], "k-", linewidth=1)
    ax.axhline(1.0, color="C3", linestyle="--")
    ax.set_xlabel(r"$m_a$ [GeV]")
    ax.set_ylabel("expected limit: Punzi-net / pre-selection")
    ax.set_ylim(0.3, 1.1)
    fig.savefig(args.figure, dpi=80, bbox_inches="tight")
    print("->", args.figure)


if __name__ == "__main__":
    main()
