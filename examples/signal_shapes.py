"""The signal-shape figures and tables of docs/shapes.md, from an analysis after `bumphunt shapes`.

    bumphunt run                      # or: bumphunt simulate && bumphunt kinfit && bumphunt shapes
    python examples/signal_shapes.py  # in the same directory

Prints the held-out validation and the resolution curve as Markdown tables and writes the
parameter plot and fit pages at a few masses to the working directory (``--figures DIR``
elsewhere; the figures of docs/shapes.md: ``--figures docs/figures``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bumphunt.config import load_config
from bumphunt.cuts import branches_used
from bumphunt.layout import OutputLayout
from bumphunt.models import ShapeModel
from bumphunt.plotting import plot_shape_fits, plot_shape_parameters, save_figure
from bumphunt.shapes import signal_candidates


def held_out_table(model: ShapeModel) -> str:
    lines = [
        "| mass (GeV) | mu: (interp - fit)/error | width: (interp - fit)/error | chi2/ndf | p-value |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in model.validation["masses"]:
        lines.append(
            f"| {row['mass']:.3f} | {row['mu_difference_in_errors']:+.2f} | {row['width_difference_in_errors']:+.2f} "
            f"| {row['gof_chi2']:.0f}/{row['gof_ndf']} | {row['gof_pvalue']:.3f} |"
        )
    return "\n".join(lines)


def resolution_table(model: ShapeModel, masses=(0.5, 1.0, 2.0, 4.0, 6.0, 7.5, 8.0, 9.0, 9.7)) -> str:
    shapes = [model.shape(m) for m in masses]
    rows = {
        "m_a (GeV)": [f"{m:g}" for m in masses],
        "resolution sigma_68 (MeV)": [f"{1e3 * model.resolution(m):.1f}" for m in masses],
        "DSCB sigma (MeV)": [f"{1e3 * s.sigma_l:.1f}" for s in shapes],
        "Gaussian fraction": [f"{s.gauss_fraction:.2f}" for s in shapes],
        "efficiency": [f"{float(model.efficiency(m)):.2f}" for m in masses],
        "f (truth-matched)": [f"{s.fraction:.3f}" for s in shapes],
    }
    header, *body = rows.items()
    lines = [f"| {header[0]} | " + " | ".join(header[1]) + " |", "| --- " * (len(masses) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in body]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shapes = OutputLayout.from_config(load_config()).shapes_file  # bumphunt_output/shapes/signal_shapes.json
    parser.add_argument("--shapes", default=str(default_shapes))
    parser.add_argument("--figures", default=".", help="directory for the figures (default: the working directory)")
    parser.add_argument("--masses", type=float, nargs="*", default=[7.475, 7.275])
    args = parser.parse_args()

    model = ShapeModel.load(args.shapes)
    summary = model.validation["summary"]
    print(held_out_table(model))
    print(
        f"\nmu within 2 errors {summary['mu_within_2_errors']:.0%}, width within 2 errors "
        f"{summary['width_within_2_errors']:.0%}, chi2 p > 0.01 {summary['gof_pvalue_above_0.01']:.0%}\n"
    )
    print(resolution_table(model))
    figures = Path(args.figures)
    save_figure(plot_shape_parameters(model), figures / "shape_parameters.png", dpi=60)
    source, selection = Path(model.settings["source"]), model.settings["selection"]
    # the Punzi-net's decision lives in the analysis' select/ friend of the kinematic-fit ntuple
    friends = OutputLayout(source.parents[1]).friends(source.stem, branches_used(selection))
    grouped, _ = signal_candidates(source, model.settings["mass_variable"], selection, friends=friends)
    for mass in args.masses:
        nearest = min(grouped, key=lambda m: abs(m - mass))
        plot_shape_fits(model, grouped, figures / f"shape_fit_{round(1e3 * nearest):d}.png", masses=[nearest])
    print(f"\nfigures in {figures}/")
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
