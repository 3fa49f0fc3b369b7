"""The g_agg limits of an analysis next to the published Belle II 2020 limit, and where the ALP
lifetime matters.

Reads the exclusion table of an analysis (``bumphunt run``, or ``bumphunt exclusion`` after a
scan), prints the expected and observed limits at a few masses next to the published observed
curve (PRL 125 (2020) 161806, digitised), lists the masses where the lifetime changes the
observed limit by more than 10 % (against the prompt conversion), and draws the ratio of the
expected limit to the published one.

    python examples/exclusion_vs_published.py [ANALYSIS_OUTPUT_DIR] [--plot ratio.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bumphunt.exclusion import published_limit  # noqa: E402
from bumphunt.layout import OutputLayout  # noqa: E402

MASSES = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 9.5)


def published_at(masses) -> np.ndarray:
    """The published curve at ``masses`` (sorted by mass: the digitised points are in plot order)."""
    mass, coupling, _ = published_limit()
    order = np.argsort(mass, kind="stable")
    return np.interp(masses, mass[order], coupling[order])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", nargs="?", default="bumphunt_output")
    parser.add_argument("--plot", default=None, help="write the ratio curve here")
    args = parser.parse_args(argv)
    table = json.loads(OutputLayout(Path(args.output_dir)).exclusion_table_json.read_text())
    rows = [r for r in table["rows"] if r["g_exp"] is not None]
    mass = np.array([r["mass"] for r in rows])
    column = {name: np.array([np.nan if r[name] is None else r[name] for r in rows]) for name in
              ("g_obs", "g_exp", "g_exp_m1", "g_exp_p1", "g_obs_prompt")}  # fmt: skip
    published = published_at(mass)
    figures = {"masses": []}
    print(f"{'m [GeV]':>8} {'g_exp':>10} {'g_obs':>10} {'published':>10} {'exp/pub':>8} {'obs/pub':>8}")
    for m in MASSES:
        i = int(np.argmin(np.abs(mass - m)))
        values = {name: float(column[name][i]) for name in ("g_exp", "g_obs")} | {"published": float(published[i])}
        figures["masses"].append({"mass": float(mass[i]), **values})
        print(f"{mass[i]:8.3f} {values['g_exp']:10.3e} {values['g_obs']:10.3e} {values['published']:10.3e} "
              f"{values['g_exp'] / values['published']:8.2f} {values['g_obs'] / values['published']:8.2f}")  # fmt: skip
    lifetime = column["g_obs"] / column["g_obs_prompt"]
    changed = mass[np.abs(lifetime - 1) > 0.10]
    figures["lifetime_over_10_percent"] = changed.tolist()
    figures["largest_lifetime_effect"] = float(np.nanmax(np.abs(lifetime - 1)))
    print(f"lifetime changes the observed limit by > 10 % at {len(changed)} masses"
          + (f" ({changed.min():.3f}-{changed.max():.3f} GeV)" if len(changed) else "")
          + f"; largest change {100 * figures['largest_lifetime_effect']:.1f} %")  # fmt: skip
    if args.plot:
        fig, ax = plt.subplots(figsize=(9, 5))
        ax.fill_between(mass, column["g_exp_m1"] / published, column["g_exp_p1"] / published, color="#00cc00",
                        linewidth=0, label=r"expected $\pm 1\sigma$ / published")  # fmt: skip
        ax.plot(mass, column["g_exp"] / published, "k--", linewidth=1, label="expected / published")
        ax.axhline(1.0, color="C3", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(r"$g_{a\gamma\gamma}$ limit / Belle II 2020")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=80)
    return figures


if __name__ == "__main__":
    main()
