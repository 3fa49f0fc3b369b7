"""The counting experiment end to end on a small analysis: windows, background, efficiency,
pseudo-data, the table and plots, the CLI, bad inputs."""

import json
import logging
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bumphunt.cli import main
from bumphunt.count import Events, bootstrap_counts, run_count, signal_window
from bumphunt.coupling import prompt_exclusion
from bumphunt.cuts import branches_used, evaluate_cut
from bumphunt.errors import BumphuntError, NtupleError
from bumphunt.kinematics import Beams
from bumphunt.kinfit import run_kinfit
from bumphunt.layout import OutputLayout
from bumphunt.ntuple import BACKGROUND_SAMPLES, read_metadata, read_ntuple, truth_matched_pairs
from bumphunt.results import COLUMNS, read_table
from bumphunt.simulation import run_simulation

from .bad_inputs import message, pattern
from .helpers import small_config


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """A small analysis after the kinematic fit: ALPs at 0.5, 3.5 and 6.5 GeV, every background."""
    config = small_config(tmp_path_factory.mktemp("count"), **{"count.expected_toys": 40})
    run_simulation(config, progress=False)
    run_kinfit(config, progress=False)
    return config


@pytest.fixture(scope="module")
def counted(analysis, tmp_path_factory):
    return run_count(analysis, tmp_path_factory.mktemp("counted"), progress=False)


def _selected(path, config, branches):
    selection = config["shapes"]["selection"]
    events = read_ntuple(path, sorted(set(branches) | branches_used(selection)))
    keep = evaluate_cut(selection, events, len(events[branches[0]]))
    return {name: events[name][keep] for name in branches}


def _truth(config, mass):
    alp = _selected(OutputLayout.from_config(config).ntuple("kinfit", "alp"), config,
                    ["gen_mass", "m_gg_fit", "photon_origin"])  # fmt: skip
    at = np.isclose(alp["gen_mass"], mass)
    return alp["m_gg_fit"][at][truth_matched_pairs(alp["photon_origin"][at])]


def test_window_holds_the_signal_fraction_with_equal_tails(analysis, counted):
    assert [w.mass for w in counted.windows] == [0.5, 3.5, 6.5]
    for window in counted.windows:
        truth = _truth(analysis, window.mass)
        assert len(truth) == window.truth_candidates > 1000
        # at least 90 % inside (at most two candidates more), equal tails of floor(5 % N) each
        inside = np.count_nonzero((truth >= window.low) & (truth <= window.high))
        assert 0.9 * len(truth) <= inside <= 0.9 * len(truth) + 2
        tail = math.floor(0.05 * len(truth))
        assert np.count_nonzero(truth < window.low) == np.count_nonzero(truth > window.high) == tail
        assert window.signal_fraction == inside / len(truth)
        # a window made of half the signal holds 90 % of the other half (binomial spread)
        low, high = signal_window(truth[::2], 0.9)
        held_out = truth[1::2]
        sigma = math.sqrt(0.9 * 0.1 / len(held_out))
        assert np.mean((held_out >= low) & (held_out <= high)) == pytest.approx(0.9, abs=4 * sigma)


def test_background_and_efficiency_come_from_the_weighted_simulation(analysis, counted):
    layout = OutputLayout.from_config(analysis)
    backgrounds = [
        _selected(p, analysis, ["m_gg_fit", "weight"]) for p in layout.existing_ntuples("kinfit", BACKGROUND_SAMPLES)
    ]
    alp_path = layout.ntuple("kinfit", "alp")
    alp = _selected(alp_path, analysis, ["gen_mass", "m_gg_fit", "weight"])
    metadata = read_metadata(alp_path)
    for window in counted.windows:
        inside = [np.any((b["m_gg_fit"] >= window.low) & (b["m_gg_fit"] <= window.high), axis=1) for b in backgrounds]
        weights = np.concatenate([b["weight"][k] for b, k in zip(backgrounds, inside)])
        assert window.background == pytest.approx(weights.sum(), rel=1e-12)
        assert window.background_mc_error == pytest.approx(np.sqrt((weights**2).sum()), rel=1e-12)
        assert window.tau == pytest.approx(
            weights.sum() / (weights**2).sum(), rel=1e-12
        )  # no systematic: tau = b / sigma^2
        at = np.isclose(alp["gen_mass"], window.mass)
        signal = np.any((alp["m_gg_fit"][at] >= window.low) & (alp["m_gg_fit"][at] <= window.high), axis=1)
        born = next(m["born_cross_section_pb"] for m in metadata["masses"] if np.isclose(m["mass"], window.mass))
        assert window.efficiency == pytest.approx(
            alp["weight"][at][signal].sum() / (born * metadata["luminosity_pb_inv"])
        )
        assert 0.3 < window.efficiency < 0.9 * 0.95  # at most 90 % of the selected, pre-selection about 60 %


