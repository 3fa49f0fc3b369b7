"""The selection stage on a small analysis: friend ntuples, working point, figure-of-merit table,
saved network, and the shapes and the scan on the selected events."""

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from bumphunt.cuts import evaluate_cut
from bumphunt.errors import BumphuntError, ConfigError, NtupleError
from bumphunt.kinematics import Beams
from bumphunt.kinfit import run_kinfit
from bumphunt.layout import OutputLayout
from bumphunt.ntuple import NtupleWriter, friend_fingerprint, num_entries, read_metadata, read_ntuple
from bumphunt.select.features import FEATURE_BRANCHES, FEATURES, compute_features
from bumphunt.select.fom import FomGrid
from bumphunt.select.network import PunziNet
from bumphunt.select.stage import FRIEND_BRANCHES, choose_working_point, run_select
from bumphunt.simulation import run_simulation

from .bad_inputs import pattern
from .helpers import PRESELECTION, small_config

SELECT = {
    "simulation.signal.masses": {"start": 0.5, "stop": 6.5, "step": 0.5},
    "simulation.signal.events_per_mass": 3000,
    "simulation.workers": 2,
    "scan.start": 0.4,
    "scan.stop": 6.6,
    "select.n_held_out": 3,
    "select.max_signal_per_mass": 800,
    "select.network": {"hidden": [16, 16, 16], "bce_epochs": 8, "punzi_epochs": 8, "punzi_batch": 5000},
}


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """A small analysis simulated, fitted and selected once for the module."""
    tmp_path = tmp_path_factory.mktemp("select")
    config = small_config(tmp_path, **SELECT)
    run_simulation(config, progress=False)
    run_kinfit(config, progress=False)
    return config, run_select(config, progress=False)


@pytest.mark.slow
def test_friend_ntuples_hold_the_score_and_the_decision(selected):
    config, summary = selected
    layout = OutputLayout.from_config(config)
    assert sorted(p.stem for p in summary.friends) == sorted(p.stem for p in layout.existing_ntuples("kinfit"))
    net = PunziNet.load(summary.model_path)
    assert net.working_point == summary.working_point
    beams = Beams.from_config(config)
    for sample in ("alp", "ggg"):
        source = layout.ntuple("kinfit", sample)
        friend = layout.ntuple("select", sample)
        assert num_entries(friend) == num_entries(source)
        events = read_ntuple(source, sorted({"event_id", *FEATURE_BRANCHES, "fit_status", "fit_pvalue"}),
                             friends=[friend])  # fmt: skip
        scored = read_ntuple(friend)
        assert_array_equal(scored["event_id"], events["event_id"])
        # the reloaded network gives the stored scores, and the decision is pre-selection and score >= cut
        features = compute_features({k: events[k] for k in FEATURE_BRANCHES}, beams)
        expected = net.score(features.values).astype(np.float32)
        assert_array_equal(scored["punzi_score"], expected)
        passed = evaluate_cut(PRESELECTION, events, len(expected)) & (net.score(features.values) >= net.working_point)
        assert_array_equal(scored["punzi_selected"], passed.astype(np.int32))
        assert 0 < passed.sum() < len(passed)
        assert read_metadata(friend)["working_point"] == summary.working_point


