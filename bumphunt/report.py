"""The run report: one self-contained HTML page of what an analysis did and found.

:func:`write_report` reads the files the stages wrote (where :class:`OutputLayout` says) and
writes ``<output_dir>/report/report.html``: a summary, the settings, the tables and figures
of every stage (PNG embedded as base64, CSS inline, no JavaScript, nothing fetched), the
stages of the run and the software versions. A stage whose files are missing is reported as
"not run". The page holds no timestamp, so the same inputs write the same bytes.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from ._io import atomic_write_text, writable_folder
from ._version import __version__, installed_version
from .coupling import published_limit
from .errors import BumphuntError
from .layout import STAGE_DIRS, OutputLayout
from .models.signal import ShapeModel
from .ntuple import read_metadata, written_luminosity
from .pipeline import refuse_disagreement
from .plotting import FOM_CURVES, plot_resolution, save_figure
from .results import ScanResult, read_table
from .samples import data_description, signal_sample

#: Caption of every figure the stages draw, by its path below ``output_dir``.
CAPTIONS = {
    "simulation/composition.png": "Background M_gg spectrum after the pre-selection, stacked by process "
    "(expected candidates).",
    "select/fom.png": "sigma_min versus mass for the Punzi-net's single cut and the baselines, and relative to "
    "the BCE network's best cut per mass (held-out masses as open markers).",
    "select/training.png": "Loss per epoch of each training stage of the network (training and validation).",
    "select/scores.png": "Network output per sample: backgrounds stacked in expected events, the signal's shape "
    "normalised to them, and the working point.",
    "report/resolution.png": "Mass resolution sigma(m) of the signal versus m_a: the interpolation the scan uses "
    "and the per-mass fits.",
    "shapes/shape_parameters.png": "Signal-shape parameters versus mass: per-mass fits, held-out masses and the "
    "spline interpolation.",
    "scan/upper_limits.png": "Upper limit on the signal events versus m_a with the expected +-1 sigma (green) and "
    "+-2 sigma (yellow) bands; vetoed meson regions shaded.",
    "scan/local_significance.png": "Local significance versus m_a, with the largest excess and its global "
    "significance.",
    "scan/best_fit.png": "Signal-plus-background fit at the mass of the largest local excess, with its pulls.",
    "scan/systematics_impact.png": "Change of the limit by each systematic source (UL with all / UL without it - "
    "1) and by all of them (against statistics only), versus m_a.",
    "exclusion/coupling_exclusion.png": "Excluded g_agg versus m_a: observed (excluded above, shaded), expected "
    "with its bands, and the published Belle II 2020 limit.",
    "exclusion/sensitivity.png": "Expected g_agg limits of this analysis (median, +-1 sigma green, +-2 sigma yellow; "
    "the observed limit only once the scan fitted unblinded data) over the regions excluded (shaded) by Belle II "
    "2020, e+e- -> gamma a (Phys. Rev. Lett. 125 (2020) 161806), BESIII, J/psi -> gamma a (Phys. Lett. B 838 (2023) "
    "137698) and LEP e+e- -> gamma gamma gamma reinterpreted by Jaeckel and Spannowsky (Phys. Lett. B 753 (2016) "
    "482), as digitised in the AxionLimits collection.",
    "exclusion/cross_section_limits.png": "Upper limit on sigma(e+e- -> gamma a) versus m_a, with the expected bands.",
    "exclusion/efficiency_map.png": "Signal efficiency versus m_a and the ALP's proper decay length c tau, from "
    "the lifetime reweighting.",
    "count/upper_limits.png": "Counting experiment: upper limit on the signal events per generated mass, with the "
    "expected bands.",
    "count/local_significance.png": "Counting experiment: local significance per generated mass.",
}
#: Masses of the exclusion's short table (GeV): the nearest scanned mass of each.
TABLE_MASSES = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 9.5)
#: How couplings (GeV^-1) are written: three significant digits, with an exponent.
COUPLING_FORMAT = ".2e"
#: Packages whose versions the report lists (after python and bumphunt).
PACKAGES = ("numpy", "scipy", "numba", "iminuit", "zfit", "tensorflow", "uproot", "hist", "mplhep", "matplotlib")
#: The selections of the figure-of-merit table, by the suffix of their ``sigma_min_`` column.
SELECTION_LABELS = {**FOM_CURVES, "sigma_min_punzi_best_cut": "Punzi-net, best cut per mass"}
#: Figures other than PNG, listed as links.
LINKED_SUFFIXES = (".pdf", ".svg")
STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
.summary { background: #f0f4fa; border: 1px solid #9ab; border-radius: 6px; padding: 0.5em 1em; }
table { border-collapse: collapse; margin: 0.8em 0; } td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; }
th { background: #eee; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.summary table td, .summary table th { border: none; text-align: left; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; } .path { color: #888; font-family: monospace; }
.missing { color: #a60; } nav a { margin-right: 0.8em; }
"""
SECTIONS = {
    "settings": "Settings",
    "composition": "Background composition",
    "selection": "Selection",
    "resolution": "Resolution",
    "scan": "Mass scan",
    "systematics": "Systematics impact",
    "exclusion": "Exclusion",
    "count": "Counting experiment",
    "other": "Other figures",
    "run": "Stages and software",
}


