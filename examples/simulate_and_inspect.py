"""Simulate a small analysis and look at the diphoton mass spectrum.

Usage: python examples/simulate_and_inspect.py [--output DIR] [--events-per-mass N]

Writes the ntuples and ``diphoton_mass.png``: the three diphoton masses per event of the
gamma gamma gamma background (weighted to 445 pb^-1) with ALP signals at a few masses
(weighted to g = 1e-3 GeV^-1), plus the resolution of the truth-matched pair.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import bumphunt
from bumphunt.ntuple import diphoton_masses, read_ntuple, truth_matched_pairs
from bumphunt.plotting import save_figure
from bumphunt.simulation import run_simulation


def diphoton_candidates(events: dict) -> tuple[np.ndarray, np.ndarray]:
    """The three diphoton masses of every event, shape (n, 3), and whether each pair is
    the two resonance daughters (truth-matched)."""
    masses = diphoton_masses(events["photon_E"], events["photon_theta"], events["photon_phi"])
    return masses, truth_matched_pairs(events["photon_origin"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bumphunt_example", help="output directory")
    parser.add_argument("--events-per-mass", type=int, default=10_000)
    options = parser.parse_args()

    config = bumphunt.load_config(
        overrides={
            "output_dir": options.output,
            "simulation.signal.masses": {"start": 1.0, "stop": 7.0, "step": 2.0},
            "simulation.signal.events_per_mass": options.events_per_mass,
            "simulation.backgrounds.ggg.events": 10 * options.events_per_mass,
        }
    )
    summaries = {s.sample: s for s in run_simulation(config, samples=["alp", "ggg"])}

    import hist
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    mplhep.style.use("CMS")
    axis = hist.axis.Regular(200, 0.0, 10.0, name="m", label=r"$M_{\gamma\gamma}$ [GeV]")
    background = read_ntuple(summaries["ggg"].path)
    signal = read_ntuple(summaries["alp"].path)
    bkg_masses, _ = diphoton_candidates(background)
    h_bkg = hist.Hist(axis, storage=hist.storage.Weight())
    h_bkg.fill(bkg_masses.ravel(), weight=np.repeat(background["weight"], 3))

    fig, (ax, ax_res) = plt.subplots(1, 2, figsize=(20, 8))
    mplhep.histplot(h_bkg, ax=ax, label=r"$e^+e^-\to\gamma\gamma\gamma$", histtype="fill", alpha=0.5)
    sig_masses, matched = diphoton_candidates(signal)
    print(f"{'mass':>6} {'efficiency':>10} {'resolution (truth-matched)':>28}")
    for mass in np.unique(signal["gen_mass"]):
        at_mass = signal["gen_mass"] == mass
        h_sig = hist.Hist(axis, storage=hist.storage.Weight())
        h_sig.fill(sig_masses[at_mass].ravel(), weight=np.repeat(signal["weight"][at_mass], 3))
        mplhep.histplot(h_sig, ax=ax, label=f"ALP {mass:.1f} GeV")
        peak = sig_masses[at_mass][matched[at_mass]]
        width = 0.5 * np.diff(np.percentile(peak, [15.87, 84.13]))[0]
        ax_res.plot(mass, width * 1e3, "o", color="k")
        efficiency = at_mass.sum() / options.events_per_mass
        print(f"{mass:6.2f} {efficiency:10.3f} {width * 1e3:24.1f} MeV")
    ax.set_yscale("log")
    ax.set_ylabel("candidates / 50 MeV (445 pb$^{-1}$)")
    ax.legend(fontsize=16)
    ax_res.set_xlabel(r"$m_a$ [GeV]")
    ax_res.set_ylabel(r"$M_{\gamma\gamma}$ resolution (68% half-width) [MeV]")
    output = save_figure(fig, Path(options.output) / "diphoton_mass.png", dpi=80)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
