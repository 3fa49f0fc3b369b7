"""The sensitivity figure and the luminosity study: the published limits read with their sources
and checked, the expected limits drawn over them (and not drawn without any), the expected limit
versus luminosity against the L^(-1/4) reference, and the quick run's figure in the report."""

import json
import logging
import math
import re
from importlib import resources

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from bumphunt import pipeline, report
from bumphunt.coupling import published_limit
from bumphunt.errors import BumphuntError
from bumphunt.exclusion import (
    EXISTING_LIMITS,
    LUMINOSITY_COLUMNS,
    LUMINOSITY_MASSES,
    existing_limits,
    expected_limit_at,
    luminosity_table,
    plot_luminosity_study,
    plot_sensitivity,
    save_sensitivity,
)
from bumphunt.exclusion.plots import NO_EXPECTED_LIMIT
from bumphunt.plotting import save_figure
from bumphunt.results import EXCLUSION_COLUMNS, ExclusionResult, ScanResult, read_table

from .bad_inputs import message as bad_input_message

VETOED = {"pi0": (0.12, 0.15), "eta": (0.52, 0.58), "etaprime": (0.93, 0.99)}
#: The luminosities of the study (fb^-1): Belle II 2018, ..., Run 1, 1 ab^-1.
LUMINOSITIES = (0.445, 36.0, 100.0, 362.0, 1000.0)
#: The synthetic expected limit: A m^POWER (L / 362 fb^-1)^(-1/4), GeV^-1.
SCALE, POWER = 2e-4, 0.7


def _scanned_masses() -> np.ndarray:
    """A logarithmic scan grid of 0.2-9.7 GeV without the vetoed regions (none of the study's masses on it)."""
    masses = np.geomspace(0.2, 9.7, 301)
    return masses[~np.any([(masses >= low) & (masses <= high) for low, high in VETOED.values()], axis=0)]


def _exclusion(luminosity_fb: float, *, failed_near: float | None = None, observed_scale: float = 1.1):
    """An exclusion result whose expected limits are A m^0.7 (L / 362)^(-1/4), bands at fixed ratios;
    the scanned mass just below ``failed_near`` a failed fit (NaN limits)."""
    masses = _scanned_masses()
    g = SCALE * masses**POWER * (luminosity_fb / 362.0) ** -0.25
    rows = []
    for mass, limit in zip(masses, g):
        row = dict.fromkeys(EXCLUSION_COLUMNS, math.nan)
        row.update(mass=float(mass), g_exp_m2=0.7 * limit, g_exp_m1=0.85 * limit, g_exp=limit, g_exp_p1=1.2 * limit,
                   g_exp_p2=1.45 * limit, g_obs=observed_scale * limit, status="ok", excluded_obs="")  # fmt: skip
        rows.append(row)
    if failed_near is not None:
        index = int(np.searchsorted(masses, failed_near)) - 1
        failed = {"mass": float(masses[index]), "status": "fit failed", "excluded_obs": ""}
        rows[index] = dict.fromkeys(EXCLUSION_COLUMNS, math.nan) | failed
    return ExclusionResult.from_rows(rows, vetoed=VETOED, settings={"luminosity_pb_inv": 1000.0 * luminosity_fb})


# -- the published limits ----------------------------------------------------------------------


def test_every_published_limit_is_read_with_its_source_in_gev():
    limits = {limit.name: limit for limit in existing_limits()}
    assert list(limits) == ["belle2_2020", "besiii_2022", "lep"]
    expected = {  # masses (GeV), couplings (GeV^-1), pieces, journal, arXiv
        "belle2_2020": ((0.19, 9.7), (7e-4, 3e-2), 1, "Phys. Rev. Lett. 125 (2020) 161806", "arXiv:2007.13071"),
        "besiii_2022": ((0.16, 2.93), (3.4e-4, 2.2e-2), 3, "Phys. Lett. B 838 (2023) 137698", "arXiv:2211.12699"),
        "lep": ((9.8e-4, 11.8), (8.1e-4, 1.11), 1, "Phys. Lett. B 753 (2016) 482", "arXiv:1509.00476"),
    }
    for name, ((m_low, m_high), (g_low, g_high), pieces, citation, arxiv) in expected.items():
        limit = limits[name]
        assert limit.mass.dtype == limit.coupling.dtype == np.float64 and len(limit.mass) == len(limit.coupling) > 10
        assert m_low <= limit.mass.min() and limit.mass.max() <= m_high, name
        assert g_low <= limit.coupling.min() and limit.coupling.max() <= g_high, name
        assert np.all(limit.coupling > 0)
        assert len(limit.pieces()) == pieces
        assert all(np.all(np.diff(mass) >= 0) for mass, _ in limit.pieces()), name  # plot order: up in mass
        assert limit.citation == citation and limit.arxiv == arxiv and citation in limit.reference
        assert "AxionLimits" in limit.source and limit.label
    # the BESIII curve stops at the J/psi -> gamma eta and gamma eta' regions
    (first, _), (second, _), (third, _) = limits["besiii_2022"].pieces()
    assert first.max() < 0.47 and 0.59 < second.min() and second.max() < 0.9 and third.min() > 1.0
    # the Belle II 2020 curve is the one the coupling exclusion figure draws
    mass, coupling, _ = published_limit()
    np.testing.assert_array_equal(limits["belle2_2020"].mass, mass)
    np.testing.assert_array_equal(limits["belle2_2020"].coupling, coupling)
    assert limits["lep"].authors == "J. Jaeckel, M. Spannowsky"


