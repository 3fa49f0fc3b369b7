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

from ._io import writing
from .errors import BumphuntError
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
    """Write the figure of ``artist`` (an Axes or a Figure) to ``path`` atomically, then close it.

    A full disk, an exceeded quota, a denied permission or a read-only disk raises
    BumphuntError naming ``path`` (:func:`bumphunt._io.write_error`), ``path`` as it was.
    """
    import matplotlib.pyplot as plt

    fig = artist if hasattr(artist, "savefig") else artist.figure
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with writing(path, tmp):
            path.parent.mkdir(parents=True, exist_ok=True)
            with _style(getattr(fig, "bumphunt_style", False)):
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
            os.replace(tmp, path)
    finally:
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


#: What a figure of a table without rows says, centred where the curves would be.
NO_HYPOTHESIS = "no mass hypothesis"


def _no_hypothesis(ax, figsize, ylabel: str):
    """Axes that say the table has no row (a scan range inside a veto) instead of curves."""
    with _style(ax is None):
        ax = _new_axes(ax, figsize)
        ax.text(0.5, 0.5, NO_HYPOTHESIS, transform=ax.transAxes, ha="center", va="center", fontsize=24,
                color="0.3", gid="no-hypothesis")  # fmt: skip
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(ylabel)
    return ax


#: The columns of a Brazil plot: expected -2, -1, median, +1, +2 sigma, observed.
BRAZIL_COLUMNS = ("ul_exp_m2", "ul_exp_m1", "ul_exp", "ul_exp_p1", "ul_exp_p2", "ul_obs")


def plot_brazil(result, *, ax=None, ylabel: str = "95% CL upper limit on $N_{sig}$", names=BRAZIL_COLUMNS,
                log: bool = False):  # fmt: skip
    """Observed upper limit versus mass with the expected +-1 sigma (green) and +-2 sigma
    (yellow) bands; lines and bands stop across the vetoed meson regions. A table without
    rows gives axes that say "no mass hypothesis".

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
    columns = _table_columns(result, names, "plot_brazil")
    if not len(result["mass"]):
        return _no_hypothesis(ax, (12, 7), ylabel)
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


def _table_columns(result, names, figure: str) -> list:
    """The columns ``names`` of a table (what :func:`bumphunt.results.read_table` returns);
    a BumphuntError naming the figure and the columns it lacks for a table of another kind."""
    columns = getattr(result, "columns", None)
    missing = [name for name in names if columns is not None and name not in columns]
    if missing:
        kind = getattr(result, "kind", type(result).__name__)
        raise BumphuntError(f"{figure} draws the column(s) {', '.join(missing)}, which a {kind} table lacks")
    return [result[name] for name in names]


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
    +-1/2 sigma bands, and a published curve ``(mass, g)`` for comparison (Belle II 2020).
    A table without rows gives axes that say "no mass hypothesis"."""
    names = ("g_exp_m2", "g_exp_m1", "g_exp", "g_exp_p1", "g_exp_p2", "g_obs")
    columns = _table_columns(result, names, "plot_coupling_exclusion")
    if not len(result["mass"]):
        return _no_hypothesis(ax, (12, 8), r"$g_{a\gamma\gamma}$ [GeV$^{-1}$]")
    mass, m2, m1, median, p1, p2, observed = _broken_at_vetoes(result["mass"], result.vetoed, *columns)
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
    """Local significance versus mass, with the largest excess and its global significance.
    A table without rows gives axes that say "no mass hypothesis"."""
    (z_local,) = _table_columns(result, ["z_local"], "plot_local_significance")
    if not len(result["mass"]):
        return _no_hypothesis(ax, (12, 6), "local significance Z")
    mass, z = _broken_at_vetoes(result["mass"], result.vetoed, z_local)
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


def _blinded_regions(regions) -> np.ndarray:
    """``regions`` (None, one ``(low, high)`` or a list of them) as an (n, 2) float array."""
    if regions is None:
        return np.empty((0, 2))
    array = np.asarray(regions, dtype=float)
    if array.size == 0:
        return np.empty((0, 2))
    if array.shape == (2,):
        array = array[np.newaxis]
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"blinded region: expected (low, high) or a list of them, got {regions!r}")
    if np.isnan(array).any() or (array[:, 0] > array[:, 1]).any():
        raise ValueError(f"blinded region: each (low, high) needs low <= high, got {regions!r}")
    return array


