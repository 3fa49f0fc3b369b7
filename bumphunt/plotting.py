"""Figures of the analysis stages (matplotlib with the mplhep style), written to files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PARAMETER_LABELS = {
    "mu_offset": r"$\mu - m$ [MeV]",
    "sigma": r"$\sigma$ [MeV]",
    "sigma_l": r"$\sigma_L$ [MeV]",
    "sigma_r": r"$\sigma_R$ [MeV]",
    "alpha_l": r"$\alpha_L$",
    "alpha_r": r"$\alpha_R$",
    "fraction": r"truth-matched fraction $f$",
    "c1": r"Chebyshev $c_1$",
    "efficiency": "candidates in window / generated",
}
_IN_MEV = {"mu_offset", "sigma", "sigma_l", "sigma_r"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    mplhep.style.use("CMS")
    return plt


def _atomic_savefig(fig, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    fig.savefig(tmp, **kwargs)
    os.replace(tmp, path)
    return path


def plot_shape_parameters(model, path: str | Path) -> Path:
    """Every shape parameter versus mass: fitted points, held-out points, interpolation."""
    plt = _pyplot()
    names = list(model.splines)
    columns = 3
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(8 * columns, 5.5 * rows), squeeze=False)
    held = {round(m, 9) for m in model.held_out}
    grid = np.linspace(min(f.mass for f in model.fits), max(f.mass for f in model.fits), 600)
    for ax, name in zip(axes.flat, names):
        scale = 1e3 if name in _IN_MEV else 1.0
        key = "mu" if name == "mu_offset" else name
        for label, selected, style in (
            ("fitted", lambda f: f.ok and round(f.mass, 9) not in held, dict(color="k", marker="o")),
            ("held out", lambda f: f.ok and round(f.mass, 9) in held, dict(color="C3", marker="s")),
        ):
            points = [f for f in model.fits if selected(f) and (name != "c1" or f.c1_floating)]
            x = np.array([f.mass for f in points])
            y = np.array([f.values[key] for f in points]) - (x if name == "mu_offset" else 0.0)
            err = np.array([f.errors[key] for f in points])
            ax.errorbar(x, scale * y, yerr=scale * err, linestyle="none", markersize=3, label=label, **style)
        ax.plot(grid, scale * model.splines[name](grid), color="C0", label="interpolation")
        failed = [f.mass for f in model.fits if not f.ok]
        for mass in failed:
            ax.axvline(mass, color="C1", alpha=0.4, linewidth=1)
        ax.set_xlabel(r"$m_a$ [GeV]", fontsize=18)
        ax.set_ylabel(PARAMETER_LABELS.get(name, name), fontsize=18)
        ax.tick_params(labelsize=14)
    axes.flat[0].legend(fontsize=14)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path = _atomic_savefig(fig, Path(path), dpi=60)
    plt.close(fig)
    return path


def plot_shape_fits(model, grouped: dict, path: str | Path, *, bins: int = 60) -> Path:
    """One PDF page per generated mass: the candidates, the fitted signal model and the pulls.

    The artists are created once and updated page by page, which keeps 200 pages fast.
    """
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.collections import LineCollection

    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.pdf")
    n_l, n_r = model.settings["n_l"], model.settings["n_r"]
    held = {round(m, 9) for m in model.held_out}
    fig, (ax, ax_pull) = plt.subplots(2, 1, figsize=(9, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    (points,) = ax.plot([], [], "ko", markersize=3, label="candidates")
    error_bars = LineCollection([], colors="k", linewidths=1)
    ax.add_collection(error_bars)
    (total,) = ax.plot([], [], color="C0", label="signal model")
    (wrong,) = ax.plot([], [], "--", color="C1", label="wrong pairings")
    (pulls,) = ax_pull.step([], [], where="mid", color="C0")
    ax_pull.axhline(0, color="k", linewidth=1)
    ax.set_yscale("log")
    ax.legend(fontsize=12, loc="upper right")
    ax_pull.set_ylim(-5, 5)
    ax_pull.set_ylabel("pull", fontsize=14)
    ax_pull.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]", fontsize=16)
    title = ax.set_title("", fontsize=16)
    message = ax.text(0.5, 0.5, "", ha="center", transform=ax.transAxes)
    with PdfPages(tmp) as pdf:
        for fit in model.fits:
            usable = fit.ok and fit.mass in grouped
            for artist in (points, error_bars, total, wrong, pulls):
                artist.set_visible(usable)
            if not usable:
                title.set_text("")
                message.set_text(f"m = {fit.mass:.3f} GeV: {fit.status}")
                pdf.savefig(fig)
                continue
            message.set_text("")
            shape = fit.shape(n_l, n_r)
            x = grouped[fit.mass][0]
            x = x[np.isfinite(x) & (x >= shape.lower) & (x <= shape.upper)]
            counts, edges = np.histogram(x, bins=bins, range=(shape.lower, shape.upper))
            centres = 0.5 * (edges[1:] + edges[:-1])
            width = edges[1] - edges[0]
            fine = np.linspace(shape.lower, shape.upper, 400)
            expected = len(x) * width * shape.pdf(centres)
            errors = np.sqrt(counts)
            points.set_data(centres, counts)
            error_bars.set_segments([[(c, n - e), (c, n + e)] for c, n, e in zip(centres, counts, errors)])
            total.set_data(fine, len(x) * width * shape.pdf(fine))
            wrong.set_data(fine, len(x) * width * (1 - shape.fraction) * shape.combinatorial_pdf(fine))
            pulls.set_data(centres, (counts - expected) / np.sqrt(np.maximum(expected, 1e-9)))
            ax.set_xlim(shape.lower, shape.upper)
            ax.set_ylim(0.5, 3 * max(counts.max(), 1))
            kind = "held out" if round(fit.mass, 9) in held else "fit"
            title.set_text(f"m = {fit.mass:.3f} GeV ({kind}), $\\chi^2$/ndf = {fit.chi2:.0f}/{fit.ndf}")
            pdf.savefig(fig)
    plt.close(fig)
    os.replace(tmp, path)
    return path