@pytest.mark.slow
def test_table_and_plots(selected):
    config, summary = selected
    layout = OutputLayout.from_config(config)
    rows = summary.table["masses"]
    assert [r["mass"] for r in rows] == pytest.approx(np.arange(0.5, 6.51, 0.5))
    assert sum(r["held_out"] for r in rows) == 3
    for row in rows:
        # the network's cut helps on test events: never above the pre-selection by more than noise
        assert 0 < row["efficiency_punzi"] <= row["efficiency_preselection"]
        assert row["background_punzi"] <= row["background_preselection"]
        assert math.isfinite(row["sigma_min_bce_best_cut"]) and 0 <= row["cut_bce"] <= 1
        assert 0 <= row["cut_bdt"] <= 1
    # one cut per region; on a sample this small the BDTs may keep no test signal at some masses
    assert len(set(r["cut_bdt"] for r in rows)) <= 4 == len(summary.table["bdt_regions"]) - 1
    assert sum(math.isfinite(r["sigma_min_bdt_best_cut"]) for r in rows if not r["held_out"]) >= 5
    importance = summary.table["feature_importance"]
    assert list(importance) == list(FEATURES) and all(math.isfinite(v["auc_drop"]) for v in importance.values())
    assert max(v["auc_drop"] for v in importance.values()) > 0.01  # some feature matters
    assert summary.mean_sigma_min("sigma_min_punzi", held_out=False) < summary.mean_sigma_min(
        "sigma_min_preselection", held_out=False
    )
    stored = json.loads(layout.select_table_json.read_text())
    assert stored["working_point"] == summary.working_point and stored["features"][0] == "E_high"
    assert layout.select_table_csv.read_text().splitlines()[0].startswith("mass,held_out,resolution")
    assert {p.name for p in summary.plots} == {"fom.png", "training.png", "scores.png"}
    assert all(p.stat().st_size > 10_000 for p in summary.plots)


@pytest.mark.slow
def test_a_saved_network_applies_to_the_same_scores(selected, tmp_path):
    config, summary = selected
    layout = OutputLayout.from_config(config)
    again = run_select(config, tmp_path / "applied", model_path=summary.model_path, progress=False)
    assert again.working_point == summary.working_point
    for sample in ("alp", "pi0_gamma"):
        assert_array_equal(read_ntuple(tmp_path / "applied" / f"{sample}.root")["punzi_score"],
                           read_ntuple(layout.ntuple("select", sample))["punzi_score"])  # fmt: skip
    # the table of an applied network has no BCE baseline (none was trained)
    assert "sigma_min_bce_best_cut" not in again.table["masses"][0]


@pytest.mark.slow
def test_training_is_reproducible(selected, tmp_path):
    config, summary = selected
    again = run_select(config, tmp_path / "again", progress=False)
    assert again.working_point == summary.working_point
    for row, other in zip(summary.table["masses"], again.table["masses"]):
        assert other["sigma_min_punzi"] == pytest.approx(row["sigma_min_punzi"], rel=1e-6)


@pytest.mark.slow
def test_shapes_and_scan_see_the_selected_events(selected, tmp_path):
    from bumphunt.scan import run_scan
    from bumphunt.shapes import run_shapes

    config, _ = selected
    selected_config = dict(config, shapes=dict(config["shapes"], selection="punzi_selected == 1", n_held_out=2))
    shapes = run_shapes(selected_config, output_dir=tmp_path / "shapes", progress=False)
    plain = run_shapes(dict(config, shapes=dict(config["shapes"], n_held_out=2)), output_dir=tmp_path / "plain",
                       progress=False)  # fmt: skip
    for fit, reference in zip(shapes.model.fits, plain.model.fits):
        assert fit.values["efficiency"] < reference.values["efficiency"]
    scan_config = dict(selected_config, scan=dict(config["scan"], shapes=str(shapes.path), start=1.0, stop=6.0,
                                                  step_sigmas=20.0, global_toys=0, plots=False))  # fmt: skip
    result = run_scan(scan_config, output_dir=tmp_path / "scan", progress=False).result
    assert len(result) > 3 and result.ok.all()


def test_working_point_minimises_the_mean_over_windows():
    sigma = np.array([[3.0, 1.0], [1.0, 2.0], [2.0, 2.5], [np.inf, 0.1]])
    grid = FomGrid(np.array([0.0, 0.3, 0.6, 0.9]), np.ones_like(sigma), np.ones_like(sigma), sigma)
    assert choose_working_point(grid) == 0.3  # means 2, 1.5, 2.25, inf
    with pytest.raises(BumphuntError, match="keeps signal in every training window"):
        choose_working_point(FomGrid(grid.cuts[:1], sigma[3:], sigma[3:], sigma[3:]))


