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
    "gauss_fraction": r"Gaussian fraction $g$",
    "gauss_ratio": r"$\sigma_G / \sigma$",
    "combinatorial_density": r"wrong pairs / GeV / matched",
    "c1": r"Chebyshev $c_1$",
    "resolution": r"resolution $\sigma_{68}$ [MeV]",
    "efficiency": "candidates in window / generated",
}
_IN_MEV = {"mu_offset", "sigma", "sigma_l", "sigma_r", "resolution"}


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
    """Every shape parameter and the resolution versus mass: fitted points, held-out points,
    interpolation; masses left out of the interpolation are marked by vertical lines."""
    plt = _pyplot()
    names = [*model.splines, "resolution"]
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
            points = [f for f in model.fits if selected(f) and _measured(f, name)]
            x = np.array([f.mass for f in points])
            y = np.array([f.values[key] for f in points]) - (x if name == "mu_offset" else 0.0)
            err = np.array([f.errors[key] for f in points])
            ax.errorbar(x, scale * y, yerr=scale * err, linestyle="none", markersize=3, label=label, **style)
        curve = model.resolution(grid) if name == "resolution" else model.splines[name](grid)
        ax.plot(grid, scale * curve, color="C0", label="interpolation")
        failed = [f.mass for f in model.fits if not f.ok or f.chi2_pvalue < model.settings.get("min_fit_pvalue", 0.0)]
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


def _measured(fit, name: str) -> bool:
    """Whether a per-mass fit determined the parameter ``name``."""
    if name == "c1":
        return fit.c1_floating
    if name == "combinatorial_density":
        return fit.wrong_in_window
    return True


