"""An analyst's own spectrum and tables: ``scan_spectrum`` of a ROOT file's own tree and
branch (or expression), of an uproot TTree, of a table; masses in MeV, histogram bins too wide
and arrays that are no list of masses caught; ``read_table`` of every table bumphunt writes
(scan, count, exclusion; files from before the ``"table"`` key too), drawn by the plots, and
one line naming the file for anything else. Fast: the synthetic signal model, small spectra."""

from __future__ import annotations

import json
import logging
import re

import awkward as ak
import hist
import matplotlib
import numpy as np
import pytest
import uproot

import bumphunt
from bumphunt.config import load_config
from bumphunt.errors import BumphuntError, ConfigError, NtupleError
from bumphunt.exclusion import ExclusionResult as ReExportedExclusionResult
from bumphunt.exclusion import run_exclusion
from bumphunt.kinematics import Beams
from bumphunt.plotting import plot_brazil, plot_coupling_exclusion, plot_cross_section_limits, plot_local_significance
from bumphunt.results import EXCLUSION_COLUMNS, ExclusionResult, ScanResult, read_table, write_table
from bumphunt.scan import run_scan, scan_spectrum
from bumphunt.scan.data import BIN_WIDTH_RESOLUTIONS

from .bad_inputs import message, pattern
from .helpers import synthetic_shape_model

matplotlib.use("Agg")

#: A short scan of the local significance: 22 hypotheses, well under a second.
WINDOW = {"start": 1.0, "stop": 1.1, "global_toys": 0, "limits": False}


@pytest.fixture(scope="module")
def model():
    return synthetic_shape_model()


@pytest.fixture(scope="module")
def masses():
    """A smooth spectrum of 28,463 candidates (an odd number: its median is one of them)."""
    rng = np.random.default_rng(1)
    values = 0.1 + rng.exponential(1.0, 30_000)
    values = values[values < 3.0]
    return values if len(values) % 2 else values[1:]


@pytest.fixture(scope="module")
def reference(model, masses):
    return scan_spectrum(masses, model, **WINDOW)


@pytest.fixture(scope="module")
def own_file(tmp_path_factory, masses):
    """A user's ROOT file: tree ``alp``, a flat mass branch, the same masses three to an entry
    (the first of each row the masses, the others beyond the scan), a jagged branch and a flag."""
    path = tmp_path_factory.mktemp("own") / "own.root"
    n = len(masses)
    with uproot.recreate(path) as file:
        file["alp"] = {
            "m_gg": masses,
            "m_three": np.stack([masses, masses + 5.0, masses + 6.0], axis=1),
            "m_jagged": ak.unflatten(np.stack([masses, masses + 5.0], axis=1).ravel(), np.full(n, 2)),
            "passed": np.ones(n, dtype=np.int32),
        }
    return path


def _same_scan(result: ScanResult, reference: ScanResult) -> None:
    """The same candidates in every window, the same fits (to their convergence: masses that
    went through arithmetic differ in the last bits)."""
    assert len(result) == len(reference) > 10 and result.ok.all()
    np.testing.assert_array_equal(result["n_events"], reference["n_events"])
    np.testing.assert_allclose(result["z_local"], reference["z_local"], rtol=0, atol=1e-5)


# -- scan_spectrum: a user's tree, branch or expression ------------------------------------------


