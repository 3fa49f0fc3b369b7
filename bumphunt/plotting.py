"""Figures of the analysis stages, drawn with matplotlib and mplhep.

Functions that draw one panel take an optional matplotlib ``Axes`` and return the Axes
they drew on (the mplhep convention); :func:`save_figure` writes a figure, atomically.
Figures bumphunt makes itself use the mplhep CMS style. matplotlib is imported only when
something is drawn.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .stats.likelihood import background_density

#: Colours of the expected-limit bands, as the field draws them.
BAND_COLOURS = {1: "#00cc00", 2: "#ffcc00"}

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


@contextmanager
def _style(apply: bool):
    """The mplhep (CMS) style while bumphunt draws (and writes) a figure of its own; a user's
    Axes keeps whatever style its figure was made with."""
    if not apply:
        yield
        return
    import matplotlib.pyplot as plt
    import mplhep

    with plt.style.context(mplhep.style.CMS):
        yield


def _subplots(*args, **kwargs):
    """``plt.subplots`` for a figure of bumphunt's own: :func:`save_figure` draws it in the
    style it was made in (mathtext fonts are looked up when the figure is drawn)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*args, **kwargs)
    fig.bumphunt_style = True
    return fig, axes


def _new_axes(ax, figsize):
    if ax is not None:
        return ax
    _, ax = _subplots(figsize=figsize)
    return ax


def save_figure(artist, path: str | Path, *, dpi: int = 80) -> Path:
    """Write the figure of ``artist`` (an Axes or a Figure) to ``path`` atomically, then close it."""
    import matplotlib.pyplot as plt

    fig = artist if hasattr(artist, "savefig") else artist.figure
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with _style(getattr(fig, "bumphunt_style", False)):
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return path


def plot_shape_parameters(model):
    """Every shape parameter and the resolution versus mass: fitted points, held-out points,
    interpolation; masses left out of the interpolation are marked by vertical lines.

    Returns the matplotlib Figure (one panel per parameter; :func:`save_figure` writes it).
    """
    with _style(True):
        return _draw_shape_parameters(model)