def blind_mask(values, regions) -> np.ndarray:
    """The values outside every blinded region: the entries that may be looked at.

    Parameters
    ----------
    values : array_like
        One value per entry (e.g. the diphoton mass of each candidate).
    regions : (low, high) or sequence of (low, high) or None
        Blinded intervals, edges included (``low <= value <= high`` is blinded); None or an
        empty list blinds nothing.

    Returns
    -------
    numpy.ndarray of bool
        True where the value lies outside all regions (NaN lies in none), False where it must
        stay hidden. Use it to drop blinded entries before anything is histogrammed or fitted:
        ``data[blind_mask(data, regions)]``; for another variable of the same events, index
        that variable with the mask of the blinded one.
    """
    values = np.asarray(values, dtype=float)
    keep = np.ones(values.shape, dtype=bool)
    for low, high in _blinded_regions(regions):
        keep &= ~((values >= low) & (values <= high))
    return keep


def _masked_bins(edges: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Bins that overlap a blinded region by more than a shared edge (a region of zero width
    inside a bin masks that bin)."""
    masked = np.zeros(len(edges) - 1, dtype=bool)
    for low, high in regions:
        masked |= (edges[:-1] < high) & (edges[1:] > low)
    return masked


def _poisson_interval(counts: np.ndarray, coverage: float = 0.682689492137086) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of the central (Garwood) Poisson interval of each count."""
    from scipy.stats import chi2

    alpha = 1.0 - coverage
    counts = np.asarray(counts, dtype=float)
    low = np.where(counts > 0, chi2.ppf(alpha / 2, 2 * counts) / 2, 0.0)
    high = chi2.ppf(1 - alpha / 2, 2 * (counts + 1)) / 2
    return np.nan_to_num(low), high


class DataMCHistograms:
    """The histograms of a data/MC comparison, as :func:`plot_data_mc` draws them.

    Attributes
    ----------
    edges : numpy.ndarray
        Bin edges.
    processes : tuple of str
        MC processes in stacking order, bottom first (ascending expected events).
    mc : dict of str -> numpy.ndarray
        Expected events per bin of each process (sum of weights).
    mc_variance : dict of str -> numpy.ndarray
        Their variance (sum of squared weights).
    mc_total : numpy.ndarray
        Expected events per bin of all processes.
    mc_error : numpy.ndarray
        The MC statistical uncertainty of ``mc_total``, sqrt(sum of w^2).
    masked : numpy.ndarray of bool
        Bins that overlap a blinded region: no data there (only while blinded).
    data : numpy.ndarray or None
        Data counts per bin, NaN in masked bins; None without data.
    blinded : bool
    regions : numpy.ndarray
        Blinded regions, (n, 2).
    """

    def __init__(self, edges, processes, mc, mc_variance, masked, data, blinded, regions):
        self.edges = edges
        self.processes = tuple(processes)
        self.mc = mc
        self.mc_variance = mc_variance
        self.masked = masked
        self.data = data
        self.blinded = blinded
        self.regions = regions
        self.mc_total = sum((mc[name] for name in self.processes), np.zeros(len(edges) - 1))
        self.mc_error = np.sqrt(sum((mc_variance[name] for name in self.processes), np.zeros(len(edges) - 1)))

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def shown(self) -> np.ndarray:
        """Bins with a data point: data given and the bin not masked."""
        if self.data is None:
            return np.zeros(len(self.edges) - 1, dtype=bool)
        return ~self.masked

    def data_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper Poisson (Garwood, 68.3%) errors of the data counts (NaN where masked)."""
        counts = np.where(self.shown, np.nan_to_num(self.data) if self.data is not None else 0.0, 0.0)
        low, high = _poisson_interval(counts)
        nan = np.where(self.shown, 0.0, np.nan)
        return counts - low + nan, high - counts + nan

    @property
    def ratio(self) -> np.ndarray:
        """Data / MC per bin; NaN where masked, without data, or where the MC expects nothing."""
        ok = self.shown & (self.mc_total > 0)
        data = np.nan_to_num(self.data) if self.data is not None else np.zeros_like(self.mc_total)
        return np.where(ok, data / np.where(ok, self.mc_total, 1.0), np.nan)

    def ratio_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper errors of :attr:`ratio` (the data's Poisson errors over the MC)."""
        low, high = self.data_errors()
        ok = self.shown & (self.mc_total > 0)
        total = np.where(ok, self.mc_total, np.nan)
        return low / total, high / total


def data_mc_histograms(mc, data=None, *, bins, range=None, blinded_region=None, blinded: bool = True):
    """Histogram MC processes and data for :func:`plot_data_mc`, masking the blinded region.

    Parameters
    ----------
    mc : mapping of str -> (values, weights)
        Per background process, the variable's values and each entry's weight in expected events
        at the data's luminosity (weights None: one event each).
    data : array_like, optional
        The variable's values in data (one per entry, unweighted).
    bins : int or array_like
        Number of bins (with ``range``) or the bin edges.
    range : (float, float), optional
        Histogram range with an integer ``bins``; by default the MC's smallest and largest value
        (never the data's).
    blinded_region : (low, high) or list of them, optional
        The region data may not be looked at in (edges included).
    blinded : bool
        True (the default) until unblinding: data values inside ``blinded_region`` and inside
        every bin overlapping it are dropped before they are histogrammed; the data counts of
        those bins are NaN. With data and blinded, ``blinded_region`` must be given: an empty
        list states that the data were blinded upstream (e.g. the events were restricted to the
        mass sidebands with :func:`blind_mask` before another variable is plotted).

    Returns
    -------
    DataMCHistograms
    """
    if not mc:
        raise ValueError("data/MC comparison: no MC process given")
    if blinded and data is not None and blinded_region is None:
        raise ValueError(
            "data/MC comparison is blinded: give blinded_region (an empty list if the data were already "
            "blinded, e.g. restricted to the sidebands), or blinded=False after unblinding"
        )
    regions = _blinded_regions(blinded_region)
    samples = {}
    for name, entry in mc.items():
        values, weights = entry
        values = np.asarray(values, dtype=float).ravel()
        weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float).ravel()
        if weights.shape != values.shape:
            raise ValueError(f"MC process {name!r}: {len(values)} values but {len(weights)} weights")
        samples[str(name)] = (values, weights)
    if np.ndim(bins) == 0:
        if range is None:
            finite = np.concatenate([v[np.isfinite(v)] for v, _ in samples.values()])
            if not len(finite):
                raise ValueError("data/MC comparison: no finite MC value to set the range; give range=")
            low, high = finite.min(), finite.max()
            range = (low, high) if high > low else (low - 0.5, low + 0.5)
        edges = np.linspace(float(range[0]), float(range[1]), int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("data/MC comparison: bins must be a positive number or increasing edges")
    counts = {name: np.histogram(v, edges, weights=w)[0] for name, (v, w) in samples.items()}
    variance = {name: np.histogram(v, edges, weights=w**2)[0] for name, (v, w) in samples.items()}
    order = sorted(counts, key=lambda name: (counts[name].sum(), name))
    masked = _masked_bins(edges, regions) if blinded else np.zeros(len(edges) - 1, dtype=bool)
    counted = None
    if data is not None:
        values = np.asarray(data, dtype=float).ravel()
        if blinded:
            # Mask first: values in a blinded region or in a bin overlapping one never reach a histogram.
            spans = np.column_stack([edges[:-1][masked], edges[1:][masked]])
            values = values[blind_mask(values, regions) & blind_mask(values, spans)]
        counted = np.histogram(values, edges)[0].astype(float)
        counted[masked] = np.nan
    return DataMCHistograms(edges, order, counts, variance, masked, counted, blinded, regions)


def plot_data_mc(
    mc,
    data=None,
    *,
    bins,
    range=None,
    label: str = "",
    unit: str = "GeV",
    blinded_region=None,
    blinded: bool = True,
    logy: bool = False,
    ratio_range: tuple[float, float] = (0.5, 1.5),
    ax=None,
    title: str = "",
):
    """Data compared with the stacked MC of each background process, with a data/MC ratio
    panel; while blinded, no data in (the bins of) the blinded region and "BLINDED" written
    across the figure.

    Parameters
    ----------
    mc : mapping of str -> (values, weights)
        Per background process, the variable's values and weights in expected events at the
        data's luminosity. Stacked by expected events, the smallest process at the bottom;
        the MC statistical uncertainty, sqrt(sum of w^2), is the hatched band.
    data : array_like, optional
        The variable's values in data, drawn as black points with Poisson (Garwood) errors.
        None draws the MC alone.
    bins, range, blinded_region, blinded
        As for :func:`data_mc_histograms`, which makes the histograms drawn (call it to read
        them). While blinded, the bins overlapping ``blinded_region`` are shaded grey
        ("blinded") and hold no data point or ratio point.
    label : str
        The variable, for the x axis (e.g. ``r"$M_{\\gamma\\gamma}$"``).
    unit : str
        Its unit ("" for none): the x axis reads "label [unit]", the y axis "events / width unit".
    logy : bool
        Logarithmic y axis of the upper panel.
    ratio_range : (float, float)
        y range of the ratio panel.
    ax : matplotlib Axes or (Axes, Axes), optional
        Upper and ratio panels to draw on; a single Axes draws without the ratio panel. By
        default a new figure with both.
    title : str
        Title of the upper panel.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (its axes: upper panel, then ratio panel); :func:`save_figure` writes it
        atomically.
    """
    histograms = data_mc_histograms(mc, data, bins=bins, range=range, blinded_region=blinded_region,
                                    blinded=blinded)  # fmt: skip
    with _style(ax is None):
        if ax is None:
            fig, (top, bottom) = _subplots(2, 1, figsize=(10, 9), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06})  # fmt: skip
        elif np.ndim(ax) == 0:
            top, bottom = ax, None
            fig = top.figure
        else:
            top, bottom = ax
            fig = top.figure
        _draw_data_mc(top, bottom, histograms, label=label, unit=unit, logy=logy, ratio_range=ratio_range,
                      title=title)  # fmt: skip
    return fig