def test_the_package_ships_the_files_and_the_chain_fingerprints_them():
    data = resources.files("bumphunt.data")
    files = [file for file, _, _ in EXISTING_LIMITS.values()]
    assert all(data.joinpath(file).is_file() for file in files)
    assert set(files) <= set(pipeline.stage_by_name("exclusion").data_files)
    caption = report.CAPTIONS["exclusion/sensitivity.png"]
    assert all(limit.citation in caption for limit in existing_limits())  # the report names every source


def _corrupt(text: str, how: str) -> str:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line[:1].isdigit())  # the first point
    if how == "not a number":
        lines[first] = lines[first].split(",")[0] + ",abc"
    elif how == "negative":
        lines[first] = lines[first].split(",")[0] + ",-0.001"
    elif how == "missing column":
        lines[first - 1] = "mass_gev,g"
    elif how == "values":
        lines[first] += ",7"
    elif how == "mev":
        lines[first + 1 :] = [f"{1000 * float(line.split(',')[0])},{line.split(',')[1]}" for line in lines[first + 1 :]]
    elif how == "decreasing":
        lines[first], lines[first + 1] = lines[first + 1], lines[first]
    elif how == "no reference":
        lines = [line for line in lines if not line.startswith("#")]
    elif how == "one point":
        lines = lines[: first + 1]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not a number", r", line 6: g_agg_gev_inv = 'abc' is not a number"),
        ("negative", r", line 6: g_agg_gev_inv = -0.001 is not a positive finite number"),
        ("missing column", r", line 5: no column 'g_agg_gev_inv' in the header 'mass_gev,g' \(expected "),
        ("values", r", line 6: 3 values for the 2 columns mass_gev,g_agg_gev_inv"),
        ("mev", r": [\d.]+ GeV is outside 1e-06-200 GeV \(masses in MeV or eV\? convert them to GeV\)$"),
        ("decreasing", r", line 7: mass 0.195962 GeV below the 0.199581 GeV before it; the points of a piece go up"),
        ("no reference", r": no journal reference \(such as 'Phys. Lett. B 838 \(2023\) 137698'\) in its # lines"),
        ("one point", r": 1 point\(s\); a limit curve needs at least two"),
    ],
)
def test_a_malformed_file_is_one_line_naming_it(tmp_path, how, message):
    data = resources.files("bumphunt.data")
    for file, _, _ in EXISTING_LIMITS.values():
        (tmp_path / file).write_text(data.joinpath(file).read_text())
    broken = tmp_path / EXISTING_LIMITS["belle2_2020"][0]
    broken.write_text(_corrupt(broken.read_text(), how))
    with pytest.raises(BumphuntError) as raised:
        existing_limits(tmp_path)
    text = str(raised.value)
    assert "\n" not in text and text.startswith(str(broken)), text
    assert re.search(message, text), text
    if how == "no reference":
        assert text == bad_input_message("existing-limit-no-reference", path=broken)


def test_a_missing_file_or_a_bad_segment_is_one_line(tmp_path):
    with pytest.raises(BumphuntError, match=r"belle2_2020_alp_gagg_limit.csv: no such file \(a published limit"):
        existing_limits(tmp_path)
    data = resources.files("bumphunt.data")
    for file, _, _ in EXISTING_LIMITS.values():
        (tmp_path / file).write_text(data.joinpath(file).read_text())
    besiii = tmp_path / EXISTING_LIMITS["besiii_2022"][0]
    besiii.write_text(besiii.read_text().replace("0.463333,0.000771388,0", "0.463333,0.000771388,2"))
    with pytest.raises(BumphuntError, match=r", line \d+: segment 1 after 2; the points of each piece"):
        existing_limits(tmp_path)
    besiii.write_text(besiii.read_text().replace("0.463333,0.000771388,2", "0.463333,0.000771388,x"))
    with pytest.raises(BumphuntError, match=r", line \d+: segment = 'x' is not a whole number >= 0$"):
        existing_limits(tmp_path)