def _draw_shape_parameters(model):

    names = [*model.splines, "resolution"]
    columns = 3
    rows = -(-len(names) // columns)
    fig, axes = _subplots(rows, columns, figsize=(8 * columns, 5.5 * rows), squeeze=False)
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
    return fig


def plot_resolution(model, *, ax=None, points: int = 300):
    """The mass resolution sigma(m) of a signal model versus m_a, in MeV: the interpolated curve
    the scan steps and windows with (:meth:`~bumphunt.models.ShapeModel.resolution`) and the
    resolution of each per-mass fit (held-out masses apart).

    Parameters
    ----------
    model : bumphunt.models.ShapeModel
    ax : matplotlib Axes, optional
    points : int
        Masses the curve is evaluated at, across the model's mass range.
    """
    low, high = model.mass_range
    grid = np.linspace(low, high, points)
    held = {round(m, 9) for m in model.held_out}
    with _style(ax is None):
        ax = _new_axes(ax, (12, 7))
        ax.plot(
            grid, 1e3 * np.asarray(model.resolution(grid)), color="C0", linewidth=2, label="interpolation", zorder=3
        )
        for label, held_out, style in (("fitted", False, dict(color="k", marker="o")),
                                       ("held out", True, dict(color="C3", marker="s"))):  # fmt: skip
            fits = [f for f in model.fits if f.ok and np.isfinite(f.values.get("resolution", np.nan))
                    and (round(f.mass, 9) in held) == held_out]  # fmt: skip
            if fits:
                mass = np.array([f.mass for f in fits])
                value = np.array([f.values["resolution"] for f in fits])
                error = np.nan_to_num(np.array([f.errors.get("resolution", np.nan) for f in fits], dtype=float))
                ax.errorbar(mass, 1e3 * value, yerr=1e3 * error, linestyle="none", markersize=4, label=label, **style)
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(PARAMETER_LABELS["resolution"])
        ax.set_xlim(low, high)
        ax.set_ylim(0, None)
        ax.legend(fontsize=16)
    return ax


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
    path = Path(path)
    fits = [f for f in model.fits if masses is None or any(abs(f.mass - m) < 1e-6 for m in np.atleast_1d(masses))]
    if path.suffix != ".pdf" and len(fits) != 1:
        raise ValueError(f"{path.name}: one mass per image; write a .pdf for {len(fits)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    with _style(True):
        _write_shape_fits(model, grouped, fits, path, tmp, bins)
    return path


def _write_shape_fits(model, grouped, fits, path, tmp, bins):
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.collections import LineCollection

    n_l, n_r = model.settings["n_l"], model.settings["n_r"]
    held = {round(m, 9) for m in model.held_out}
    fig, (ax, ax_pull) = _subplots(2, 1, figsize=(9, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
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
            ax.set_ylim(0.5, 10.0)  # a log axis needs positive limits even with nothing drawn
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


def _shade_vetoes(ax, vetoed):
    for low, high in vetoed.values():
        ax.axvspan(low, high, color="grey", alpha=0.3, linewidth=0)


def _broken_at_vetoes(mass: np.ndarray, vetoed: dict, *columns: np.ndarray):
    """Mass and columns with a NaN point inserted in every vetoed gap, so that lines and bands
    stop at a veto and start again after it."""
    ranges = list(vetoed.values())
    gaps = [i + 1 for i in range(len(mass) - 1) if any(mass[i] < low and mass[i + 1] > high for low, high in ranges)]
    mass = np.insert(mass.astype(float), gaps, [0.5 * (mass[i - 1] + mass[i]) for i in gaps])
    return mass, *(np.insert(np.asarray(c, dtype=float), gaps, np.nan) for c in columns)


#: The columns of a Brazil plot: expected -2, -1, median, +1, +2 sigma, observed.
BRAZIL_COLUMNS = ("ul_exp_m2", "ul_exp_m1", "ul_exp", "ul_exp_p1", "ul_exp_p2", "ul_obs")


def plot_brazil(result, *, ax=None, ylabel: str = "95% CL upper limit on $N_{sig}$", names=BRAZIL_COLUMNS,
                log: bool = False):  # fmt: skip
    """Observed upper limit versus mass with the expected +-1 sigma (green) and +-2 sigma
    (yellow) bands; lines and bands stop across the vetoed meson regions.

    Parameters
    ----------
    result : ScanResult
        Or any object with the columns ``names`` and ``vetoed``.
    ax : matplotlib Axes, optional
    names : six column names
        Expected -2, -1, median, +1, +2 sigma and observed.
    log : bool
        Logarithmic y axis.
    """
    columns = (result[name] for name in names)
    mass, m2, m1, median, p1, p2, observed = _broken_at_vetoes(result["mass"], result.vetoed, *columns)
    with _style(ax is None):
        ax = _new_axes(ax, (12, 7))
        _draw_bands(ax, mass, m2, m1, median, p1, p2, observed, "observed")
        _shade_vetoes(ax, result.vetoed)
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(ylabel)
        ax.set_xlim(np.nanmin(mass), np.nanmax(mass))
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, None)
        ax.legend(fontsize=16)
    return ax


def _draw_bands(ax, mass, m2, m1, median, p1, p2, observed, observed_label: str) -> None:
    """The expected +-2 sigma (yellow) and +-1 sigma (green) bands, the median and the observed line."""
    ax.fill_between(mass, m2, p2, color=BAND_COLOURS[2], label=r"expected $\pm 2\sigma$", linewidth=0)
    ax.fill_between(mass, m1, p1, color=BAND_COLOURS[1], label=r"expected $\pm 1\sigma$", linewidth=0)
    ax.plot(mass, median, "k--", linewidth=1, label="expected")
    ax.plot(mass, observed, "k-", linewidth=1, label=observed_label)


def plot_cross_section_limits(result, *, ax=None):
    """95% CL upper limits on sigma(e+e- -> gamma a) with the expected bands (an
    :class:`~bumphunt.exclusion.ExclusionResult`), on a logarithmic axis."""
    names = ("xsec_exp_m2_pb", "xsec_exp_m1_pb", "xsec_exp_pb", "xsec_exp_p1_pb", "xsec_exp_p2_pb", "xsec_obs_pb")
    return plot_brazil(result, ax=ax, names=names, log=True,
                       ylabel=r"95% CL upper limit on $\sigma(e^+e^- \to \gamma a)$ [pb]")  # fmt: skip


def plot_coupling_exclusion(result, published=None, *, ax=None):
    """The excluded g_agg versus m_a on log axes: observed (shaded above), expected with its
    +-1/2 sigma bands, and a published curve ``(mass, g)`` for comparison (Belle II 2020)."""
    names = ("g_exp_m2", "g_exp_m1", "g_exp", "g_exp_p1", "g_exp_p2", "g_obs")
    mass, m2, m1, median, p1, p2, observed = _broken_at_vetoes(result["mass"], result.vetoed,
                                                               *(result[n] for n in names))  # fmt: skip
    with _style(ax is None):
        ax = _new_axes(ax, (12, 8))
        _draw_bands(ax, mass, m2, m1, median, p1, p2, observed, "observed (this analysis)")
        limits = np.r_[m2, p2, observed]
        limits = limits[np.isfinite(limits)]
        top, bottom = (limits.max() * 5, limits.min() / 3) if len(limits) else (1.0, 1e-4)
        ax.fill_between(mass, observed, top, color="C0", alpha=0.12, linewidth=0)
        if published is not None:
            ax.plot(published[0], published[1], color="C3", linewidth=1.5, label="Belle II 2020 (published)")
        _shade_vetoes(ax, result.vetoed)
        _log_mass_axis(ax)
        ax.set_yscale("log")
        ax.set_ylabel(r"$g_{a\gamma\gamma}$ [GeV$^{-1}$]")
        ax.set_xlim(np.nanmin(mass), np.nanmax(mass))
        ax.set_ylim(bottom, top)
        ax.legend(fontsize=14, loc="upper right")
    return ax


def _log_mass_axis(ax):
    """A logarithmic m_a axis labelled at round masses."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.5, 1, 2, 5, 10]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"$m_a$ [GeV]")


def plot_efficiency_map(model, *, ax=None, n_ctau: int = 120):
    """The efficiency eps(m, c tau) of a signal model with a lifetime map, where the
    reweighting measured it (blank beyond the simulated reach)."""
    lifetime = model.lifetime
    masses = lifetime.masses
    low = np.min(lifetime.ctau_generated[lifetime.ctau_generated > 0]) * lifetime.relative_lifetimes[0]
    high = np.max(lifetime.ctau_generated) * lifetime.relative_lifetimes[-1]
    ctau = np.geomspace(low, high, n_ctau)
    values = np.array([model.efficiency(m, ctau) for m in masses]).T
    for i in range(len(masses)):  # blank where the map only extrapolates to shorter lifetimes
        values[ctau < lifetime.ctau_generated[i] * lifetime.relative_lifetimes[0], i] = np.nan
    with _style(ax is None):
        ax = _new_axes(ax, (12, 8))
        mesh = ax.pcolormesh(masses, ctau, np.ma.masked_invalid(values), shading="nearest", cmap="viridis")
        ax.figure.colorbar(mesh, ax=ax, label="efficiency")
        ax.plot(masses, lifetime.ctau_generated, "w--", linewidth=1, label=r"generated $c\tau$")
        _log_mass_axis(ax)
        ax.set_yscale("log")
        ax.set_ylabel(r"$c\tau$ [cm]")
        ax.legend(fontsize=14, loc="upper right")
    return ax


def plot_local_significance(result, *, ax=None):
    """Local significance versus mass, with the largest excess and its global significance."""
    mass, z = _broken_at_vetoes(result["mass"], result.vetoed, result["z_local"])
    best = result.global_significance
    with _style(ax is None):
        ax = _new_axes(ax, (12, 6))
        ax.plot(mass, z, "k-", linewidth=1)
        _shade_vetoes(ax, result.vetoed)
        for level in (1, 2, 3):
            ax.axhline(level, color="C3", linestyle=":", linewidth=1)
        if np.isfinite(best.z_local_max):
            ax.annotate(
                f"$Z_{{local}}$ = {best.z_local_max:.2f} at {best.mass:.3f} GeV\n$Z_{{global}}$ = {best.z_global:.2f}",
                xy=(best.mass, best.z_local_max), xytext=(0.55, 0.85), textcoords="axes fraction", fontsize=14,
                arrowprops={"arrowstyle": "->"},
            )  # fmt: skip
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel("local significance Z")
        ax.set_xlim(np.nanmin(mass), np.nanmax(mass))
        ax.set_ylim(0, max(4.0, np.nanmax(z) * 1.3 if np.any(np.isfinite(z)) else 4.0))
    return ax


def plot_systematic_impacts(impacts, *, ax=None, limit: str = "ul_exp"):
    """Relative impact of each systematic source on the median expected (or, with ``limit`` =
    "ul_obs", observed) limit versus mass: UL(all) / UL(without the source) - 1, and of all
    together, UL(all) / UL(statistics only) - 1 (a :class:`bumphunt.scan.impacts.ImpactTable`)."""
    mass = np.array([row["mass"] for row in impacts.rows])
    with _style(ax is None):
        ax = _new_axes(ax, (12, 6))
        ax.plot(mass, 100 * impacts.relative_impact(None, limit), "k-", linewidth=2, label="all sources")
        for index, source in enumerate(impacts.sources):
            ax.plot(mass, 100 * impacts.relative_impact(source, limit), "o-", color=f"C{index}", markersize=3,
                    linewidth=1, label=source)  # fmt: skip
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_xlabel(r"$m_a$ [GeV]")
        what = "median expected" if limit == "ul_exp" else "observed"
        ax.set_ylabel(f"{what} limit: change by the source [%]")
        ax.legend(fontsize=12, ncol=2)
    return ax


def plot_hypothesis_fit(data, fit, *, ax=None, bins: int = 80, title: str = "", pulls: bool = True):
    """Candidates in the window of one mass hypothesis with the fitted signal and background.

    Parameters
    ----------
    data : bumphunt.stats.HypothesisData
        Candidates (or bin centres with counts) of the window.
    fit : bumphunt.stats.HypothesisFit
        Fit of (n_sig, n_bkg, c_1..c_k).
    ax : matplotlib Axes, optional
        Draw the fit there (no pull panel); by default a new figure with pulls below.

    Returns
    -------
    The Axes of the fit.
    """
    import hist
    import mplhep

    shape = data.shape
    axis = hist.axis.Regular(bins, shape.lower, shape.upper, name="m_gg", label=r"$M_{\gamma\gamma}$ [GeV]")
    histogram = hist.Hist(axis, storage=hist.storage.Weight())
    counts = np.histogram(data.x, bins=axis.edges, weights=data.weights)[0]
    histogram.view().value, histogram.view().variance = counts, counts  # Poisson errors of what is fitted
    centres, width = axis.centers, axis.widths[0]
    fine = np.linspace(shape.lower, shape.upper, 600)
    order, nuisances = data.order, data.nuisances
    thetas = fit.values[2 + order :]
    n_sig, n_bkg = fit.values[0] * nuisances.signal_factor(thetas), fit.values[1]
    background = background_density(fine, fit.values[2 : 2 + order], shape.lower, shape.upper)
    signal = nuisances.signal_density(fine, shape.pdf(fine), thetas)
    with _style(ax is None):
        ax_pull = None
        if ax is None and pulls:
            _, (ax, ax_pull) = _subplots(2, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax = _new_axes(ax, (10, 6))
        mplhep.histplot(histogram, ax=ax, histtype="errorbar", color="k", label="data")
        ax.plot(fine, width * (n_bkg * background + n_sig * signal), color="C0", label="signal + background")
        ax.plot(fine, width * n_bkg * background, "--", color="C1", label="background")
        ax.set_ylabel(f"candidates / {1e3 * width:.1f} MeV")
        ax.set_title(title, fontsize=16)
        ax.legend(fontsize=14)
        if ax_pull is None:
            ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
            return ax
        ax.set_xlabel("")
        expected = width * (n_bkg * np.interp(centres, fine, background) + n_sig * shape.pdf(centres))
        ax_pull.step(centres, (counts - expected) / np.sqrt(np.maximum(expected, 1e-9)), where="mid")
        ax_pull.axhline(0, color="k", linewidth=1)
        ax_pull.set_ylim(-4, 4)
        ax_pull.set_ylabel("pull")
        ax_pull.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
    return ax


def plot_composition(composition, *, ax=None, log: bool = True):
    """The M_gg spectrum of the background, stacked by process (expected candidates per bin).

    Parameters
    ----------
    composition : bumphunt.simulation.composition.Composition
    ax : matplotlib Axes, optional
    log : bool
        Logarithmic y axis (the processes differ by orders of magnitude).
    """
    import mplhep

    order = sorted(composition.histograms, key=lambda name: composition.histograms[name].sum().value)
    with _style(ax is None):
        ax = _new_axes(ax, (12, 7))
        mplhep.histplot(
            [composition.histograms[name] for name in order], ax=ax, stack=True, histtype="fill", label=order
        )
        width = composition.histograms[order[0]].axes[0].widths[0] if order else 0.0
        ax.set_ylabel(f"expected candidates / {1e3 * width:.0f} MeV")
        ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=14, reverse=True)
    return ax


#: Curves of the selection's figure-of-merit plot: table column -> legend label.
FOM_CURVES = {
    "sigma_min_preselection": "pre-selection alone",
    "sigma_min_bce_best_cut": "BCE network, best cut per mass",
    "sigma_min_bdt_best_cut": "BDT per mass region, best cut per region",
    "sigma_min_punzi": "Punzi-net, one cut",
}


def plot_fom(table: dict):
    """sigma_min versus mass for the Punzi-net's single cut and the baselines (top), and each
    relative to the BCE network's best cut per mass (bottom); held-out masses as open markers.

    Parameters
    ----------
    table : dict
        The selection's figure-of-merit table (``select/fom.json``).
    """
    rows = table["masses"]
    mass = np.array([r["mass"] for r in rows])
    held = np.array([r["held_out"] for r in rows])
    curves = {c: np.array([r.get(c, np.nan) for r in rows], dtype=float) for c in FOM_CURVES}
    curves = {c: v for c, v in curves.items() if np.isfinite(v).any()}
    reference = curves.get("sigma_min_bce_best_cut", curves["sigma_min_preselection"])
    with _style(True):
        fig, (top, bottom) = _subplots(2, 1, figsize=(12, 10), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        for i, (column, values) in enumerate(curves.items()):
            colour = f"C{i}"
            top.plot(mass, values, "-", color=colour, linewidth=1.5, label=FOM_CURVES[column])
            bottom.plot(mass, values / reference, "-", color=colour, linewidth=1.5)
            top.plot(mass[held], values[held], "o", mfc="none", color=colour, markersize=7)
            bottom.plot(mass[held], (values / reference)[held], "o", mfc="none", color=colour, markersize=7)
        top.plot([], [], "o", mfc="none", color="k", label="held-out masses")
        top.set_yscale("log")
        top.set_ylabel(r"$\sigma_{min}$ [pb]")
        wp = table.get("working_point")
        top.legend(fontsize=13, title=None if wp is None else f"working point {wp:.3f}", title_fontsize=13)
        bottom.axhline(1.0, color="k", linewidth=0.8)
        bottom.set_ylabel("/ BCE best cut" if "sigma_min_bce_best_cut" in curves else "/ pre-selection")
        bottom.set_xlabel(r"$m_a$ [GeV]")
        bottom.set_ylim(0.5, 1.5 if "sigma_min_bce_best_cut" in curves else 1.1)
    return fig


def plot_training(history: dict):
    """Loss per epoch of each training stage (training and validation), log scale for Punzi.

    Parameters
    ----------
    history : mapping of stage name -> TrainingHistory
    """
    stages = list(history)
    with _style(True):
        fig, axes = _subplots(1, len(stages), figsize=(7 * len(stages), 6), squeeze=False)
        for ax, stage in zip(axes[0], stages):
            record = history[stage]
            epochs = np.arange(1, len(record.loss) + 1)
            ax.plot(epochs, record.loss, "-", label="training")
            if len(record.val_loss):
                ax.plot(epochs, record.val_loss, "-", label="validation")
            if record.best_epoch > 0:
                ax.axvline(record.best_epoch, color="k", linestyle=":", linewidth=1, label="best")
            ax.set_xlabel("epoch")
            ax.set_ylabel("binary cross-entropy" if stage == "bce" else r"mean $\sigma_{min}$ [pb]")
            ax.set_title(stage, fontsize=16)
            ax.legend(fontsize=13)
    return fig


def plot_score_distributions(scores: dict, working_point: float | None = None, *, bins: int = 50):
    """Network output per sample: backgrounds in expected events (stacked), the signal
    normalised to the background total for its shape; the working point as a line.

    Parameters
    ----------
    scores : dict sample -> (scores, weights or None)
        ``weights`` None for the signal.
    """
    import mplhep

    edges = np.linspace(0.0, 1.0, bins + 1)
    backgrounds = {s: np.histogram(v, edges, weights=w)[0] for s, (v, w) in scores.items() if w is not None}
    order = sorted(backgrounds, key=lambda s: backgrounds[s].sum())
    with _style(True):
        fig, ax = _subplots(figsize=(12, 7))
        if order:
            import matplotlib

            colours = [matplotlib.colormaps["tab10" if len(order) <= 10 else "tab20"](i) for i in range(len(order))]
            mplhep.histplot([backgrounds[s] for s in order], edges, ax=ax, stack=True, histtype="fill", label=order,
                            color=colours)  # fmt: skip
        total = sum(h.sum() for h in backgrounds.values())
        for sample, (values, weights) in scores.items():
            if weights is None and len(values):
                counts = np.histogram(values, edges)[0].astype(float)
                counts *= (total or 1.0) / max(counts.sum(), 1.0)
                mplhep.histplot(counts, edges, ax=ax, color="k", linewidth=2, label=f"{sample} (shape)")
        if working_point is not None:
            ax.axvline(working_point, color="C3", linestyle="--", linewidth=2, label="working point")
        ax.set_yscale("log")
        ax.set_xlabel("Punzi-net output")
        ax.set_ylabel(f"expected events / {1 / bins:.2f}")
        ax.legend(fontsize=12, ncols=2)
    return fig
