"""Figures of the exclusion against the world: the expected g_agg limits over the published
ones (:func:`plot_sensitivity`), and the expected limit versus the luminosity
(:func:`plot_luminosity_study`).

Drawn with the helpers of :mod:`bumphunt.plotting` (mplhep style, vetoed regions, bands);
:func:`~bumphunt.plotting.save_figure` writes them atomically.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..errors import BumphuntError
from ..plotting import (
    BAND_COLOURS,
    _broken_at_vetoes,
    _log_mass_axis,
    _new_axes,
    _shade_vetoes,
    _style,
    _table_columns,
    save_figure,
)
from .existing import ExistingLimit, existing_limits
from .luminosity import REFERENCE_EXPONENT, LuminosityStudy

log = logging.getLogger(__name__)

#: The columns :func:`plot_sensitivity` draws: expected -2, -1, median, +1, +2 sigma, observed.
SENSITIVITY_COLUMNS = ("g_exp_m2", "g_exp_m1", "g_exp", "g_exp_p1", "g_exp_p2", "g_obs")
#: The masses shown at least (GeV): the reach of a B factory and below it.
SENSITIVITY_MASS_RANGE = (0.1, 12.0)
#: Colours of the lines of :func:`plot_luminosity_study` and of published limits not in :data:`EXISTING_COLOURS`.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # fmt: skip
#: Colours of the published limits, by name.
EXISTING_COLOURS = {"belle2_2020": "#d62728", "besiii_2022": "#9467bd", "lep": "#1f77b4"}
#: What :func:`plot_sensitivity` says, and :func:`save_sensitivity` logs, when there is nothing to draw.
NO_EXPECTED_LIMIT = "no mass has a finite expected g_agg limit: the sensitivity figure is not drawn"


def plot_sensitivity(result, existing: tuple[ExistingLimit, ...] | None = None, *, observed: bool = False, ax=None,
                     mass_range: tuple[float, float] = SENSITIVITY_MASS_RANGE):  # fmt: skip
    """The expected g_agg limits (median, +-1 and +-2 sigma) over the regions published limits exclude.

    Log-log axes, m_a in GeV and g_agg in GeV^-1; each published limit is its curve with the
    region above it shaded, labelled with its source; the analysis' lines stop across its
    vetoed regions (shaded grey where they lie within the scanned masses).

    Parameters
    ----------
    result : ExclusionResult
        Or any table with :data:`SENSITIVITY_COLUMNS` and ``vetoed``; its ``settings``'
        ``luminosity_pb_inv`` labels the legend.
    existing : sequence of ExistingLimit, optional
        Default :func:`~bumphunt.exclusion.existing_limits` (Belle II 2020, BESIII 2022, LEP).
    observed : bool
        Draw the observed limit too: only once the data are unblinded (the exclusion stage
        draws it when the scan fitted data).
    ax : matplotlib Axes, optional
    mass_range : (float, float)
        The masses shown at least (GeV); widened to the scanned ones.

    Raises
    ------
    BumphuntError
        The table lacks a column, or no mass has a finite expected limit (:data:`NO_EXPECTED_LIMIT`).
    """
    columns = _table_columns(result, SENSITIVITY_COLUMNS, "plot_sensitivity")
    if not np.isfinite(np.asarray(result["g_exp"], dtype=float)).any():
        raise BumphuntError(NO_EXPECTED_LIMIT)
    existing = existing_limits() if existing is None else tuple(existing)
    mass, m2, m1, median, p1, p2, obs = _broken_at_vetoes(result["mass"], result.vetoed, *columns)
    shown = np.r_[m2, p2, obs] if observed else np.r_[m2, p2]
    low = min(mass_range[0], np.nanmin(mass))
    high = max(mass_range[1], np.nanmax(mass))
    published = [g[(m >= low) & (m <= high)] for limit in existing for m, g in limit.pieces()]
    values = np.concatenate([shown[np.isfinite(shown) & (shown > 0)], *published])
    bottom, top = values.min() / 2, values.max() * 3
    with _style(ax is None):
        ax = _new_axes(ax, (12, 9))
        published_lines = []
        for index, limit in enumerate(existing):
            colour = EXISTING_COLOURS.get(limit.name, COLOURS[(index + 5) % len(COLOURS)])
            for piece, (m, g) in enumerate(limit.pieces()):
                ax.fill_between(m, g, 10 * top, color=colour, alpha=0.18, linewidth=0, zorder=1)
                (line,) = ax.plot(m, g, color=colour, linewidth=1.5, zorder=1.5,
                                  label=f"{limit.label} [{limit.citation}]")  # fmt: skip
                if piece == 0:
                    published_lines.append(line)
        luminosity = _luminosity_label(getattr(result, "settings", {}).get("luminosity_pb_inv"))
        two_sigma = ax.fill_between(mass, m2, p2, color=BAND_COLOURS[2], linewidth=0, zorder=2,
                                    label=r"expected $\pm 2\sigma$")  # fmt: skip
        one_sigma = ax.fill_between(mass, m1, p1, color=BAND_COLOURS[1], linewidth=0, zorder=2,
                                    label=r"expected $\pm 1\sigma$")  # fmt: skip
        label = f"expected, this analysis{luminosity}"
        (expected,) = ax.plot(mass, median, "k--", linewidth=1.5, zorder=3, label=label)
        own = [expected, one_sigma, two_sigma]
        if observed:
            own.insert(0, ax.plot(mass, obs, "k-", linewidth=1.5, zorder=3, label="observed, this analysis")[0])
        scanned = (np.nanmin(mass), np.nanmax(mass))
        _shade_vetoes(ax, {name: (a, b) for name, (a, b) in result.vetoed.items() if a < scanned[1] and b > scanned[0]})
        _log_mass_axis(ax)
        ax.set_yscale("log")
        ax.set_ylabel(r"$g_{a\gamma\gamma}$ [GeV$^{-1}$]")
        ax.set_xlim(low, high)
        ax.set_ylim(bottom, top)
        ax.legend(handles=own + published_lines, fontsize=13, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  frameon=False)  # fmt: skip
    return ax


def save_sensitivity(result, path: str | Path, *, existing: tuple[ExistingLimit, ...] | None = None,
                     observed: bool = False) -> Path | None:  # fmt: skip
    """Draw :func:`plot_sensitivity` and write it to ``path``, atomically; None, with a warning
    logged (:data:`NO_EXPECTED_LIMIT`) and nothing written, when no mass has an expected limit."""
    if not np.isfinite(np.asarray(result["g_exp"], dtype=float)).any():
        log.warning(NO_EXPECTED_LIMIT)
        return None
    return save_figure(plot_sensitivity(result, existing, observed=observed), path)


def plot_luminosity_study(study: LuminosityStudy, *, ax=None):
    """The median expected g_agg limit versus the integrated luminosity, one line per mass, on
    log-log axes, each with the reference L^(-1/4) (dotted) through its first point.

    Raises
    ------
    BumphuntError
        No mass has an expected limit at any luminosity.
    """
    if not np.isfinite(study.expected).any():
        raise BumphuntError("no mass has a finite expected g_agg limit at any luminosity: nothing to draw")
    luminosity = study.luminosities
    with _style(ax is None):
        ax = _new_axes(ax, (11, 8))
        for k, mass in enumerate(study.masses):
            limits = study.expected[:, k]
            finite = np.isfinite(limits)
            colour = COLOURS[k % len(COLOURS)]
            if not finite.any():
                ax.plot([], [], "o-", color=colour, label=f"$m_a$ = {mass:g} GeV: no limit")
                continue
            ax.plot(luminosity[finite], limits[finite], "o-", color=colour, label=f"$m_a$ = {mass:g} GeV")
            first = np.flatnonzero(finite)[0]
            reference = limits[first] * (luminosity / luminosity[first]) ** REFERENCE_EXPONENT
            ax.plot(luminosity, reference, ":", color=colour, linewidth=1.2)
        ax.plot([], [], "k:", linewidth=1.2, label=r"$\propto L^{-1/4}$ through the first point")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"integrated luminosity $L$ [fb$^{-1}$]")
        ax.set_ylabel(r"median expected $g_{a\gamma\gamma}$ limit [GeV$^{-1}$]")
        ax.legend(fontsize=13, loc="best")
    return ax


def _luminosity_label(luminosity_pb_inv) -> str:
    """``", 362 fb^-1"`` for a luminosity in pb^-1 (pb^-1 below 1 fb^-1), empty when unknown."""
    try:
        value = float(luminosity_pb_inv)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(value) or value <= 0:
        return ""
    return f", {value / 1000:.4g} fb$^{{-1}}$" if value >= 1000 else f", {value:.4g} pb$^{{-1}}$"