def test_missing_inputs_are_one_line_errors(tmp_path):
    config = small_config(tmp_path)
    with pytest.raises(NtupleError, match="no signal ntuple after the kinematic fit"):
        run_select(config, progress=False)
    with pytest.raises(
        ConfigError, match=pattern("selection-unknown-network-key", name="bce_epoch", close="bce_epochs")
    ):
        small_config(tmp_path, **{"select.network": {"bce_epoch": 3}})


@pytest.mark.slow
def test_shapes_without_the_selection_and_stale_friends_are_refused(selected, tmp_path):
    from bumphunt.shapes import run_shapes

    config, _ = selected
    layout = OutputLayout.from_config(config)
    elsewhere = dict(config, output_dir=str(tmp_path))
    (tmp_path / "kinfit").mkdir()
    (tmp_path / "kinfit" / "alp.root").symlink_to(layout.ntuple("kinfit", "alp"))
    cut = dict(config["shapes"], selection="punzi_selected == 1")
    with pytest.raises(NtupleError, match=pattern("selection-not-run", path=tmp_path / "select" / "alp.root",
                                                  branches="punzi_selected")):  # fmt: skip
        run_shapes(dict(elsewhere, shapes=cut), progress=False)
    # a friend made from another version of the kinematic-fit ntuple
    (tmp_path / "select").mkdir()
    source = read_ntuple(layout.ntuple("select", "alp"))
    with NtupleWriter(tmp_path / "select" / "alp.root", FRIEND_BRANCHES) as writer:
        writer.extend(source)
        writer.metadata = {"friend_of": dict(friend_fingerprint(layout.ntuple("kinfit", "alp")), entries=1)}
    with pytest.raises(NtupleError, match=pattern("selection-stale-friend", friend=tmp_path / "select" / "alp.root",
                                                  path=tmp_path / "kinfit" / "alp.root")):  # fmt: skip
        run_shapes(dict(elsewhere, shapes=cut), progress=False)


@pytest.mark.slow
def test_mass_margin_and_normalised_loss(selected, tmp_path):
    """Masses outside the scan range train (and are reported) with a margin; the Punzi stage
    trains on the normalised loss (tests/test_fom.py checks the normalisation itself)."""
    config, _ = selected
    options = dict(config["select"], mass_margin=0.6, normalise_loss=True)
    config = dict(config, select=options, scan=dict(config["scan"], start=1.2, stop=5.8))
    summary = run_select(config, tmp_path / "margin", progress=False)
    masses = [r["mass"] for r in summary.table["masses"]]
    assert min(masses) < config["scan"]["start"] and max(masses) > config["scan"]["stop"]
    punzi = PunziNet.load(summary.model_path).history["punzi"]
    assert punzi.best < punzi.initial and summary.table["settings"]["normalise_loss"]


def test_bootstrap_spreads_leave_out_replicas_without_signal():
    """A replica with an infinite mean sigma_min (no signal in a window) leaves the spreads of
    the others, counted, without a NaN or a numpy warning."""
    import warnings

    from bumphunt.select.stage import replica_spreads

    rng = np.random.default_rng(5)
    means = np.column_stack([rng.normal(1.0, 0.1, 200), rng.normal(2.0, 0.2, 200)])
    finite = replica_spreads(means)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spreads = replica_spreads(np.vstack([means, [[np.inf, 2.0], [1.0, np.inf]]]))
    assert spreads == finite | {"replicas_not_finite": 2} and finite["replicas_not_finite"] == 0
    assert finite["std_sigma_min_punzi"] == pytest.approx(0.1, rel=0.15)
    assert finite["std_ratio_punzi_bce"] == pytest.approx(np.std(means[:, 0] / means[:, 1], ddof=1), rel=1e-12)
    assert math.isnan(replica_spreads(np.array([[1.0, 2.0], [np.inf, 2.0]]))["std_ratio_punzi_bce"])