def write_report(
    config: Mapping, *, stages: Sequence[Mapping] | None = None, layout: OutputLayout | None = None
) -> Path:
    """Write the run report of an analysis, ``<output_dir>/report/report.html``, atomically.

    Draws ``report/resolution.png`` (the signal's resolution versus mass) on the way.

    Parameters
    ----------
    config : mapping
        The analysis configuration (shown as YAML; ``name``, ``output_dir``).
    stages : sequence of mappings, optional
        What this run did: ``{"stage": name, "status": "ran" | "skipped", "seconds": float}``.
    layout : OutputLayout, optional
        Where the stages' files are; default the configuration's ``output_dir``.

    Returns
    -------
    Path of the report.

    Raises
    ------
    BumphuntError
        A stage's file exists but cannot be read; the previous report is then left as it was.
    """
    layout = layout or OutputLayout.from_config(config)
    refuse_disagreement("report", config, layout)
    writable_folder(layout.report_dir)
    figures = _Figures(layout)
    scan = _read_result(layout.scan_table_json)
    exclusion = _read_exclusion(layout.exclusion_table_json)
    sections = {
        "settings": _settings_section(config),
        "composition": _composition_section(layout, figures, config["luminosity"]),
        "selection": _selection_section(layout, figures),
        "resolution": _resolution_section(layout, figures),
        "scan": _scan_section(scan, layout, figures),
        "systematics": _systematics_section(layout, figures),
        "exclusion": _exclusion_section(exclusion, scan, layout, figures),
        "count": _count_section(layout, figures),
    }
    sections["other"] = _other_figures_section(figures)
    sections["run"] = _run_section(stages)
    name = str(config.get("name", "analysis"))
    body = [
        f"<h1>bumphunt report: {_text(name)}</h1>",
        f"<p>bumphunt {_text(__version__)}, output folder <code>{_text(layout.root)}</code></p>",
        _summary(scan, exclusion, config, layout),
        "<nav>" + "".join(f'<a href="#{key}">{_text(title)}</a>' for key, title in SECTIONS.items()) + "</nav>",
        *(
            f'<section id="{key}">\n<h2>{_text(SECTIONS[key])}</h2>\n{content}\n</section>'
            for key, content in sections.items()
        ),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>bumphunt report: {_text(name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    # plain ASCII (other characters as references): the same bytes whatever the locale's encoding
    return atomic_write_text(layout.report_html, page.encode("ascii", "xmlcharrefreplace").decode("ascii"))


# --- the sections ---------------------------------------------------------------------------


def _summary(scan: ScanResult | None, exclusion: dict | None, config: Mapping, layout: OutputLayout) -> str:
    rows = [("Data", _text(data_description(config)))]
    signal = layout.ntuple("kinfit", signal_sample(config))
    if signal.is_file() and read_metadata(signal).get("isr_factor_assumed"):
        rows.append(("Signal cross-section", "Born: the signal sample gives no isr_factor (1 assumed)"))
    shapes = _read_json(layout.shapes_file) if layout.shapes_file.is_file() else {}
    if shapes.get("settings", {}).get("truth_matching") == "nearest pair":
        rows.append(("Signal shapes", "no truth in the signal sample: the pair nearest the generated mass "
                     "counts as correct (docs/own-analysis.md)"))  # fmt: skip
    if scan is None:
        rows.append(("Largest excess", "scan not run"))
        rows.append(("Mass hypotheses", "scan not run"))
    else:
        rows.append(("Largest excess", _excess(scan)))
        flagged = int((~scan.ok).sum())
        rows.append(("Mass hypotheses", f"{len(scan)} scanned, {flagged} flagged (fit status other than ok)"))
    for label, column in (("Strongest expected limit", "g_exp"), ("Strongest observed limit", "g_obs")):
        rows.append((label, _strongest(exclusion, column) if exclusion else "exclusion not run"))
    cells = "".join(f"<tr><th>{_text(label)}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<div class="summary"><table>{cells}</table></div>'


def _excess(result: ScanResult) -> str:
    best = result.global_significance
    if not math.isfinite(best.z_local_max):
        return "none (no mass hypothesis has a local significance)"
    return (
        f"m = {_mass(best.mass)}: Z<sub>local</sub> = {_z(best.z_local_max)}, Z<sub>global</sub> = {_z(best.z_global)}"
    )


def _strongest(exclusion: dict, column: str) -> str:
    values = exclusion[column]
    if not np.isfinite(values).any():
        return "no mass has a limit"
    index = int(np.nanargmin(values))
    return f"g<sub>a&gamma;&gamma;</sub> &lt; {_coupling(values[index])} at m = {_mass(exclusion['mass'][index])}"


def _settings_section(config: Mapping) -> str:
    text = yaml.safe_dump(_plain(config), sort_keys=False)
    lines = text.count("\n")
    # folded: the results come first to the eye; the YAML is as long as the configuration
    return f"<details><summary>The configuration, {lines} lines of YAML</summary><pre>{_text(text)}</pre></details>"


def _composition_section(layout: OutputLayout, figures: _Figures, luminosity: float) -> str:
    table, plot = layout.composition_table, layout.composition_plot
    if not table.is_file() and not plot.is_file():
        return _not_run(f"no {_relative(table, layout)}")
    parts = []
    if table.is_file():
        header, *rows = _read_csv(table)
        at = _simulated_at(layout, luminosity)
        parts.append(f"<p>Expected background candidates per process and mass range{_text(at)}.</p>")
        parts.append(_table(header, rows, numeric_from=1))
    parts.append(figures.show(plot, "simulation/composition.png"))
    return "\n".join(parts)


def _simulated_at(layout: OutputLayout, luminosity: float) -> str:
    """The luminosity the simulation's composition was counted at, with the factor to the
    analysis' when they differ (the stages bring weights to it where they read them)."""
    for path in layout.existing_ntuples("simulation"):
        try:
            simulated = written_luminosity(path)
        except BumphuntError:
            continue
        if simulated == luminosity:
            return f", at {simulated:g} pb^-1"
        return (f", at {simulated:g} pb^-1, the luminosity the simulation was weighted to: this analysis' "
                f"{luminosity:g} pb^-1 has {luminosity / simulated:.4g} times as many")  # fmt: skip
    return ""


def _selection_section(layout: OutputLayout, figures: _Figures) -> str:
    path = layout.select_table_json
    if not path.is_file():
        return _not_run(f"no {_relative(path, layout)}")
    document = _read_json(path)
    rows = document.get("masses", [])
    working_point = document.get("working_point")
    point = f"{working_point:.4g}" if isinstance(working_point, (int, float)) else _text(working_point)
    parts = [
        f"<p>Working point (cut on the network output): <b>{point}</b>; "
        f"{len(rows)} generated masses, {sum(bool(r.get('held_out')) for r in rows)} held out of the "
        "training.</p>"
    ]
    columns = sorted(
        {key for row in rows for key in row if key.startswith("sigma_min_")},
        key=lambda c: (list(SELECTION_LABELS).index(c) if c in SELECTION_LABELS else len(SELECTION_LABELS), c),
    )
    table = []
    for column in columns:
        means = [
            _mean([r.get(column) for r in rows if keep(r)])
            for keep in (lambda r: True, lambda r: not r.get("held_out"), lambda r: bool(r.get("held_out")))
        ]
        table.append([SELECTION_LABELS.get(column, column), *(_number(m, ".4g") for m in means)])
    if table:
        header = ["selection", "mean sigma_min [pb]: all masses", "training masses", "held-out masses"]
        parts.append(_table(header, table, numeric_from=1))
    parts += [figures.show(layout.select_plot(name), f"select/{name}.png") for name in ("fom", "training", "scores")]
    return "\n".join(parts)


def _resolution_section(layout: OutputLayout, figures: _Figures) -> str:
    path = layout.shapes_file
    if not path.is_file():
        layout.resolution_plot.unlink(missing_ok=True)  # of an older report: not of these inputs
        return _not_run(f"no {_relative(path, layout)}")
    model = ShapeModel.load(path)
    drawn = save_figure(plot_resolution(model), layout.resolution_plot)
    low, high = model.mass_range
    fitted = sum(f.ok for f in model.fits)
    parts = [
        f"<p>Signal model from {_text(_relative(path, layout))}: {len(model.fits)} generated masses from "
        f"{_mass(low)} to {_mass(high)}, {fitted} fitted, {len(model.held_out)} held out of the interpolation.</p>",
        figures.show(drawn, "report/resolution.png", found=True),
        figures.show(layout.shape_parameters_plot, "shapes/shape_parameters.png"),
        figures.link(layout.shape_fits_plot, "Fit at every generated mass (PDF, one page per mass)"),
    ]
    return "\n".join(parts)


def _scan_section(scan: ScanResult | None, layout: OutputLayout, figures: _Figures) -> str:
    if scan is None:
        return _not_run(f"no {_relative(layout.scan_table_json, layout)}")
    best = scan.global_significance
    statuses = {}
    for status in scan["fit_status"][~scan.ok]:
        statuses[status] = statuses.get(status, 0) + 1
    flagged = ", ".join(f"{count} {_text(status)}" for status, count in sorted(statuses.items())) or "none"
    toys = int(scan.settings.get("global_toys", 0) or 0)
    counted = (
        f"{toys} background-only pseudo-experiments (look-elsewhere toys)"
        if toys > 0 and len(best.upcrossings_per_toy) == toys
        else "the observed scan itself (no toys)"
    )
    parts = [
        f"<p>{len(scan)} mass hypotheses from {_mass(np.nanmin(scan.masses))} to {_mass(np.nanmax(scan.masses))}; "
        f"flagged: {flagged}.</p>",
        f"<p>Largest excess: {_excess(scan)}; p<sub>local</sub> = {_number(best.p_local, '.3g')}, "
        f"p<sub>global</sub> = {_number(best.p_global, '.3g')}.</p>",
        f"<p>Look-elsewhere effect (Gross-Vitells): upcrossings of Z = {_number(best.reference_level, '.2g')} "
        f"counted on {counted}, mean {_number(best.mean_upcrossings, '.3g')}.</p>",
    ]
    parts += [
        figures.show(layout.scan_plot(name), f"scan/{name}.png")
        for name in ("upper_limits", "local_significance", "best_fit")
    ]
    return "\n".join(parts)


def _systematics_section(layout: OutputLayout, figures: _Figures) -> str:
    path = layout.scan_impacts_csv
    if not path.is_file():
        return _not_run(f"no {_relative(path, layout)} (systematics off, or no impact masses)")
    header, *rows = _read_csv(path)
    records = [dict(zip(header, row)) for row in rows if dict(zip(header, row)).get("fit_status") == "ok"]
    sources = [name.removeprefix("ul_exp_without_") for name in header if name.startswith("ul_exp_without_")]
    table = []
    for label, variant in (
        ("all sources (against statistics only)", "stat"),
        *((source, f"without_{source}") for source in sources),
    ):
        medians = [_median_impact(records, limit, variant) for limit in ("ul_exp", "ul_obs")]
        table.append([label, *(_number(100 * m, "+.2f") for m in medians)])
    parts = [
        f"<p>Median over {len(records)} masses of UL(all sources) / UL(without the source) - 1.</p>",
        _table(["source", "expected limit [%]", "observed limit [%]"], table, numeric_from=1),
        figures.show(layout.scan_plot("systematics_impact"), "scan/systematics_impact.png"),
    ]
    return "\n".join(parts)


def _median_impact(records: list[dict], limit: str, variant: str) -> float:
    ratios = [_float(r.get(f"{limit}_all")) / _float(r.get(f"{limit}_{variant}")) - 1.0 for r in records]
    ratios = np.array(ratios, dtype=float)
    return float(np.median(ratios[np.isfinite(ratios)])) if np.isfinite(ratios).any() else math.nan


def _exclusion_section(exclusion: dict | None, scan: ScanResult | None, layout: OutputLayout, figures: _Figures) -> str:
    if exclusion is None:
        return _not_run(f"no {_relative(layout.exclusion_table_json, layout)}")
    parts = [
        f"<p>Strongest limits: expected {_strongest(exclusion, 'g_exp')}; observed "
        f"{_strongest(exclusion, 'g_obs')}.</p>"
    ]
    parts += [
        figures.show(layout.exclusion_plot(name), f"exclusion/{name}.png")
        for name in ("coupling_exclusion", "sensitivity", "cross_section_limits", "efficiency_map")
    ]
    masses = exclusion["mass"]
    if len(masses):
        published = published_limit()[:2]
        indices = sorted({int(np.argmin(np.abs(masses - target))) for target in TABLE_MASSES})
        rows = [
            [
                _number(masses[i], ".4f"),
                _number(exclusion["g_obs"][i], COUPLING_FORMAT),
                _number(exclusion["g_exp"][i], COUPLING_FORMAT),
                _number(_published_at(published, masses[i]), COUPLING_FORMAT),
                exclusion["status"][i],
            ]
            for i in indices
        ]
        header = ["m_a [GeV]", "g_obs [GeV^-1]", "g_exp [GeV^-1]", "Belle II 2020 [GeV^-1]", "status"]
        level = _float(scan.settings.get("confidence_level")) if scan is not None else math.nan
        what = f"{100 * level:g}% CL limits" if math.isfinite(level) else "Limits"
        parts.append(
            f"<p>{what} on g<sub>a&gamma;&gamma;</sub> at the scanned masses nearest "
            f"{', '.join(f'{m:g}' for m in TABLE_MASSES)} GeV (published: nearest digitised point of "
            "Belle II, PRL 125 (2020) 161806).</p>"
        )
        parts.append(_table(header, rows, numeric_from=0, numeric_to=3))
    return "\n".join(parts)


def _count_section(layout: OutputLayout, figures: _Figures) -> str:
    if not layout.count_dir.is_dir():
        return _not_run(f"no {_relative(layout.count_dir, layout)} folder")
    result = _read_result(layout.count_table_json)
    parts = []
    if result is not None:
        parts.append(
            f"<p>{len(result)} generated masses, {int((~result.ok).sum())} flagged; largest excess: "
            f"{_excess(result)}.</p>"
        )
    parts += [
        figures.show(layout.count_plot(name), f"count/{name}.png") for name in ("upper_limits", "local_significance")
    ]
    return "\n".join(parts)


def _other_figures_section(figures: _Figures) -> str:
    remaining = figures.remaining()
    links = figures.remaining_links()
    if not remaining and not links:
        return "<p>None.</p>"
    return "\n".join(
        [
            *(figures.show(path, key) for key, path in remaining),
            *(figures.link(path, _caption_from_name(key)) for key, path in links),
        ]
    )


def _run_section(stages: Sequence[Mapping] | None) -> str:
    if stages is None:
        parts = ["<p>Stages of this run: not recorded (the report was written on its own).</p>"]
    else:
        rows = [
            [_text(r.get("stage", "")), _text(r.get("status", "")), _number(r.get("seconds"), ".1f")] for r in stages
        ]
        total = sum(_float(r.get("seconds")) for r in stages if math.isfinite(_float(r.get("seconds"))))
        rows.append(["<b>total</b>", "", _number(total, ".1f")])
        parts = ["<p>Stages of this run:</p>", _table(["stage", "status", "seconds"], rows, numeric_from=2, raw=True)]
    versions = [["python", platform.python_version()], ["bumphunt", installed_version("bumphunt", __version__)]]
    versions += [[name, installed_version(name)] for name in PACKAGES]
    parts += ["<p>Software:</p>", _table(["package", "version"], versions)]
    return "\n".join(parts)


# --- figures ---------------------------------------------------------------------------------


class _Figures:
    """The figures below an analysis' folders, each shown once: the sections show theirs, the
    rest go to "Other figures"."""

    def __init__(self, layout: OutputLayout):
        self.layout = layout
        self.found = _find_figures(layout)  # display key -> path
        self.keys = {path: key for key, path in self.found.items()}
        self.shown: set[str] = set()

    def show(self, path: Path, caption_key: str, *, found: bool = False) -> str:
        """The figure at ``path`` embedded with its caption (``CAPTIONS[caption_key]``), or a
        line saying it was not drawn."""
        path = Path(path)
        key = self.keys.get(path.resolve()) if not found else _relative(path, self.layout)
        if key is None:
            return f'<p class="missing">{_text(caption_key)}: not drawn.</p>'
        self.shown.add(key)
        caption = CAPTIONS.get(caption_key) or CAPTIONS.get(key) or _caption_from_name(key)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{_text(caption)}">'
            f'<figcaption>{_text(caption)} <span class="path">{_text(key)}</span></figcaption></figure>'
        )

    def link(self, path: Path, caption: str) -> str:
        """A relative link to a figure that is not a PNG (a PDF of many pages)."""
        path = Path(path)
        key = _relative(path, self.layout)
        if not path.is_file():
            return f'<p class="missing">{_text(key)}: not drawn.</p>'
        self.shown.add(key)
        href = Path(os.path.relpath(path.resolve(), self.layout.report_dir.resolve())).as_posix()
        return f'<p>{_text(caption)}: <a href="{_text(href)}">{_text(key)}</a></p>'

    def remaining(self) -> list[tuple[str, Path]]:
        return [(key, path) for key, path in self.found.items() if key not in self.shown and path.suffix == ".png"]

    def remaining_links(self) -> list[tuple[str, Path]]:
        return [(key, path) for key, path in self.found.items() if key not in self.shown and path.suffix != ".png"]


def _find_figures(layout: OutputLayout) -> dict[str, Path]:
    """Every PNG (and PDF, SVG) below the analysis folder and the stages' folders, by the path
    below the analysis folder (or ``<stage>/...`` for a stage written elsewhere), sorted; none
    of the report's folder, of the studies (:attr:`~bumphunt.layout.OutputLayout.studies_dir`)
    nor hidden files (figures being written)."""
    report, root, studies = layout.report_dir.resolve(), layout.root.resolve(), layout.studies_dir
    elsewhere = [layout.stage_dir(stage) for stage in STAGE_DIRS if stage != "report"]
    # the root's walk sees the stage folders below it; only those written elsewhere are walked apart
    folders = [layout.root, *(f for f in elsewhere if root not in f.resolve().parents)]
    found = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            resolved = path.resolve()
            relative_parts = path.relative_to(folder).parts
            if (
                path.suffix not in (".png", *LINKED_SUFFIXES)
                or not path.is_file()
                or any(part.startswith(".") for part in relative_parts)
                or report in resolved.parents
                or studies in path.parents
            ):
                continue
            found.setdefault(resolved, _relative(path, layout))
    return {key: path for path, key in sorted(found.items(), key=lambda item: item[1])}


def _relative(path: Path, layout: OutputLayout) -> str:
    """``path`` below the analysis folder, or as ``<stage>/...`` when a stage is written elsewhere."""
    path = Path(path).resolve()
    candidates = [(None, layout.root.resolve())]
    candidates += [(stage, layout.stage_dir(stage).resolve()) for stage in STAGE_DIRS]
    for stage, folder in candidates:
        if path == folder or folder in path.parents:
            inner = path.relative_to(folder).as_posix()
            return inner if stage is None else f"{stage}/{inner}".rstrip("/.")
    return path.as_posix()


def _caption_from_name(key: str) -> str:
    """A caption made of a figure's file name and folder: ``count/window_fits.png`` -> "Window fits (count)"."""
    path = Path(key)
    words = path.stem.replace("_", " ").replace("-", " ").strip() or path.name
    folder = path.parent.as_posix()
    return words[0].upper() + words[1:] + (f" ({folder})" if folder != "." else "") + "."


# --- reading the stages' files ----------------------------------------------------------------


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BumphuntError(f"{path}: cannot read it for the report ({error})") from None


def _read_csv(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise BumphuntError(f"{path}: cannot read it for the report ({error})") from None
    if not rows:
        raise BumphuntError(f"{path}: empty table")
    return rows


def _read_result(path: Path) -> ScanResult | None:
    """A scan's or count's results table, None when the stage has not written it."""
    if not path.is_file():
        return None
    try:
        return read_table(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BumphuntError(f"{path}: not a bumphunt results table ({error})") from None


def _read_exclusion(path: Path) -> dict | None:
    """The exclusion table as columns (mass, g_obs, g_exp as floats, status), None when missing."""
    if not path.is_file():
        return None
    document = _read_json(path)
    try:
        rows = document["rows"]
        columns = {
            name: np.array([_float(r.get(name)) for r in rows], dtype=float) for name in ("mass", "g_obs", "g_exp")
        }
        columns["status"] = [str(r.get("status", "")) for r in rows]
    except (KeyError, TypeError, AttributeError) as error:
        raise BumphuntError(f"{path}: not a bumphunt exclusion table ({error})") from None
    return columns


def _published_at(published: tuple[np.ndarray, np.ndarray], mass: float) -> float:
    """The published limit at the digitised point nearest ``mass`` (the lower g of a tie);
    NaN outside the published mass range."""
    masses, couplings = published
    if not masses.min() <= mass <= masses.max():
        return math.nan
    distance = np.abs(masses - mass)
    nearest = distance == distance.min()
    return float(couplings[nearest].min())


# --- formatting -------------------------------------------------------------------------------


def _table(
    header: Sequence[str], rows: Sequence[Sequence], *, numeric_from: int = 99, numeric_to: int = 99, raw: bool = False
) -> str:
    """An HTML table; cells of columns ``numeric_from`` to ``numeric_to`` are right-aligned;
    ``raw``: the cells are HTML already."""
    head = "".join(f"<th>{_text(cell)}</th>" for cell in header)
    lines = [f"<table><tr>{head}</tr>"]
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            css = ' class="number"' if numeric_from <= index <= numeric_to else ""
            cells.append(f"<td{css}>{cell if raw else _text(cell)}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return "\n".join(lines) + "</table>"


def _not_run(why: str) -> str:
    return f'<p class="missing">Not run ({_text(why)}).</p>'


def _text(value) -> str:
    return html.escape(str(value), quote=True)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _number(value, spec: str) -> str:
    value = _float(value)
    return format(value, spec) if math.isfinite(value) else "n/a"


def _mass(value: float) -> str:
    return f"{_number(value, '.4f')} GeV"


def _z(value: float) -> str:
    return _number(value, ".2f")


def _coupling(value: float) -> str:
    return f"{_number(value, COUPLING_FORMAT)} GeV<sup>-1</sup>"


def _mean(values) -> float:
    values = np.array([_float(v) for v in values], dtype=float)
    return float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else math.nan


def _plain(value):
    """A configuration as plain dicts, lists and python scalars (what ``yaml.safe_dump`` writes)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
