"""The luminosity applied where weights are read: the readers rescale the stored weights, a
luminosity change reruns the selection and what follows but never the simulation or the
kinematic fit, and a stage never mixes outputs made at two luminosities."""

import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bumphunt import cli, pipeline
from bumphunt.coupling import REACH
from bumphunt.errors import BumphuntError, NtupleError
from bumphunt.exclusion.stage import exclusion_row
from bumphunt.layout import OutputLayout
from bumphunt.models.signal import ShapeModel
from bumphunt.ntuple import BRANCHES, NtupleWriter, iterate_ntuple, luminosity_scale, read_ntuple, read_selected
from bumphunt.results import read_table
from bumphunt.scan import run_scan, scan_spectrum
from bumphunt.scan.data import BackgroundModel

from .bad_inputs import message, pattern
from .test_run_copy import _stages


def _ntuple(path, metadata, n=1000):
    rng = np.random.default_rng(3)
    with NtupleWriter(path, {name: BRANCHES[name] for name in ("weight", "event_id")}) as writer:
        writer.extend({"weight": rng.random(n), "event_id": np.arange(n)})
        writer.metadata = metadata
    return path


def test_readers_bring_the_weights_to_the_asked_luminosity(tmp_path):
    path = _ntuple(tmp_path / "bkg.root", {"sample": "ggg", "luminosity_pb_inv": 445.0})
    stored = read_ntuple(path, ["weight", "event_id"])["weight"]
    assert luminosity_scale(path, 362_000.0) == 362_000.0 / 445.0
    np.testing.assert_allclose(read_ntuple(path, ["weight"], luminosity=890.0)["weight"], 2.0 * stored, rtol=1e-15)
    chunks = [c["weight"] for c in iterate_ntuple(path, ["weight"], step_size=300, luminosity=44.5)]
    np.testing.assert_allclose(np.concatenate(chunks), 0.1 * stored, rtol=1e-15)
    selected = read_selected(path, ["weight", "event_id"], "event_id < 10", luminosity=4450.0)
    np.testing.assert_allclose(selected["weight"], 10.0 * stored[:10], rtol=1e-15)
    np.testing.assert_array_equal(selected["event_id"], np.arange(10))  # only the weights change
    np.testing.assert_array_equal(read_ntuple(path, ["event_id"], luminosity=890.0)["event_id"], np.arange(1000))


def test_data_keep_their_weights_and_an_unknown_luminosity_is_refused(tmp_path):
    data = _ntuple(tmp_path / "data.root", {"sample": "data", "role": "data", "luminosity_pb_inv": 445.0})
    np.testing.assert_array_equal(
        read_ntuple(data, ["weight"], luminosity=890.0)["weight"], read_ntuple(data, ["weight"])["weight"]
    )
    bare = _ntuple(tmp_path / "bare.root", {"sample": "x"})
    with pytest.raises(NtupleError, match=pattern("weights-without-luminosity", path=bare, luminosity=890.0)):
        read_ntuple(bare, ["weight"], luminosity=890.0)
    assert read_ntuple(bare, ["event_id"], luminosity=890.0)["event_id"].size == 1000  # no weight read, no need
    with pytest.raises(NtupleError, match="must be > 0"):
        luminosity_scale(data, 0.0)


def _quick_config(folder, **settings):
    """The configuration of ``bumphunt run --quick`` writing to ``folder``, with ``settings``."""
    overrides = tuple(f"{key}={value}" for key, value in {"output_dir": folder, **settings}.items())
    return cli._load_run_config(None, overrides, True)


def test_a_stage_refuses_outputs_made_at_another_luminosity(quick_run, tmp_path):
    folder = quick_run[0]
    config = _quick_config(folder, luminosity=362_000.0)
    expected = message("stage-settings-disagree", folder=folder / "select", setting="luminosity", before="445.0",
                       stage="scan", now="362000.0")  # fmt: skip
    with pytest.raises(BumphuntError) as refused:
        run_scan(config, output_dir=tmp_path / "scan", progress=False)
    assert str(refused.value) == expected
    assert not (tmp_path / "scan").exists()  # refused before any work
    for stage in ("shapes", "exclusion", "report", pipeline.COUNT):
        if stage == "shapes":  # reads no luminosity: the selection's other settings still count
            config_other = _quick_config(folder, **{"beam.e_minus_energy": 7.1})
            with pytest.raises(BumphuntError, match=r"simulation was made with beam.e_minus_energy = 7.0, this shapes "
                               r"has 7.1: "):  # fmt: skip
                pipeline.refuse_disagreement(stage, config_other)
            continue
        with pytest.raises(BumphuntError, match=r"(select|scan) was made with luminosity = 445.0"):
            pipeline.refuse_disagreement(stage, config)
    pipeline.refuse_disagreement("scan", _quick_config(folder, seed=5, **{"scan.start": 2.0}))  # own keys: agree
    config_file = tmp_path / "quick.yaml"
    config_file.write_text(yaml.safe_dump(_quick_config(folder)))
    refused_cli = CliRunner().invoke(cli.main, ["scan", "-c", str(config_file), "-q", "-o", str(tmp_path / "cli"),
                                                "--set", "luminosity=362000"])  # fmt: skip
    assert refused_cli.exit_code != 0
    assert refused_cli.output.strip() == "bumphunt: " + expected.replace("362000.0", "362000")  # as --set parsed it