def _draw_data_mc(top, bottom, h: DataMCHistograms, *, label, unit, logy, ratio_range, title) -> None:
    import matplotlib
    import mplhep

    edges, total, error = h.edges, h.mc_total, h.mc_error
    colours = matplotlib.colormaps["tab10" if len(h.processes) <= 10 else "tab20"]
    mplhep.histplot([h.mc[name] for name in h.processes], edges, ax=top, stack=True, histtype="fill",
                    label=list(h.processes), color=[colours(i) for i in np.arange(len(h.processes))])  # fmt: skip
    band = dict(hatch="////", facecolor="none", edgecolor="0.35", linewidth=0, fill=False)
    top.stairs(total + error, edges, baseline=total - error, label="MC stat. unc.", gid="mc_uncertainty", **band)
    shown = h.shown
    if shown.any():
        counts = h.data[shown]
        low, high = h.data_errors()
        top.errorbar(h.centres[shown], counts, yerr=[low[shown], high[shown]], fmt="o", color="k", markersize=5,
                     linewidth=1.2, label="data", gid="data", zorder=5)  # fmt: skip
    runs = _runs(h.masked)
    for number, (first, last) in enumerate(runs):
        for axis in (top, bottom):
            if axis is not None:
                axis.axvspan(edges[first], edges[last + 1], color="0.75", alpha=0.6, linewidth=0, zorder=4,
                             label="blinded" if number == 0 and axis is top else None, gid="blinded")  # fmt: skip
    if h.blinded:
        top.text(0.5, 0.55, "BLINDED", transform=top.transAxes, fontsize=64, fontweight="bold", color="0.35",
                 alpha=0.35, rotation=20, ha="center", va="center", zorder=6, gid="blinded_label")  # fmt: skip

    peak = np.nanmax(np.r_[total + error, h.data[shown] + h.data_errors()[1][shown] if shown.any() else []])
    if logy:
        positive = np.concatenate([h.mc[name][h.mc[name] > 0] for name in h.processes])
        floor = positive.min() / 2 if len(positive) else 0.1
        top.set_yscale("log")
        top.set_ylim(floor, max(peak, floor) * (max(peak, floor) / floor) ** 0.4)
    else:
        top.set_ylim(0, 1.45 * peak if peak > 0 else 1.0)
    widths = np.diff(edges)
    per_bin = f"{widths[0]:.3g} {unit}".strip() if np.allclose(widths, widths[0]) else "bin"
    top.set_ylabel(f"events / {per_bin}")
    top.set_title(title, fontsize=16)
    handles, labels = top.get_legend_handles_labels()
    order = [labels.index(x) for x in ("data", *reversed(h.processes), "MC stat. unc.", "blinded") if x in labels]
    top.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=13, loc="upper right",
               ncols=2 if len(order) > 5 else 1)  # fmt: skip
    top.set_xlim(edges[0], edges[-1])
    xlabel = f"{label} [{unit}]" if unit else label
    if bottom is None:
        top.set_xlabel(xlabel)
        return
    top.set_xlabel("")
    relative = np.where(total > 0, error / np.where(total > 0, total, 1.0), np.nan)
    bottom.stairs(1 + relative, edges, baseline=1 - relative, gid="mc_uncertainty", **band)
    bottom.axhline(1.0, color="k", linewidth=1)
    if shown.any():
        ratio = h.ratio
        low, high = h.ratio_errors()
        good = np.isfinite(ratio)
        bottom.errorbar(h.centres[good], ratio[good], yerr=[low[good], high[good]], fmt="o", color="k",
                        markersize=4, linewidth=1.2, gid="ratio", zorder=5)  # fmt: skip
    bottom.set_ylim(*ratio_range)
    bottom.set_ylabel("data / MC")
    bottom.set_xlabel(xlabel)
    bottom.set_xlim(edges[0], edges[-1])


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of consecutive True flags."""
    padded = np.r_[False, np.asarray(flags, dtype=bool), False].astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(change[::2], change[1::2])]


def mark_blinded(figure_or_axes):
    """Write BLINDED across every axes of a figure (or of the figure of ``figure_or_axes``): a
    result of pseudo-data while the analysis' data stay unseen. Returns what it was given."""
    figure = getattr(figure_or_axes, "figure", figure_or_axes)
    for ax in figure.axes:
        ax.text(0.5, 0.5, "BLINDED", transform=ax.transAxes, ha="center", va="center", fontsize=48,
                color="0.5", alpha=0.35, rotation=20, zorder=10, gid="blinded")  # fmt: skip
    return figure_or_axes