def test_table_has_the_scans_columns_and_conversion(analysis, counted):
    result = read_table(counted.table_json)
    assert list(json.loads(counted.table_json.read_text())["columns"]) == list(COLUMNS)
    assert counted.table_csv.read_text().splitlines()[0].split(",") == list(COLUMNS)
    assert list(result.masses) == [0.5, 3.5, 6.5] and result.ok.all()
    sqrt_s = Beams.from_config(analysis).sqrt_s
    for row, window in zip(result.rows(), counted.windows):
        assert row["ul_exp_m2"] <= row["ul_exp_m1"] <= row["ul_exp"] <= row["ul_exp_p1"] <= row["ul_exp_p2"]
        assert row["n_events"] == window.n_observed
        assert row["n_sig"] == pytest.approx(window.n_observed - window.background)
        conversion = prompt_exclusion(row["mass"], row["ul_obs"], window.efficiency, analysis["luminosity"], sqrt_s)
        assert row["xsec_ul_pb"] == pytest.approx(conversion["xsec_ul_pb"], rel=1e-7)
        assert row["g_ul_gev"] == pytest.approx(conversion["g_ul_gev"], rel=1e-7)
    assert {p.name for p in counted.plots} == {"upper_limits.png", "local_significance.png"}
    assert counted.windows_csv.read_text().splitlines()[0].startswith("mass,low,high,")
    # pseudo-data are Poisson with the background's mean: counts far from it would be a bug
    for window in counted.windows:
        assert abs(window.n_observed - window.background) < 5 * math.sqrt(
            window.background + window.background_mc_error**2
        )


def test_counting_is_reproducible_and_seeded(analysis, counted, tmp_path):
    again = run_count(analysis, tmp_path / "again", progress=False)
    assert again.table_csv.read_text() == counted.table_csv.read_text()
    other = run_count({**analysis, "seed": analysis["seed"] + 1}, tmp_path / "other", progress=False)
    assert [w.n_observed for w in other.windows] != [w.n_observed for w in counted.windows]


def test_bootstrap_counts_are_poisson_with_the_background_mean():
    rng = np.random.default_rng(2)
    events = Events(rng.uniform(0.0, 2.0, size=(3000, 3)), rng.uniform(0.0, 0.3, size=3000))
    windows = [events.in_window(0.5, 0.6), events.in_window(0.55, 0.65)]
    seeds = np.random.SeedSequence(4).spawn(2000)
    counts = bootstrap_counts(events, windows, seeds)
    for column, window in enumerate(windows):
        mean = events.weights[window].sum()
        assert counts[:, column].mean() == pytest.approx(mean, abs=4 * math.sqrt(mean / len(seeds)))
        # variance of a Poisson count: relative spread of a sample variance is sqrt(2 / N)
        assert counts[:, column].var() == pytest.approx(mean, rel=4 * math.sqrt(2 / len(seeds)))
    shared = events.weights[np.intersect1d(*windows)].sum()
    covariance = np.cov(counts.T)[0, 1]
    assert covariance == pytest.approx(shared, abs=4 * math.sqrt(counts[:, 0].var() * counts[:, 1].var() / len(seeds)))


