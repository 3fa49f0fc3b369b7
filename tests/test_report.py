"""The run report on a small synthetic analysis folder (written with the stages' own writers):
every figure embedded with a caption, the scan's and the exclusion's numbers, "not run" for
missing stages, the same bytes twice, nothing external, and an atomic write."""

import base64
import dataclasses
import math
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
import yaml

from bumphunt import report
from bumphunt._io import atomic_write_text, write_json
from bumphunt.config import load_config
from bumphunt.exclusion import published_limit, run_exclusion
from bumphunt.layout import OutputLayout
from bumphunt.models import MassFit
from bumphunt.plotting import (
    plot_brazil,
    plot_composition,
    plot_fom,
    plot_local_significance,
    plot_systematic_impacts,
    save_figure,
)
from bumphunt.results import ScanResult, read_table, write_table
from bumphunt.scan.impacts import ImpactTable
from bumphunt.simulation.composition import TABLE_EDGES, Composition
from bumphunt.stats.lookelsewhere import global_significance

from .helpers import synthetic_shape_model

STAGES = [
    {"stage": "simulation", "status": "skipped", "seconds": 0.0},
    {"stage": "scan", "status": "ran", "seconds": 12.25},
]
VETOED = {"eta": (0.52, 0.58)}


def _coupling(value) -> str:
    return "n/a" if value is None else f"{value:.2e}"


class _Page(HTMLParser):
    """The figures (image source, caption), links, sections' text and the summary of a report."""

    def __init__(self, text: str):
        super().__init__()
        self.figures, self.links, self.sources, self.sections = [], [], [], {}
        self._section, self._in_caption, self._in_summary, self._in_title = None, False, 0, False
        self.summary = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section] = ""
        elif tag == "figure":
            self.figures.append({"src": None, "caption": "", "section": self._section})
        elif tag == "img":
            self.sources.append(attrs["src"])
            self.figures[-1]["src"] = attrs["src"]
        elif tag == "figcaption":
            self._in_caption = True
        elif tag == "h2":
            self._in_title = True
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "div" and attrs.get("class") == "summary":
            self._in_summary += 1

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self._in_caption = False
        elif tag == "h2":
            self._in_title = False
        elif tag == "div" and self._in_summary:
            self._in_summary -= 1
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._in_caption:
            self.figures[-1]["caption"] += data
        if self._section and not self._in_title:
            self.sections[self._section] += data
        if self._in_summary:
            self.summary += data


def _scan_result() -> ScanResult:
    """40 mass hypotheses (0.4-9.4 GeV) with an excess near 3 GeV and one failed fit."""
    masses = np.round(np.linspace(0.4, 9.4, 40), 7)
    masses = masses[(masses < VETOED["eta"][0]) | (masses > VETOED["eta"][1])]
    z = 1.0 + 2.5 * np.exp(-0.5 * ((masses - 3.0) / 0.3) ** 2) * np.cos(masses) ** 2
    rows = []
    for mass, z_local in zip(masses, z):
        expected = 6.0 + 0.3 * mass
        rows.append({"mass": float(mass), "n_sig": 3.0 * z_local, "n_sig_err": 3.0, "p0_local": 0.1, "z_local": z_local,
                     "ul_obs": expected + 2.0 * z_local, "ul_exp_m2": 0.5 * expected, "ul_exp_m1": 0.7 * expected,
                     "ul_exp": expected, "ul_exp_p1": 1.4 * expected, "ul_exp_p2": 2.0 * expected,
                     "efficiency": 0.3, "xsec_ul_pb": 0.1, "g_ul_gev": 1e-3, "fit_status": "ok", "n_events": 100.0,
                     "q0": z_local**2, "background_order": 3.0})  # fmt: skip
    rows[7] = {"mass": rows[7]["mass"], "fit_status": "fit failed"}
    z = np.array([row.get("z_local", np.nan) for row in rows])
    best = global_significance(z, masses, 0.5, [3, 5])
    return ScanResult.from_rows(rows, global_significance=best, vetoed=VETOED,
                                settings={"global_toys": 2, "confidence_level": 0.95})  # fmt: skip


def _composition() -> Composition:
    import hist

    rng = np.random.default_rng(1)
    axis = hist.axis.Regular(50, 0.0, 10.0, name="m_gg", label=r"$M_{\gamma\gamma}$ [GeV]")
    edges = np.array(TABLE_EDGES)
    table, errors, histograms = {}, {}, {}
    for process, size in (("ggg", 3000), ("gg", 800), ("eeg", 100)):
        masses = rng.uniform(0.0, 10.0, size)
        histograms[process] = hist.Hist(axis, storage=hist.storage.Weight()).fill(masses, weight=0.5)
        table[process] = 0.5 * np.histogram(masses, edges)[0]
        errors[process] = np.sqrt(0.5 * table[process])
    return Composition(edges, table, errors, histograms)


