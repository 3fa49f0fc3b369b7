"""The exclusion stage on a small analysis: self-consistent coupling limits, one conversion shared
with the scan table, the published curve, the CLI and bad input."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bumphunt.cli import main
from bumphunt.coupling import expected_signal
from bumphunt.errors import BumphuntError
from bumphunt.exclusion import COLUMNS, published_limit, run_exclusion
from bumphunt.kinfit import run_kinfit
from bumphunt.models import ShapeModel
from bumphunt.results import read_table
from bumphunt.scan import run_scan
from bumphunt.shapes import run_shapes
from bumphunt.simulation import run_simulation
from bumphunt.simulation.stage import long_lived_couplings

from .bad_inputs import pattern
from .helpers import small_config

ANALYSIS = {
    "simulation.signal.masses": {"start": 0.2, "stop": 1.4, "step": 0.1},
    "simulation.signal.events_per_mass": 3000,
    "simulation.backgrounds.ggg.events": 60_000,
    "simulation.chunk_size": 100_000,
    "simulation.workers": 2,
    "shapes.n_held_out": 2,
    "shapes.plots": False,
    "scan.start": 0.25,
    "scan.stop": 1.3,
    "scan.step_gev": 0.05,
    "scan.global_toys": 0,
    "scan.workers": 1,
    "scan.plots": False,
}


@pytest.fixture(scope="module")
def excluded(tmp_path_factory):
    """A small analysis scanned and converted (lifetime map from the simulated decay lengths)."""
    config = small_config(tmp_path_factory.mktemp("exclusion"), **ANALYSIS)
    run_simulation(config, progress=False)
    run_kinfit(config, progress=False)
    shapes = run_shapes(config, progress=False)
    scan = run_scan(config, progress=False)
    return config, shapes.model, scan, run_exclusion(config, progress=False)


def test_table_and_figures(excluded):
    config, model, scan, summary = excluded
    document = json.loads(summary.table_json.read_text())
    assert list(document["rows"][0]) == list(COLUMNS)
    assert document["luminosity_pb_inv"] == config["luminosity"]
    header = summary.table_csv.read_text().splitlines()[0].split(",")
    assert header == list(COLUMNS)
    assert {p.name for p in summary.plots} == {"cross_section_limits.png", "coupling_exclusion.png",
                                               "efficiency_map.png", "sensitivity.png"}  # fmt: skip
    assert all(p.stat().st_size > 10_000 for p in summary.plots)
    result = summary.result
    assert len(result) == len(scan.result)
    limited = np.char.startswith(result["status"], "ok")
    assert limited.sum() >= 0.9 * len(result) and np.isfinite(result["g_obs"][limited]).all()
    # with the long-lived ALPs (g = 4e-4) every band is within the simulated lifetime reach,
    # and the bands are ordered as the limits on signal events are
    names = ("g_exp_m2", "g_exp_m1", "g_exp", "g_exp_p1", "g_exp_p2")
    bands = np.array([result[n][limited] for n in names])
    assert np.isfinite(bands).all() and np.all(result["status"][limited] == "ok")
    assert np.all(np.diff(bands, axis=0) >= 0)


def test_limits_are_self_consistent_and_shared_with_the_scan_table(excluded):
    config, model, scan, summary = excluded
    result, table = summary.result, read_table(scan.table_json)
    sqrt_s = model.settings["sqrt_s"]
    assert model.lifetime is not None
    for i in np.flatnonzero(np.char.startswith(result["status"], "ok")):
        mass = result["mass"][i]

        def efficiency(ctau, mass=mass):
            return model.efficiency(mass, ctau)

        for column, suffix in (("ul_obs", "obs"), ("ul_exp", "exp"), ("ul_exp_p2", "exp_p2")):
            n = expected_signal(result[f"g_{suffix}"][i], mass, config["luminosity"], sqrt_s, efficiency)
            assert float(n) == pytest.approx(table[column][i], rel=1e-6)
        assert result["xsec_obs_pb"][i] == pytest.approx(
            table["ul_obs"][i] / (result["efficiency_at_limit"][i] * config["luminosity"]), rel=1e-12
        )
    # the efficiency's statistical error: the simulated sample's (3000 ALPs per mass), a few per cent
    ok = np.char.startswith(result["status"], "ok")
    relative = result["efficiency_error_at_limit"][ok] / result["efficiency_at_limit"][ok]
    assert np.all((relative > 0.005) & (relative < 0.1))
    # one conversion: the scan table's columns are the exclusion's observed values
    ok = np.char.startswith(result["status"], "ok")
    np.testing.assert_allclose(table["g_ul_gev"][ok], result["g_obs"][ok], rtol=1e-12)
    np.testing.assert_allclose(table["efficiency"][ok], result["efficiency_at_limit"][ok], rtol=1e-12)


def test_lifetime_map_covers_the_generated_masses(excluded):
    config, model, _, _ = excluded
    lifetime = model.lifetime
    assert len(lifetime.masses) >= 10
    # at the generated lifetime the efficiency is the generated one, exactly
    for mass, ctau in zip(lifetime.masses, lifetime.ctau_generated):
        assert float(model.efficiency(mass, ctau)) == pytest.approx(float(model.efficiency(mass)), rel=1e-12)
    # the stored decay lengths follow the simulated lifetimes: where the selection does not
    # depend on them (ALPs that fly < 1 mm, above 0.5 GeV), the efficiency does not change
    # with the lifetime, from a fifth of the generated one to 8 times it (long-lived ALPs)
    prompt = lifetime.masses >= 0.5
    for k in (0.2, 0.5, 3.0, 8.0):
        column = np.argmin(np.abs(lifetime.relative_lifetimes - k))
        pulls = (lifetime.ratio[prompt, column] - 1) / lifetime.error[prompt, column]
        assert np.all(np.abs(pulls) < 4), k
    # the long-lived ALPs (the smallest coupling g_min: (g / g_min)^2 times the lifetime) carry
    # the reach to 1.8 times theirs
    smallest = min(long_lived_couplings(config))
    top = 1.8 * (config["simulation"]["signal"]["coupling"] / smallest) ** 2
    assert lifetime.relative_lifetimes.max() == pytest.approx(top)
    assert np.isfinite(lifetime(lifetime.masses, 0.99 * top * lifetime.ctau_generated)).all()
    assert np.isnan(lifetime(lifetime.masses, 1.01 * top * lifetime.ctau_generated)).all()


def test_published_curve_is_the_reference_file():
    mass, g, source = published_limit()
    assert len(mass) > 300 and 0.19 < mass.min() < 0.2 and 9.6 < mass.max() < 10.0
    assert np.all((g > 1e-4) & (g < 1.0))
    assert "Phys. Rev. Lett. 125 (2020) 161806" in source


def test_bad_input_and_a_model_without_lifetime(excluded, tmp_path):
    config, model, scan, _ = excluded
    missing = tmp_path / "missing.json"
    with pytest.raises(BumphuntError, match=pattern("exclusion-no-scan", path=missing)):
        run_exclusion(config, tmp_path / "a", scan_table=missing, progress=False)
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    with pytest.raises(BumphuntError, match=pattern("table-other-json", path=broken, what="an empty JSON object")):
        run_exclusion(config, tmp_path / "b", scan_table=broken, progress=False)
    excluded_table = excluded[3].table_json
    with pytest.raises(BumphuntError, match=pattern("exclusion-not-a-scan-table", path=excluded_table)):
        run_exclusion(config, tmp_path / "b", scan_table=excluded_table, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    prompt = ShapeModel(model.splines, model.settings, model.fits, model.held_out, model.validation)
    prompt_path = prompt.save(tmp_path / "prompt_shapes.json")
    summary = run_exclusion(dict(config, exclusion={"plots": False}), tmp_path / "c", shapes=prompt_path,
                            progress=False)  # fmt: skip
    status = summary.result["status"]
    assert all(s.endswith("(prompt efficiency: no lifetime map)") for s in status if s.startswith("ok"))
    assert summary.plots == []
    with pytest.raises(BumphuntError, match=pattern("shapes-without-lifetime")):
        prompt.efficiency(0.5, 1.0)


def test_cli(excluded, tmp_path):
    config, _, scan, _ = excluded
    arguments = ["exclusion", "--set", f"output_dir={config['output_dir']}", "-o", str(tmp_path / "cli"), "--quiet"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert "exclusion:" in result.output and "masses with a coupling limit" in result.output
    assert (tmp_path / "cli" / "exclusion.csv").is_file()
    assert not math.isnan(float((tmp_path / "cli" / "exclusion.csv").read_text().splitlines()[1].split(",")[1]))


def test_example_against_the_published_curve(excluded, tmp_path):
    config, _, _, _ = excluded
    script = Path(__file__).parents[1] / "examples" / "exclusion_vs_published.py"
    figure = tmp_path / "ratio.png"
    result = subprocess.run([sys.executable, str(script), config["output_dir"], "--plot", str(figure)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 7 and all(float(row[3]) > 0 for row in rows)  # the published g at each mass
    assert "lifetime changes the observed limit" in result.stdout
    assert figure.stat().st_size > 10_000