def test_a_file_of_ones_own_is_scanned_by_tree_and_branch(model, own_file, reference):
    _same_scan(scan_spectrum(own_file, model, tree="alp", mass="m_gg", **WINDOW), reference)
    # an expression of branches, and a cut on the entries
    _same_scan(scan_spectrum(str(own_file), model, tree="alp", mass="m_three[:, 0]", selection="passed == 1",
                             **WINDOW), reference)  # fmt: skip
    _same_scan(scan_spectrum(own_file, model, tree="alp", mass="m_gg * 1000 / 1000", **WINDOW), reference)
    # a branch of several candidates per entry gives them all: those beyond 5 GeV are outside every window
    _same_scan(scan_spectrum(own_file, model, tree="alp", mass="m_three", **WINDOW), reference)
    _same_scan(scan_spectrum(own_file, model, tree="alp", mass="m_jagged", **WINDOW), reference)
    _same_scan(scan_spectrum(own_file, model, tree="alp", mass="m_jagged[:, 0]", **WINDOW), reference)
    cut = scan_spectrum(own_file, model, tree="alp", mass="m_gg", selection="m_gg > 2", start=1.0, stop=1.1)
    assert set(cut["fit_status"]) == {"empty window (0 candidates)"}


def test_an_uproot_tree_and_tables_are_scanned_alike(model, own_file, masses, reference):
    with uproot.open(own_file) as file:
        _same_scan(scan_spectrum(file["alp"], model, mass="m_gg", **WINDOW), reference)
        _same_scan(scan_spectrum(file["alp"], model, mass="m_three[:, 0]", **WINDOW), reference)
        _same_scan(scan_spectrum(file, model, tree="alp", mass="m_gg", **WINDOW), reference)
    _same_scan(scan_spectrum({"m": masses}, model, mass="m", **WINDOW), reference)
    records = np.zeros(len(masses), dtype=[("m", "f8"), ("flag", "i4")])
    records["m"] = masses
    _same_scan(scan_spectrum(records, model, mass="m", selection="flag == 0", **WINDOW), reference)
    pd = pytest.importorskip("pandas")
    _same_scan(scan_spectrum(pd.DataFrame({"mass_mev": 1000 * masses}), model, mass="mass_mev / 1000", **WINDOW),
               reference)  # fmt: skip
    # without mass= the signal model's mass variable and selection, as for bumphunt's own ntuples
    own = {"m_gg_fit": np.stack([masses, masses + 5.0], axis=1), "fit_status": np.zeros(len(masses))}
    _same_scan(scan_spectrum(own, model, **WINDOW), reference)


def test_missing_trees_branches_and_bad_expressions_are_one_line(model, own_file, masses):
    with pytest.raises(NtupleError, match=pattern("scan-spectrum-no-tree", path=own_file, found="alp")):
        scan_spectrum(own_file, model, **WINDOW)
    with pytest.raises(NtupleError, match=re.escape(f"{own_file}: no tree 'event' (found: alp)")):
        scan_spectrum(own_file, model, tree="event", mass="m_gg", **WINDOW)
    where = f"{own_file}: tree 'alp'"
    with pytest.raises(NtupleError, match=pattern("scan-spectrum-no-branch", where=where, name="mgg", mass="mgg",
                                                  hint="did you mean 'm_gg'?")):  # fmt: skip
        scan_spectrum(own_file, model, tree="alp", mass="mgg", **WINDOW)
    with uproot.open(own_file) as file:  # without mass=, the signal model's mass variable
        pattern_ = pattern("scan-spectrum-no-branch", where=where, name="m_gg_fit", mass="m_gg_fit",
                           hint="did you mean 'm_gg'?")  # fmt: skip
        with pytest.raises(NtupleError, match=pattern_):
            scan_spectrum(file["alp"], model, **WINDOW)
    with pytest.raises(NtupleError, match=re.escape(f"{where} has no branch 'x' (named by mass='x / 1000'); it has "
                                                    "m_gg, m_jagged, m_three, passed")):  # fmt: skip
        scan_spectrum(own_file, model, tree="alp", mass="x / 1000", **WINDOW)
    for expression, part in [("m_gg.sum()", "m_gg.sum()"), ("__import__('os')", "__import__('os')"),
                             ("m_gg if m_gg else 0", "m_gg if m_gg else 0")]:  # fmt: skip
        with pytest.raises(ConfigError, match=pattern("scan-spectrum-bad-expression", mass=expression, part=part)):
            scan_spectrum(own_file, model, tree="alp", mass=expression, **WINDOW)
    with pytest.raises(ConfigError, match=re.escape("mass='m_three[:, 5]': cannot take m_three[:, 5] (index 5 is out")):
        scan_spectrum(own_file, model, tree="alp", mass="m_three[:, 5]", **WINDOW)
    with pytest.raises(BumphuntError, match="^the table: mass='m' gives str values, not masses$"):
        scan_spectrum({"m": np.array(["1.0", "1.1"])}, model, mass="m", **WINDOW)
    with pytest.raises(BumphuntError, match="^mass= applies to a ROOT file, TTree or table, not to data of type "
                                            "ndarray$"):  # fmt: skip
        scan_spectrum(masses, model, mass="m", **WINDOW)
    with pytest.raises(BumphuntError, match="^tree= names a tree in a ROOT file; the data are a tree or table"):
        scan_spectrum({"m": masses}, model, tree="alp", mass="m", **WINDOW)