def _write_analysis(root) -> dict:
    """A small analysis folder: every stage's tables and figures, a count folder, a figure no
    section knows and the PDF of the shape fits."""
    import matplotlib.pyplot as plt

    config = load_config(None, {"output_dir": str(root)})
    layout = OutputLayout.from_config(config)
    composition = _composition()
    atomic_write_text(layout.composition_table, composition.to_csv())
    save_figure(plot_composition(composition), layout.composition_plot)

    masses = np.linspace(0.3, 9.3, 19)
    fom = {"format": "bumphunt-select-fom", "version": 1, "working_point": 0.93, "masses": [
        {"mass": m, "held_out": i % 4 == 0, "sigma_min_preselection": 1.0 + 0.05 * m, "sigma_min_punzi": 0.7 + 0.03 * m}
        for i, m in enumerate(masses)]}  # fmt: skip
    write_json(layout.select_table_json, fom)
    save_figure(plot_fom(fom), layout.select_plot("fom"))

    model = synthetic_shape_model()
    generated = [0.5, 1.5, 2.5, 4.0, 6.0, 8.0, 9.0]
    values = [{"efficiency": 0.3, "resolution": float(model.resolution(m))} for m in generated]
    errors = {"efficiency": 0.01, "resolution": 2e-4}
    fits = [MassFit(m, "ok", 1000, 900, 800, m - 0.1, m + 0.1, v, errors) for m, v in zip(generated, values)]
    dataclasses.replace(model, fits=fits, held_out=[4.0]).save(layout.shapes_file)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(layout.shape_fits_plot)
    plt.close(fig)

    result = _scan_result()
    write_table(result, layout.scan_dir)
    save_figure(plot_brazil(result), layout.scan_plot("upper_limits"))
    save_figure(plot_local_significance(result), layout.scan_plot("local_significance"))
    limits = {"ul_obs_all": 10.0, "ul_exp_all": 8.0, "ul_obs_stat": 9.5, "ul_exp_stat": 7.6,
              "ul_obs_without_luminosity": 9.9, "ul_exp_without_luminosity": 7.9, "ul_obs_without_resolution": 9.6,
              "ul_exp_without_resolution": 7.7}  # fmt: skip
    impact_rows = [{"mass": m, "fit_status": "ok", **limits} for m in (1.0, 4.0, 7.0)]
    impacts = ImpactTable(("luminosity", "resolution"), impact_rows)
    impacts.write(layout.scan_dir / "impacts.csv")
    save_figure(plot_systematic_impacts(impacts), layout.scan_plot("systematics_impact"))

    run_exclusion(config, progress=False)

    write_table(result, layout.count_dir)
    save_figure(plot_brazil(result, log=True), layout.count_plot("upper_limits"))  # unlike the scan's figure
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, layout.root / "extra" / "sideband_check.png")
    return config


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """A small analysis folder and its report (with a stages table)."""
    config = _write_analysis(tmp_path_factory.mktemp("report") / "out")
    path = report.write_report(config, stages=STAGES)
    return config, OutputLayout.from_config(config), path