def plot_shape_fits(model, grouped: dict, path: str | Path, *, masses=None, bins: int = 60) -> Path:
    """One page per generated mass: the candidates, the signal model and the pulls.

    Fitted masses show their own fit; held-out masses show the interpolated shape (nothing
    fitted), which is what the held-out test judges. ``path`` is a PDF of every mass (or of
    ``masses``), or a PNG of one mass. The artists are created once and updated page by
    page, which keeps 200 pages fast.
    """
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.collections import LineCollection

    plt = _pyplot()
    path = Path(path)
    fits = [f for f in model.fits if masses is None or any(abs(f.mass - m) < 1e-6 for m in np.atleast_1d(masses))]
    if path.suffix != ".pdf" and len(fits) != 1:
        raise ValueError(f"{path.name}: one mass per image; write a .pdf for {len(fits)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
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

    def draw(fit):
        usable = fit.ok and fit.mass in grouped
        for artist in (points, error_bars, total, wrong, pulls):
            artist.set_visible(usable)
        if not usable:
            title.set_text("")
            message.set_text(f"m = {fit.mass:.3f} GeV: {fit.status}")
            return
        message.set_text("")
        held_out = round(fit.mass, 9) in held
        shape = model.shape(fit.mass) if held_out else fit.shape(n_l, n_r)
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
        if held_out:
            row = next(r for r in model.validation["masses"] if abs(r["mass"] - fit.mass) < 1e-6)
            chi2, ndf, kind = row.get("gof_chi2", np.nan), row.get("gof_ndf", 0), "held out, interpolated"
        else:
            chi2, ndf, kind = fit.chi2, fit.ndf, "fit"
        title.set_text(f"m = {fit.mass:.3f} GeV ({kind}), $\\chi^2$/ndf = {chi2:.0f}/{ndf}")

    if path.suffix == ".pdf":
        with PdfPages(tmp) as pdf:
            for fit in fits:
                draw(fit)
                pdf.savefig(fig)
    else:
        draw(fits[0])
        fig.savefig(tmp, dpi=70)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _shade_vetoes(ax, vetoed):
    for low, high in vetoed.values():
        ax.axvspan(low, high, color="grey", alpha=0.3, linewidth=0)


def plot_brazil(rows, vetoed, path):
    """Observed upper limit versus mass with the expected +-1 and +-2 sigma bands."""
    plt = _pyplot()
    mass = np.array([r["mass"] for r in rows])
    get = lambda key: np.array([r[key] for r in rows], dtype=float)  # noqa: E731
    fig, ax = plt.subplots(figsize=(12, 7))
    ax.fill_between(mass, get("ul_exp_m2"), get("ul_exp_p2"), color="#FFDF7F",
                    label=r"expected $\pm 2\sigma$", step="mid")  # fmt: skip
    ax.fill_between(mass, get("ul_exp_m1"), get("ul_exp_p1"), color="#85D1FB",
                    label=r"expected $\pm 1\sigma$", step="mid")  # fmt: skip
    ax.plot(mass, get("ul_exp"), "k--", linewidth=1, label="expected")
    ax.plot(mass, get("ul_obs"), "k-", linewidth=1, label="observed")
    _shade_vetoes(ax, vetoed)
    ax.set_xlabel(r"$m_a$ [GeV]")
    ax.set_ylabel("95% CL upper limit on $N_{sig}$")
    ax.set_xlim(mass.min(), mass.max())
    ax.set_ylim(0, None)
    ax.legend(fontsize=16)
    path = _atomic_savefig(fig, Path(path), dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_local_significance(rows, vetoed, global_significance, path):
    """Local significance versus mass, with the largest excess and its global significance."""
    plt = _pyplot()
    mass = np.array([r["mass"] for r in rows])
    z = np.array([r["z_local"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(12, 6))
    ax.plot(mass, z, "k-", linewidth=1)
    _shade_vetoes(ax, vetoed)
    for level in (1, 2, 3):
        ax.axhline(level, color="C3", linestyle=":", linewidth=1)
    if np.isfinite(global_significance.get("z_local_max", np.nan)):
        ax.annotate(
            f"$Z_{{local}}$ = {global_significance['z_local_max']:.2f} at {global_significance['mass']:.3f} GeV\n"
            f"$Z_{{global}}$ = {global_significance['z_global']:.2f}",
            xy=(global_significance["mass"], global_significance["z_local_max"]),
            xytext=(0.55, 0.85), textcoords="axes fraction", fontsize=14, arrowprops={"arrowstyle": "->"},
        )  # fmt: skip
    ax.set_xlabel(r"$m_a$ [GeV]")
    ax.set_ylabel("local significance Z")
    ax.set_xlim(mass.min(), mass.max())
    ax.set_ylim(0, max(4.0, np.nanmax(z) * 1.3 if np.any(np.isfinite(z)) else 4.0))
    path = _atomic_savefig(fig, Path(path), dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_hypothesis_fit(data, fit, path, *, bins: int = 80, title: str = "") -> Path:
    """Candidates in the window of one mass hypothesis with the fitted signal and background.

    Parameters
    ----------
    data : bumphunt.hypothesis.HypothesisData
        Unbinned candidates of the window (weights 1).
    fit : bumphunt.hypothesis.HypothesisFit
        Fit of (n_sig, n_bkg, c_1..c_k).
    """
    from .hypothesis import chebyshev_basis, chebyshev_means

    plt = _pyplot()
    shape = data.shape
    x = 0.5 * (data.basis[:, 0] + 1.0) * (shape.upper - shape.lower) + shape.lower
    counts, edges = np.histogram(x, bins=bins, range=(shape.lower, shape.upper), weights=data.weights)
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    fine = np.linspace(shape.lower, shape.upper, 600)
    scaled = 2.0 * (fine - shape.lower) / (shape.upper - shape.lower) - 1.0
    coefficients = fit.values[2:]
    background = (1.0 + chebyshev_basis(scaled, len(coefficients)) @ coefficients) / (
        (shape.upper - shape.lower) * (1.0 + chebyshev_means(len(coefficients)) @ coefficients)
    )
    n_sig, n_bkg = fit.values[0], fit.values[1]
    fig, (ax, ax_pull) = plt.subplots(2, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.errorbar(centres, counts, yerr=np.sqrt(counts), fmt="ko", markersize=3, label="data")
    ax.plot(fine, width * (n_bkg * background + n_sig * shape.pdf(fine)), color="C0", label="signal + background")
    ax.plot(fine, width * n_bkg * background, "--", color="C1", label="background")
    ax.set_ylabel(f"candidates / {1e3 * width:.1f} MeV")
    ax.set_title(title, fontsize=16)
    ax.legend(fontsize=14)
    expected_bins = width * (n_bkg * np.interp(centres, fine, background) + n_sig * shape.pdf(centres))
    ax_pull.step(centres, (counts - expected_bins) / np.sqrt(np.maximum(expected_bins, 1e-9)), where="mid")
    ax_pull.axhline(0, color="k", linewidth=1)
    ax_pull.set_ylim(-4, 4)
    ax_pull.set_ylabel("pull")
    ax_pull.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
    path = _atomic_savefig(fig, Path(path), dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