# -- scan_spectrum: masses in MeV, wide bins, arrays that are no list of masses -----------------


def test_masses_in_mev_are_refused_or_warned_about(model, masses, caplog):
    in_mev = 1000.0 * masses
    median = f"{np.median(in_mev):.6g}"
    refused = pattern("scan-spectrum-mev", median=median, ceiling="sqrt(s) = 10.5800 GeV")
    with pytest.raises(BumphuntError, match=refused):
        scan_spectrum(in_mev, model, **WINDOW)
    any_median = pattern("scan-spectrum-mev", median="MEDIAN", ceiling="sqrt(s) = 10.5800 GeV")
    with pytest.raises(BumphuntError, match=any_median.replace("MEDIAN", r"\d+(\.\d+)?")):
        scan_spectrum(hist.Hist(hist.axis.Regular(3000, 0.0, 3000.0)).fill(in_mev), model, **WINDOW)
    # a signal model without sqrt(s): every candidate above 1000 x stop
    without = synthetic_shape_model()
    del without.settings["sqrt_s"]
    with pytest.raises(BumphuntError, match=pattern("scan-spectrum-mev", median=f"{np.median(in_mev) + 1000:.6g}",
                                                    ceiling="1000 x stop = 1100 GeV")):  # fmt: skip
        scan_spectrum(in_mev + 1000.0, without, **WINDOW)
    # a few candidates below sqrt(s): only likely, a warning, and the scan goes on
    likely = np.concatenate([in_mev, masses[:2000]])  # an odd number again
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        result = scan_spectrum(likely, model, **WINDOW)
    share = f"{100 * len(in_mev) / len(likely):.3g}"
    expected = message("scan-spectrum-mev-likely", median=f"{np.median(likely):.6g}", percent=share,
                       ceiling="sqrt(s) = 10.5800 GeV")  # fmt: skip
    assert expected in [r.getMessage() for r in caplog.records]
    assert len(result) > 10
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        scan_spectrum(masses, model, **WINDOW)
    assert not [r for r in caplog.records if "MeV" in r.getMessage()]


def test_the_analysis_scan_refuses_a_data_file_in_mev(tmp_path, masses):
    config = load_config(None, {"output_dir": str(tmp_path / "out")})
    sqrt_s = Beams.from_config(config).sqrt_s
    shapes = synthetic_shape_model(sqrt_s=sqrt_s).save(tmp_path / "signal_shapes.json")
    data = tmp_path / "data.root"
    with uproot.recreate(data) as file:
        file["events"] = {"m_gg_fit": 1000.0 * masses, "fit_status": np.zeros(len(masses), dtype=np.int32)}
    settings = {"scan.data": str(data), "scan.shapes": str(shapes), "scan.global_toys": 0, "scan.plots": False,
                "scan.start": 1.0, "scan.stop": 1.1}  # fmt: skip
    config = load_config(None, {"output_dir": str(tmp_path / "out"), **settings})
    refused = pattern("scan-spectrum-mev", median=f"{np.median(1000.0 * masses):.6g}",
                      ceiling=f"sqrt(s) = {sqrt_s:.4f} GeV")  # fmt: skip
    with pytest.raises(BumphuntError, match=refused):
        run_scan(config, progress=False)