def test_a_run1_study_reruns_from_the_selection_on_the_same_simulation(quick_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(quick_run[0], folder)
    args = ["study", "luminosity", "--analysis", "quick", "-q", "--set", f"output_dir={folder}", "--luminosity", "362",
            "--mass", "2", "--mass", "3", "--mass", "0.55"]  # fmt: skip
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    study_output = result.output.split("luminosity study: 362 fb^-1")[1]
    assert _stages(study_output, "up to date") == ["simulation", "kinfit"]  # the same events, reweighted
    assert _stages(study_output, "runs") == ["select", "shapes", "scan", "exclusion", "report"]
    config = _quick_config(folder / "studies" / "luminosity" / "362fb", luminosity=362_000.0)
    layout = OutputLayout.from_config(config)
    model = ShapeModel.load(layout.shapes_file)
    selection, mass_variable = model.settings.get("selection", ""), model.settings["mass_variable"]
    at = {
        luminosity: BackgroundModel(layout, selection, mass_variable, model.resolution, mode="events",
                                    luminosity=luminosity)
        for luminosity in (445.0, 362_000.0)
    }  # fmt: skip
    for low, high in zip(at[445.0].samples, at[362_000.0].samples, strict=True):
        np.testing.assert_allclose(high.weights, 362_000.0 / 445.0 * low.weights, rtol=1e-12)
    for stage in pipeline.CHAIN[2:]:  # every stage from the selection on was made at the new luminosity
        pipeline.refuse_disagreement(stage, config)
    table = json.loads((folder / "studies" / "luminosity" / "luminosity_study.json").read_text())
    rows = {row["mass"]: row for row in table["rows"]}
    assert set(rows) == {0.55, 2.0, 3.0} and {row["luminosity_fb_inv"] for row in rows.values()} == {362.0}
    assert rows[2.0]["status"] == rows[3.0]["status"] == "ok" and rows[2.0]["g_exp"] > 0
    assert rows[0.55]["g_exp"] is None and rows[0.55]["status"] != "ok"  # outside the quick scan
    assert (folder / "studies" / "luminosity" / "luminosity_study.png").stat().st_size > 10_000
    # at Run 1: every scanned mass has a coupling limit or a flagged fit, and the shapes of the
    # selection tuned there pass their held-out checks
    exclusion = read_table(layout.exclusion_table_json)
    fitted = read_table(layout.scan_table_json).ok
    status = exclusion["status"].astype(str)
    assert fitted.sum() >= 0.8 * len(fitted), "most hypotheses fit at 362 fb^-1"
    assert not any(REACH in text for text in status), "the lifetime map reaches every Run-1 limit"
    limited = np.isfinite(exclusion["g_obs"]) & np.isfinite(exclusion["g_exp"])
    reasons = set(status[fitted & ~limited])
    assert reasons <= {"outside the signal model's mass range"}, reasons
    assert all(text != "ok" for text in status[~fitted])  # a flagged fit: its reason in the status
    checks = ShapeModel.load(layout.shapes_file).validation["summary"]
    assert min(checks["mu_within_2_errors"], checks["width_within_2_errors"], checks["gof_pvalue_above_0.01"]) >= 0.9
    study_report = (layout.report_dir / "report.html").read_text()  # its composition: counted at 445 pb^-1
    simulated = _quick_config(folder)["luminosity"]  # the quick run's, the simulation's
    said = (f"at {simulated:g} pb^-1, the luminosity the simulation was weighted to: this analysis&#x27; "
            f"362000 pb^-1 has {362_000 / simulated:.4g}")  # fmt: skip
    assert said in study_report
    again = CliRunner().invoke(cli.main, ["report", "--quick", "--set", f"output_dir={folder}"])
    assert again.exit_code == 0, again.output
    assert "studies/" not in (folder / "report" / "report.html").read_text()  # the analysis' report shows no study


def test_with_the_selection_held_the_expected_coupling_limit_falls_as_the_fourth_root_of_the_luminosity(quick_run):
    """Background-dominated, the expected limit on signal events grows as sqrt(B) ~ L^(1/2), the
    cross-section limit falls as L^(-1/2) and g_agg (sigma ~ g^2) as L^(-1/4): Run 1 / 2018 =
    813^(-1/4) = 0.187, within 20 %, with the quick analysis' selection held fixed. The ALPs at
    these masses decay promptly at both limits (c tau < 1 mm), so the efficiency stays."""
    config = _quick_config(quick_run[0])
    layout = OutputLayout.from_config(config)
    model = ShapeModel.load(layout.shapes_file)
    selection, mass_variable = model.settings.get("selection", ""), model.settings["mass_variable"]
    sqrt_s = model.settings.get("sqrt_s") or 10.58
    expected = {}
    for luminosity in (445.0, 362_000.0):
        background = BackgroundModel(layout, selection, mass_variable, model.resolution, luminosity=luminosity)
        spectrum = background.draw(config["seed"], binned=True)
        scan = scan_spectrum(spectrum.to_hist(), model, start=2.0, stop=4.5, step_sigmas=40.0, global_toys=0,
                             luminosity=luminosity)  # fmt: skip
        rows = scan.rows()
        expected[luminosity] = {round(r["mass"], 6): exclusion_row(r, model, luminosity, sqrt_s) for r in rows}
    masses = sorted(set(expected[445.0]) & set(expected[362_000.0]))
    assert len(masses) >= 3
    reference = (362_000.0 / 445.0) ** -0.25
    for mass in masses:
        low, high = expected[445.0][mass], expected[362_000.0][mass]
        assert low["ctau_at_limit_cm"] < 0.1 or not np.isfinite(low["ctau_at_limit_cm"])
        ratio = high["g_exp"] / low["g_exp"]
        assert ratio == pytest.approx(reference, rel=0.2), (mass, ratio, reference)