def test_a_data_ntuple_is_counted_event_by_event(analysis, tmp_path):
    data = OutputLayout.from_config(analysis).ntuple("kinfit", "ggg")
    summary = run_count({**analysis, "count": {**analysis["count"], "data": str(data), "method": "asymptotic",
                                               "plots": False}}, tmp_path, progress=False)  # fmt: skip
    events = _selected(data, analysis, ["m_gg_fit"])["m_gg_fit"]
    for window in summary.windows:
        assert window.n_observed == np.count_nonzero(np.any((events >= window.low) & (events <= window.high), axis=1))
    assert summary.plots == []


def _config_file(config, tmp_path):
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_writes_the_table_and_the_brazil_plot(analysis, tmp_path):
    runner = CliRunner()
    output = tmp_path / "cli"
    settings = ["count.method=asymptotic", "count.confidence_level=0.9", "count.limit=clsb"]
    args = ["count", "-c", str(_config_file(analysis, tmp_path)), "-o", str(output), "-q"]
    args += [part for setting in settings for part in ("--set", setting)]
    outcome = runner.invoke(main, args)
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.startswith("count: 3 masses (0 flagged)")
    for name in ("results.csv", "results.json", "windows.csv", "upper_limits.png", "local_significance.png"):
        assert (output / name).stat().st_size > 0
    table = read_table(output / "results.json")
    assert table.settings["confidence_level"] == 0.9 and table.settings["limit"] == "clsb"
    assert (table["ul_exp_m2"] <= table["ul_exp"]).all()


def test_misspelt_key_is_one_line(analysis, tmp_path):
    outcome = CliRunner().invoke(
        main, ["count", "-c", str(_config_file(analysis, tmp_path)), "--set", "count.metod=toys"]
    )
    assert outcome.exit_code == 2
    expected = message("config-unknown-key", setting="count.metod", where=" in override", close="method")
    assert outcome.output == f"bumphunt: {expected}\n"


def test_missing_ntuple_is_refused(tmp_path):
    config = small_config(tmp_path)
    alp = OutputLayout.from_config(config).ntuple("kinfit", "alp")
    with pytest.raises(NtupleError, match=pattern("count-missing-ntuple", path=alp)):
        run_count(config, progress=False)


def _with_selection(config, selection):
    return {**config, "shapes": {**config["shapes"], "selection": selection}}


def test_masses_without_selected_signal_are_flagged_or_refused(analysis, tmp_path):
    # no selected signal at 0.5 GeV: that mass is flagged, the others counted
    cut = f"({analysis['shapes']['selection']}) and (gen_mass > 1 or sample_id > 0)"
    summary = run_count(_with_selection(analysis, cut), tmp_path / "flagged", progress=False)
    result = summary.result
    assert list(result["fit_status"]) == [message("count-empty-window"), "ok", "ok"]
    assert np.isnan(result["ul_obs"][0]) and np.isfinite(result["ul_obs"][1:]).all()
    alp = OutputLayout.from_config(analysis).ntuple("kinfit", "alp")
    with pytest.raises(BumphuntError, match=pattern("count-no-signal", path=alp, start=0.2, stop=9.7,
                                                    selection="sample_id > 0")):  # fmt: skip
        run_count(_with_selection(analysis, "sample_id > 0"), tmp_path / "none", progress=False)


def test_windows_without_background_count_background_free(analysis, tmp_path, caplog):
    statistics_only = {**analysis, "systematics": {**analysis["systematics"], "sources": []}}
    with caplog.at_level(logging.WARNING, logger="bumphunt"):
        summary = run_count(_with_selection(statistics_only, "sample_id == 0"), tmp_path, progress=False)
    assert message("count-window-without-background", n=3, mass="0.5") in caplog.messages
    result = summary.result
    # no background, no events: CLs = e^-mu, the limit -ln(0.05) to the toys' precision
    toys = analysis["count"]["toys"]
    for name in ("ul_obs", "ul_exp_m2", "ul_exp", "ul_exp_p2"):
        assert result[name] == pytest.approx(np.full(3, -math.log(0.05)), abs=1.0 / (toys * 0.05) + 1e-4)