def test_histogram_bins_wider_than_a_third_of_the_resolution_are_warned_about(model, masses, caplog):
    coarse = hist.Hist(hist.axis.Regular(15, 0.0, 3.0)).fill(masses)  # 0.2 GeV bins
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        result = scan_spectrum(coarse, model, **WINDOW)
    sigma = float(model.resolution(1.1))  # at the centre of the bin 1.0-1.2 GeV, the widest against sigma
    expected = message("scan-spectrum-wide-bins", width="0.2", mass="1.1", sigma=f"{sigma:.3g}",
                       limit=f"{BIN_WIDTH_RESOLUTIONS * sigma:.2g}")  # fmt: skip
    assert expected in [r.getMessage() for r in caplog.records]
    assert not result.ok.any()  # what the warning explains: every fit fails
    # bins of a tenth of the resolution: no warning, the unbinned numbers
    caplog.clear()
    fine = hist.Hist(hist.axis.Regular(3000, 0.0, 3.0)).fill(masses)
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        binned = scan_spectrum(fine, model, **WINDOW)
    assert not [r for r in caplog.records if "histogram bins" in r.getMessage()]
    assert binned.ok.all()
    # the rule is per bin against the resolution at its mass: a coarse bin outside the range is no matter
    edges = np.concatenate([np.linspace(0.0, 1.5, 1501), [3.0]])
    mixed = hist.Hist(hist.axis.Variable(edges)).fill(masses)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        scan_spectrum(mixed, model, **WINDOW)
    assert not [r for r in caplog.records if "histogram bins" in r.getMessage()]


def test_arrays_that_are_no_list_of_masses_are_refused(model, masses):
    two_d = np.stack([masses, masses], axis=1)
    with pytest.raises(BumphuntError, match=pattern("scan-spectrum-2d", shape=two_d.shape)):
        scan_spectrum(two_d, model, **WINDOW)
    with pytest.raises(BumphuntError, match=pattern("scan-spectrum-2d", shape=(3, 1))):
        scan_spectrum([[1.0], [1.05], [1.1]], model, **WINDOW)
    with pytest.raises(BumphuntError, match=pattern("scan-spectrum-not-numbers", type="list", kind="str")):
        scan_spectrum(["a", "b"], model, **WINDOW)
    with pytest.raises(BumphuntError, match=pattern("scan-spectrum-not-numbers", type="list", kind="object")):
        scan_spectrum([1.0, None], model, **WINDOW)
    with pytest.raises(BumphuntError, match=pattern("scan-spectrum-not-numbers", type="list",
                                                    kind="values of unequal shapes")):  # fmt: skip
        scan_spectrum([1.0, [1.0, 2.0]], model, **WINDOW)
    with pytest.raises(BumphuntError, match=pattern("scan-spectrum-not-numbers", type="ndarray", kind="bool")):
        scan_spectrum(masses > 1.0, model, **WINDOW)


# -- read_table: every table bumphunt writes ---------------------------------------------------


@pytest.fixture(scope="module")
def tables(tmp_path_factory, model, masses):
    """A scan with limits, its count twin, and the exclusion stage run on the scan's table."""
    folder = tmp_path_factory.mktemp("tables")
    scan = scan_spectrum(masses, model, start=1.0, stop=1.1, global_toys=0, luminosity=445.0, step_sigmas=2.0)
    _, scan_json = write_table(scan, folder / "scan")
    count = ScanResult.from_rows(scan.rows(), global_significance=scan.global_significance, vetoed={},
                                 settings={"signal_fraction": 0.9}, kind="count")  # fmt: skip
    _, count_json = write_table(count, folder / "count")
    shapes = model.save(folder / "signal_shapes.json")
    config = load_config(None, {"output_dir": str(folder / "out"), "exclusion.plots": False})
    exclusion = run_exclusion(config, folder / "exclusion", scan_table=scan_json, shapes=shapes, progress=False)
    return folder, scan, scan_json, count_json, exclusion