def test_every_figure_is_embedded_once_with_a_caption(analysis):
    config, layout, path = analysis
    assert path == layout.report_html == layout.report_dir / "report.html"
    page = _Page(path.read_text())
    pngs = sorted(p for p in layout.root.rglob("*.png") if layout.report_dir not in p.parents)
    pngs.append(layout.resolution_plot)
    assert len(pngs) == 11  # no efficiency map: the synthetic signal model has no lifetime map
    embedded = {figure["src"]: figure for figure in page.figures}
    assert len(embedded) == len(page.figures) == len(pngs)
    for png in pngs:
        figure = embedded[f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"]
        assert figure["caption"].strip()
        key = png.relative_to(layout.root).as_posix()
        assert key in figure["caption"]
        if key in report.CAPTIONS:
            assert report.CAPTIONS[key] in figure["caption"]
    other = next(f for f in page.figures if "extra/sideband_check.png" in f["caption"])
    assert other["section"] == "other" and other["caption"].startswith("Sideband check (extra).")
    assert "../shapes/shape_fits.pdf" in page.links
    # figures the stages did not draw are said so
    for missing in ("select/training.png", "scan/best_fit.png", "count/local_significance.png"):
        assert f"{missing}: not drawn" in page.sections[
            {"select": "selection", "scan": "scan", "count": "count"}[missing.split("/")[0]]]  # fmt: skip


def test_numbers_are_those_of_the_scan_and_the_exclusion(analysis):
    config, layout, path = analysis
    page = _Page(path.read_text())
    scan = read_table(layout.scan_table_json)
    best = scan.global_significance
    assert math.isfinite(best.z_local_max) and best.z_global >= 0
    excess = f"m = {best.mass:.4f} GeV: Zlocal = {best.z_local_max:.2f}, Zglobal = {best.z_global:.2f}"
    assert excess in page.summary and excess in page.sections["scan"]
    assert f"{len(scan)} scanned, 1 flagged" in page.summary
    assert "2 background-only pseudo-experiments" in page.sections["scan"]
    exclusion = yaml.safe_load(layout.exclusion_table_json.read_text())["rows"]
    for column, label in (("g_exp", "expected"), ("g_obs", "observed")):
        row = min((r for r in exclusion if r[column] is not None), key=lambda r: r[column])
        assert f"Strongest {label} limitgaγγ < {row[column]:.2e} GeV-1 at m = {row['mass']:.4f} GeV" in page.summary
    curve = published_limit()
    for target in report.TABLE_MASSES[:-1]:  # the scan stops at 9.4 GeV: 9.5 is its last row again
        row = min(exclusion, key=lambda r: abs(r["mass"] - target))
        nearest = np.abs(curve[0] - row["mass"])
        published = curve[1][nearest == nearest.min()].min()
        g_obs, g_exp = (_coupling(row[column]) for column in ("g_obs", "g_exp"))
        cells = (f"{row['mass']:.4f}", g_obs, g_exp, f"{published:.2e}", row["status"])
        assert "".join(cells) in page.sections["exclusion"]
    assert "n/an/a" in page.sections["exclusion"] and "fit failed" in page.sections["exclusion"]  # the flagged mass
    impacts = page.sections["systematics"]
    assert "all sources (against statistics only)+5.26+5.26" in impacts and "luminosity+1.27+1.01" in impacts


def test_settings_stages_and_versions(analysis):
    config, layout, path = analysis
    text = path.read_text()
    settings = re.search(r"<pre>(.*?)</pre>", text, re.S).group(1)
    assert yaml.safe_load(_Page(f"<section id='s'>{settings}</section>").sections["s"]) == config
    run = _Page(text).sections["run"]
    assert "simulationskipped0.0" in run and "scanran12.2" in run and "total12.2" in run
    assert all(name in run for name in ("python", "bumphunt", *report.PACKAGES))


def test_the_same_inputs_write_the_same_bytes(analysis, tmp_path):
    config, layout, path = analysis
    first, figure = path.read_bytes(), layout.resolution_plot.read_bytes()
    assert report.write_report(config, stages=STAGES).read_bytes() == first
    assert layout.resolution_plot.read_bytes() == figure
    assert report.write_report(config, stages=STAGES[:1]).read_bytes() != first


def test_nothing_external_is_needed(analysis):
    config, layout, path = analysis
    text = path.read_text()
    assert text.isascii()
    page = _Page(text)
    assert page.sources and all(src.startswith("data:image/png;base64,") for src in page.sources)
    assert not re.search(r"<(script|link|iframe|object|embed)\b", text, re.I)
    assert not re.search(r"url\(|@import|(src|srcset)\s*=\s*['\"]?(https?:)?//", text, re.I)
    assert all(not re.match(r"(https?:)?//", href) for href in page.links)


def test_missing_stages_are_not_run(tmp_path):
    config = load_config(None, {"output_dir": str(tmp_path / "empty")})
    page = _Page(report.write_report(config).read_text())
    for section in ("composition", "selection", "resolution", "scan", "systematics", "exclusion", "count"):
        assert page.sections[section].strip().startswith("Not run"), section
    assert "scan not run" in page.summary and "exclusion not run" in page.summary
    assert "not recorded" in page.sections["run"] and not page.figures
    # a scan without its figures: the numbers, and each figure "not drawn"
    layout = OutputLayout.from_config(config)
    write_table(_scan_result(), layout.scan_dir)
    page = _Page(report.write_report(config).read_text())
    assert "Largest excess" in page.sections["scan"] and "scan/upper_limits.png: not drawn" in page.sections["scan"]
    assert page.sections["exclusion"].strip().startswith("Not run")


def test_a_failing_figure_leaves_the_previous_report(analysis, tmp_path, monkeypatch):
    config, layout, path = analysis
    copy = tmp_path / "out"
    shutil.copytree(layout.root, copy)
    config = {**config, "output_dir": str(copy)}
    copied = OutputLayout.from_config(config)
    before = copied.report_html.read_bytes()

    def broken(model):
        raise RuntimeError("no figure today")

    monkeypatch.setattr(report, "plot_resolution", broken)
    with pytest.raises(RuntimeError, match="no figure today"):
        report.write_report(config)
    assert copied.report_html.read_bytes() == before
    assert sorted(p.name for p in copied.report_dir.iterdir()) == ["report.html", "resolution.png"]
    copied.report_html.unlink()
    with pytest.raises(RuntimeError):
        report.write_report(config)
    assert not copied.report_html.exists()