# -- the sensitivity figure --------------------------------------------------------------------


def _legend(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_the_figure_draws_expected_limits_over_every_published_one(tmp_path):
    result = _exclusion(362.0)
    path = save_sensitivity(result, tmp_path / "exclusion" / "sensitivity.png")
    assert path == tmp_path / "exclusion" / "sensitivity.png" and path.stat().st_size > 20_000
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and np.std(image[..., :3]) > 0.05
    ax = plot_sensitivity(result)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    labels = _legend(ax)
    own = ["expected, this analysis, 362 fb$^{-1}$", r"expected $\pm 1\sigma$", r"expected $\pm 2\sigma$"]
    assert labels[:3] == own
    assert [label.split(" [")[1] for label in labels[3:]] == [f"{limit.citation}]" for limit in existing_limits()]
    low, high = ax.get_xlim()
    assert low <= 0.1 and high >= 9.7
    plt.close(ax.figure)
    # the observed limit only when asked (the stage asks when the scan fitted data)
    ax = plot_sensitivity(result, observed=True)
    assert _legend(ax)[0] == "observed, this analysis"
    plt.close(ax.figure)
    # a table read back from its file draws the same; a user's Axes is drawn on
    written = tmp_path / "exclusion.json"
    written.write_text(json.dumps(result.to_dict(), allow_nan=False))
    _, axes = plt.subplots()
    assert plot_sensitivity(read_table(written), existing_limits()[:1], ax=axes) is axes
    assert len(_legend(axes)) == 4
    plt.close(axes.figure)


def test_no_finite_expected_limit_draws_nothing_and_says_so(tmp_path, caplog):
    rows = [dict.fromkeys(EXCLUSION_COLUMNS, math.nan) | {"mass": m, "status": "fit failed", "excluded_obs": ""}
            for m in (1.0, 1.1)]  # fmt: skip
    result = ExclusionResult.from_rows(rows, vetoed={})
    path = tmp_path / "sensitivity.png"
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        assert save_sensitivity(result, path) is None
    assert not path.exists() and NO_EXPECTED_LIMIT in caplog.text
    with pytest.raises(BumphuntError, match=f"^{NO_EXPECTED_LIMIT}$"):
        plot_sensitivity(result)
    with pytest.raises(BumphuntError, match=f"^{NO_EXPECTED_LIMIT}$"):
        plot_sensitivity(ExclusionResult.from_rows([], vetoed={}))
    scan = ScanResult.from_rows([], global_significance=None, vetoed={})
    with pytest.raises(BumphuntError, match="^plot_sensitivity draws the column.s. g_exp_m2, .* which a scan table"):
        plot_sensitivity(scan)


# -- the luminosity study ----------------------------------------------------------------------


def test_the_table_follows_l_to_the_minus_quarter_and_interpolates_masses(tmp_path):
    across = (_scanned_masses()[_scanned_masses() < 0.52].max() + 0.52) / 2  # between scanned masses, across eta
    masses = (*LUMINOSITY_MASSES, 0.55, across, 0.12, 12.0, 3.0)
    results = {luminosity: _exclusion(luminosity, failed_near=3.0) for luminosity in reversed(LUMINOSITIES)}
    study = luminosity_table(results, masses)
    np.testing.assert_array_equal(study.luminosities, LUMINOSITIES)  # sorted
    np.testing.assert_array_equal(study.masses, masses)
    good = len(LUMINOSITY_MASSES)
    # the power law m^0.7 between scanned masses, interpolated in log g versus log m: exact
    truth = SCALE * np.array(LUMINOSITY_MASSES) ** POWER * (np.array(LUMINOSITIES)[:, None] / 362.0) ** -0.25
    np.testing.assert_allclose(study.expected[:, :good], truth, rtol=1e-9)
    assert (study.status[:, :good] == "ok").all()
    # the ratio to the first luminosity is (L / 0.445 fb^-1)^(-1/4), the reference column's, to 1e-9
    ratio = (np.array(LUMINOSITIES) / LUMINOSITIES[0]) ** -0.25
    np.testing.assert_allclose(study.ratio_to_first()[:, :good], np.repeat(ratio[:, None], good, 1), rtol=1e-9)
    np.testing.assert_allclose(study.reference_ratio()[:, :good], study.ratio_to_first()[:, :good], rtol=1e-9)
    # NaN, with the reason, where there is no limit
    reasons = dict(zip(masses[good:], study.status[0, good:]))
    assert np.isnan(study.expected[:, good:]).all()
    assert reasons[0.55] == "in the vetoed eta region (0.52-0.58 GeV)"
    assert reasons[across].startswith("between the scanned masses ")
    assert reasons[across].endswith("GeV, across the vetoed eta region")
    assert reasons[0.12] == "in the vetoed pi0 region (0.12-0.15 GeV)"
    assert reasons[12.0] == "outside the scanned masses (0.2-9.7 GeV)"
    assert reasons[3.0].startswith("no g_exp at the scanned mass ") and reasons[3.0].endswith(": fit failed")
    # a scanned mass gives its own value
    scanned = _scanned_masses()[100]
    assert expected_limit_at(results[362.0], scanned) == (pytest.approx(SCALE * scanned**POWER, rel=1e-12), "ok")
    # the table's files: CSV with the columns, JSON that reproduces the ratio to 1e-9
    csv_path, json_path = study.write(tmp_path / "study")
    assert csv_path.read_text().splitlines()[0].split(",") == list(LUMINOSITY_COLUMNS)
    assert len(csv_path.read_text().splitlines()) == 1 + len(masses) * len(LUMINOSITIES)
    document = json.loads(json_path.read_text())
    assert document["table"] == "luminosity_study" and document["luminosities_fb_inv"] == list(LUMINOSITIES)
    rows = [r for r in document["rows"] if r["mass"] == 1.0]
    assert [r["luminosity_fb_inv"] for r in rows] == list(LUMINOSITIES)
    np.testing.assert_allclose([r["g_exp"] / rows[0]["g_exp"] for r in rows], ratio, rtol=1e-9)
    assert all(r["g_exp"] is None for r in document["rows"] if r["mass"] == 0.55)


def test_the_results_may_come_as_a_list_summaries_or_files(tmp_path):
    results = [_exclusion(luminosity) for luminosity in LUMINOSITIES]
    by_key = luminosity_table(dict(zip(LUMINOSITIES, results)))
    from_list = luminosity_table(results)
    np.testing.assert_array_equal(from_list.expected, by_key.expected)
    file = tmp_path / "exclusion.json"
    file.write_text(json.dumps(results[0].to_dict(), allow_nan=False))

    class Summary:  # what run_exclusion returns: the result in .result
        result = results[1]

    mixed = luminosity_table({0.445: file, 36.0: Summary(), 100.0: results[2]}, masses=[1.0])
    np.testing.assert_allclose(mixed.expected[:, 0], by_key.expected[:3, 1], rtol=1e-12)
    with pytest.raises(BumphuntError, match=r"^luminosity_table: the result given for 100 fb\^-1 was converted with "
                                            r"362 fb\^-1 \(luminosity_pb_inv in its settings\)$"):  # fmt: skip
        luminosity_table({100.0: results[3]})
    with pytest.raises(BumphuntError, match=r"^luminosity_table: two results at 362 fb\^-1$"):
        luminosity_table([results[3], results[3]])
    with pytest.raises(BumphuntError, match=r"^luminosity_table: the result for 1 fb\^-1 is a dict, not an "):
        luminosity_table({1: {"g_exp": 1e-3}})
    with pytest.raises(BumphuntError, match=r"^luminosity_table: masses must be positive numbers \(GeV\)"):
        luminosity_table(results, masses=[1.0, -2.0])
    with pytest.raises(BumphuntError, match=r"^luminosity_table: no results given$"):
        luminosity_table({})


def test_the_luminosity_figure_has_a_line_per_mass_and_the_reference(tmp_path):
    masses = (0.5, 1.0, 0.55)
    study = luminosity_table({luminosity: _exclusion(luminosity) for luminosity in LUMINOSITIES}, masses)
    path = save_figure(plot_luminosity_study(study), tmp_path / "luminosity_study.png")
    assert path.stat().st_size > 10_000
    ax = plot_luminosity_study(study)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert _legend(ax) == ["$m_a$ = 0.5 GeV", "$m_a$ = 1 GeV", "$m_a$ = 0.55 GeV: no limit",
                           r"$\propto L^{-1/4}$ through the first point"]  # fmt: skip
    measured, reference = ax.get_lines()[0], ax.get_lines()[1]
    np.testing.assert_allclose(reference.get_ydata()[0], measured.get_ydata()[0], rtol=1e-12)
    np.testing.assert_allclose(reference.get_ydata(), measured.get_ydata(), rtol=1e-9)  # exactly L^(-1/4) here
    plt.close(ax.figure)


# -- the chain ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_quick_run_draws_it_and_the_report_shows_it(quick_run):
    folder, _ = quick_run
    figure = folder / "exclusion" / "sensitivity.png"
    assert figure.is_file() and figure.stat().st_size > 10_000
    page = (folder / "report" / "report.html").read_text()
    assert "exclusion/sensitivity.png" in page and "Phys. Lett. B 838 (2023) 137698" in page