def test_read_table_reads_the_scan_count_and_exclusion_tables(tables):
    _, scan, scan_json, count_json, exclusion = tables
    back = read_table(scan_json)
    assert isinstance(back, ScanResult) and back.kind == "scan"
    assert back.rows() == scan.rows() and back.global_significance == scan.global_significance
    counted = read_table(count_json)
    assert isinstance(counted, ScanResult) and counted.kind == "count" and counted.rows() == scan.rows()
    converted = read_table(exclusion.table_json)
    assert isinstance(converted, ExclusionResult) and converted.kind == "exclusion"
    assert converted.rows() == exclusion.result.rows() and len(converted) == len(scan)
    assert list(converted.columns) == list(EXCLUSION_COLUMNS)
    assert converted.settings["luminosity_pb_inv"] == 445.0 == exclusion.result.settings["luminosity_pb_inv"]
    assert np.isfinite(converted["g_obs"]).all()
    assert json.loads(scan_json.read_text())["table"] == "scan"
    assert json.loads(exclusion.table_json.read_text())["table"] == "exclusion"
    # one reader, exported where a user looks
    assert bumphunt.read_table is read_table and bumphunt.read_scan_table is read_table
    assert bumphunt.ExclusionResult is ExclusionResult is ReExportedExclusionResult


def test_tables_written_before_the_table_key_are_recognised(tables, tmp_path):
    _, scan, scan_json, count_json, exclusion = tables
    for path, kind in [(scan_json, "scan"), (count_json, "count"), (exclusion.table_json, "exclusion")]:
        document = json.loads(path.read_text())
        del document["table"]
        old = tmp_path / f"old_{kind}.json"
        old.write_text(json.dumps(document))
        again = read_table(old)
        assert again.kind == kind and again.rows() == read_table(path).rows()


def test_the_plots_draw_what_read_table_returns(tables):
    import matplotlib.pyplot as plt

    _, _, scan_json, count_json, exclusion = tables
    scan, count, converted = read_table(scan_json), read_table(count_json), read_table(exclusion.table_json)
    _, axes = plt.subplots(2, 3)
    assert plot_brazil(scan, ax=axes[0, 0]) is axes[0, 0]
    assert plot_local_significance(scan, ax=axes[0, 1]) is axes[0, 1]
    assert plot_brazil(count, ax=axes[0, 2]) is axes[0, 2]
    assert plot_local_significance(count, ax=axes[1, 0]) is axes[1, 0]
    assert plot_coupling_exclusion(converted, ax=axes[1, 1]) is axes[1, 1]
    assert plot_cross_section_limits(converted, ax=axes[1, 2]) is axes[1, 2]
    assert axes[1, 1].get_lines() and axes[0, 0].get_lines()
    with pytest.raises(BumphuntError, match=pattern("plot-other-table", figure="plot_brazil", kind="exclusion",
                                                    columns="ul_exp_m2, ul_exp_m1, ul_exp, ul_exp_p1, ul_exp_p2, "
                                                            "ul_obs")):  # fmt: skip
        plot_brazil(converted)
    with pytest.raises(BumphuntError, match=pattern("plot-other-table", figure="plot_local_significance",
                                                    kind="exclusion", columns="z_local")):  # fmt: skip
        plot_local_significance(converted)
    with pytest.raises(BumphuntError, match=pattern("plot-other-table", figure="plot_coupling_exclusion",
                                                    kind="scan", columns="g_exp_m2, g_exp_m1, g_exp, g_exp_p1, "
                                                                         "g_exp_p2, g_obs")):  # fmt: skip
        plot_coupling_exclusion(scan)
    plt.close("all")


def test_files_that_are_no_table_get_one_line_naming_them(tables, tmp_path):
    folder, _, scan_json, _, exclusion = tables
    missing = tmp_path / "results.json"
    with pytest.raises(BumphuntError, match=pattern("table-missing", path=missing)):
        read_table(missing)
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    with pytest.raises(BumphuntError, match=pattern("table-empty", path=empty)):
        read_table(empty)
    for csv in (folder / "scan" / "results.csv", exclusion.table_csv):
        with pytest.raises(BumphuntError, match=pattern("table-csv", path=csv, json=f"{csv.stem}.json")):
            read_table(csv)
    text = scan_json.read_text()
    truncated = tmp_path / "truncated.json"
    for cut in (len(text) // 3, len(text) // 2 + 7, len(text) - 3):
        truncated.write_text(text[:cut])
        line = text[:cut].rstrip().count("\n") + 1
        with pytest.raises(BumphuntError, match=pattern("table-truncated", path=truncated, line=line)):
            read_table(truncated)
    garbage = tmp_path / "notes.json"
    garbage.write_text("limits look fine\n")
    with pytest.raises(BumphuntError, match=pattern("table-not-json", path=garbage, reason="Expecting value",
                                                    line=1, column=1)):  # fmt: skip
        read_table(garbage)
    other = tmp_path / "other.json"
    for document, what in [({}, "an empty JSON object"), ([1, 2], "a JSON array"),
                           ({"format": "bumphunt-signal-shapes", "version": 3, "settings": {}},
                            "a JSON object with the keys 'format', 'version', 'settings'"),
                           ({"table": "fom", "rows": []}, "a JSON object with the keys 'table', 'rows'")]:  # fmt: skip
        other.write_text(json.dumps(document))
        with pytest.raises(BumphuntError, match=pattern("table-other-json", path=other, what=what)):
            read_table(other)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(BumphuntError, match=pattern("table-other-json", path=binary, what="a binary file")):
        read_table(binary)
    broken = tmp_path / "broken.json"
    document = json.loads(text)
    for change, kind, reason in [
        ({"global_significance": None}, "scan", "'NoneType' object is not iterable"),
        ({"rows": [{"n_sig": 1.0}]}, "scan", "'rows' is not a list of rows with a 'mass'"),
        ({"global_significance": {"z_local": 1.0}}, "scan", "unknown key 'z_local' in 'global_significance'"),
        ({"rows": [{"mass": "heavy"}]}, "scan", "could not convert string to float: 'heavy'"),
    ]:
        broken.write_text(json.dumps({**document, **change}))
        with pytest.raises(BumphuntError, match=pattern("table-broken", path=broken, kind=kind, reason=reason)):
            read_table(broken)
    del document["global_significance"]
    broken.write_text(json.dumps(document))
    with pytest.raises(BumphuntError, match=pattern("table-broken", path=broken, kind="scan",
                                                    reason="missing key 'global_significance'")):  # fmt: skip
        read_table(broken)
    with pytest.raises(BumphuntError, match=re.escape(f"{tmp_path}: a folder, not a table file")):
        read_table(tmp_path)


def test_the_exclusion_stage_converts_scan_tables_only(tables, tmp_path):
    _, _, _, count_json, exclusion = tables
    config = load_config(None, {"output_dir": str(tmp_path / "out")})
    with pytest.raises(BumphuntError, match=pattern("exclusion-not-a-scan-table", path=exclusion.table_json)):
        run_exclusion(config, tmp_path / "again", scan_table=exclusion.table_json, progress=False)
    notes = tmp_path / "notes.json"
    notes.write_text("[]")
    with pytest.raises(BumphuntError, match=pattern("table-other-json", path=notes, what="a JSON array")):
        run_exclusion(config, tmp_path / "again", scan_table=notes, progress=False)
    assert not (tmp_path / "again").exists()
