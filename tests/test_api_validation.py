"""The Python API is as strict as the configuration (issue #26): the settings of a public
function are checked by :func:`bumphunt.config.validate_settings` against the configuration's
schema and semantic checks, with the message the CLI and ``load_config`` give for the same
value; a scan without mass hypotheses is refused before any work; the figures and
``read_table`` take a table without rows. Fast: the synthetic signal model, no chain."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from bumphunt.cli import main
from bumphunt.config import load_config, validate_arguments, validate_settings
from bumphunt.count import counting_model
from bumphunt.errors import BumphuntError, ConfigError
from bumphunt.exclusion import exclusion_row
from bumphunt.kinematics import Beams
from bumphunt.layout import OutputLayout
from bumphunt.plotting import (
    plot_brazil,
    plot_coupling_exclusion,
    plot_cross_section_limits,
    plot_local_significance,
    save_figure,
)
from bumphunt.results import ExclusionResult, ScanResult, read_table, write_table
from bumphunt.scan import VETOES, run_scan, scan_grid, scan_spectrum
from bumphunt.stats.lookelsewhere import global_significance

from .bad_inputs import message, pattern
from .helpers import synthetic_shape_model

#: A range of the synthetic model with mass hypotheses, and masses to scan there.
RANGE = {"start": 1.0, "stop": 1.3}
MASSES = np.random.default_rng(1).uniform(0.8, 1.5, 2000)


@pytest.fixture(scope="module")
def model():
    return synthetic_shape_model()


def _cli_message(setting: str, value: str) -> str:
    """What ``bumphunt config show --set setting=value`` prints (exit code 2)."""
    result = CliRunner().invoke(main, ["config", "show", "--set", f"{setting}={value}"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("bumphunt: ") and result.output.count("\n") == 1, result.output
    return result.output.removeprefix("bumphunt: ").rstrip("\n")


# -- one validation path: the CLI, load_config and the API say the same ------------------


@pytest.mark.parametrize(
    "setting, yaml_value, api, expected",
    [
        ("scan.confidence_level", "1.5", {"confidence_level": 1.5},
         message("api-confidence-level", section="scan", value=1.5)),
        ("luminosity", "-1", {"luminosity": -1}, message("api-luminosity", value=-1)),
        ("luminosity", ".nan", {"luminosity": math.nan}, message("api-non-finite", setting="luminosity", value="nan")),
        ("scan.workers", "-1", {"workers": -1},
         message("api-setting-bound", setting="scan.workers", value=-1, minimum=0)),
    ],
)  # fmt: skip
def test_cli_load_config_and_scan_spectrum_refuse_alike(model, setting, yaml_value, api, expected):
    """The same bad value gives one message through --set, load_config and scan_spectrum;
    scan_spectrum says it before anything else (data that are not numbers, a shape file that
    does not exist)."""
    assert _cli_message(setting, yaml_value) == expected
    value = next(iter(api.values()))
    with pytest.raises(ConfigError, match=f"^{_escaped(expected)}$"):
        load_config(None, {setting: value})
    with pytest.raises(ConfigError, match=f"^{_escaped(expected)}$"):
        scan_spectrum(MASSES, model, **RANGE, **api)
    with pytest.raises(ConfigError, match=f"^{_escaped(expected)}$"):
        scan_spectrum(["a", "b"], "no/such/signal_shapes.json", **RANGE, **api)


def _escaped(text: str) -> str:
    return re.escape(text)


def test_confidence_level_is_refused_alike_as_numpy_and_in_the_count(model):
    """A numpy number reads as the YAML number (the message shows 1.5, not np.float64(1.5))."""
    with pytest.raises(ConfigError, match=pattern("api-confidence-level", section="scan", value=1.5)):
        scan_spectrum(MASSES, model, **RANGE, confidence_level=np.float64(1.5))
    with pytest.raises(ConfigError, match=pattern("api-confidence-level", section="count", value=1.5)):
        validate_settings("count", {"confidence_level": 1.5})


def test_scan_spectrum_refuses_unknown_settings_and_ranges_as_the_configuration(model):
    with pytest.raises(ConfigError, match=pattern("api-unknown-setting", name="step_sigma", close="step_sigmas")):
        scan_spectrum(MASSES, model, **RANGE, step_sigma=3.0)
    expected = message("config-scan-range", start=1.3, stop=1.0)
    with pytest.raises(ConfigError, match=f"^{_escaped(expected)}$"):
        load_config(None, {"scan.start": 1.3, "scan.stop": 1.0})
    with pytest.raises(ConfigError, match=f"^{_escaped(expected)}$"):
        scan_spectrum(MASSES, model, start=1.3, stop=1.0)
    with pytest.raises(ConfigError, match=pattern("systematics-repeated-name", names="lumi")):
        scan_spectrum(MASSES, model, **RANGE, systematics=[{"name": "lumi", "type": "normalisation", "size": 0.01}] * 2)
    narrow = pattern("api-setting-bound", setting="scan.window_sigmas", value=2, minimum=3)
    with pytest.raises(ConfigError, match=narrow):
        scan_spectrum(MASSES, model, **RANGE, window_sigmas=2)


def test_validate_settings_checks_a_part_of_a_section(model):
    """Keys not given are not required; values come back as load_config holds them."""
    assert validate_settings("scan", {"global_toys": np.int64(3), "binned_above": 2e3}) == {
        "global_toys": 3, "binned_above": 2000,
    }  # fmt: skip
    assert isinstance(validate_settings("scan", {"binned_above": 2e3})["binned_above"], int)
    assert validate_settings("", {"luminosity": np.float32(2.0)}) == {"luminosity": 2.0}
    assert validate_settings("scan", {}) == {}
    with pytest.raises(ConfigError, match="^config error: missing key 'scan.inject.events'$"):
        validate_settings("scan", {"inject": {"mass": 1.0}})  # a whole object keeps its required keys
    with pytest.raises(ValueError, match="no configuration section 'scna'"):
        validate_settings("scna", {})
    assert validate_arguments("f", {"n": np.float64(2.0)}, {"n": {"type": "number"}}) == {"n": 2.0}


def test_inject_mass_must_be_positive():
    """The schema now bounds scan.inject.mass (it picked the lowest generated mass for -1)."""
    with pytest.raises(ConfigError, match=pattern("config-inject-mass", value=-1.0)):
        load_config(None, {"scan.inject": {"mass": -1.0, "events": 100}})
    assert load_config(None, {"scan.inject": {"mass": None, "events": 0}})["scan"]["inject"]["mass"] is None


def test_count_and_exclusion_check_their_settings(model):
    settings = {"tau": None, "background_uncertainty": 0.1, "efficiency_uncertainty": 0.0}
    assert counting_model(5.0, 2.0, 0.5, settings).tau > 0
    with pytest.raises(ConfigError, match=pattern("api-setting-bound", setting="count.background_uncertainty",
                                                  value=-0.1, minimum=0)):  # fmt: skip
        counting_model(5.0, 2.0, 0.5, dict(settings, background_uncertainty=-0.1))
    with pytest.raises(ConfigError, match=pattern("api-non-finite", setting="count.efficiency_uncertainty",
                                                  value="inf")):  # fmt: skip
        counting_model(5.0, 2.0, 0.5, dict(settings, efficiency_uncertainty=math.inf))
    row = {"mass": 2.0, "fit_status": "ok", "ul_obs": 10.0}
    with pytest.raises(ConfigError, match=pattern("api-luminosity", value=-1)):
        exclusion_row(row, model, -1, 10.58)


# -- the zfit model ---------------------------------------------------------------------------


def test_zfit_hypothesis_checks_its_numbers(model):
    zh = pytest.importorskip("bumphunt.models.zfit_hypothesis")
    with pytest.raises(BumphuntError, match=pattern("zfit-argument-bound", function="zfit_hypothesis", name="n_bkg",
                                                    value=-5, minimum=0)):  # fmt: skip
        zh.zfit_hypothesis(model, 2.0, n_bkg=-5)
    with pytest.raises(BumphuntError, match=pattern("zfit-argument-non-finite", function="zfit_hypothesis",
                                                    name="n_sig", value="nan")):  # fmt: skip
        zh.zfit_hypothesis(model, 2.0, n_sig=math.nan)
    expected = message("zfit-order", value=-1)
    with pytest.raises(ConfigError, match=f"^{_escaped(expected)}$"):
        zh.zfit_hypothesis(model, 2.0, order=-1)
    with pytest.raises(ConfigError, match=f"^{_escaped(expected)}$"):
        load_config(None, {"scan.background_order": -1})
    with pytest.raises(BumphuntError, match=pattern("zfit-order-auto")):
        zh.zfit_hypothesis(model, 2.0, order="auto")
    with pytest.raises(ConfigError, match=pattern("api-setting-bound", setting="scan.window_sigmas", value=2,
                                                  minimum=3)):  # fmt: skip
        zh.zfit_hypothesis(model, 2.0, window_sigmas=2)


# -- scans without mass hypotheses ---------------------------------------------------------


def _veto_range(model, name: str, veto_sigmas: float = 3.0) -> str:
    half = veto_sigmas * float(model.resolution(VETOES[name]))
    return f"{VETOES[name] - half:.4f}-{VETOES[name] + half:.4f}"


def test_a_range_inside_a_veto_is_refused_before_any_work(model):
    """0.94-0.97 GeV lies in the eta' veto; so does a range too short for a second hypothesis;
    a coarse fixed step can land every hypothesis in a veto. Refused before the data are read."""
    etaprime = message("scan-empty-range", start="0.94", stop="0.97", vetoes="etaprime",
                       ranges=_veto_range(model, "etaprime"), veto_sigmas="3")  # fmt: skip
    with pytest.raises(BumphuntError, match=f"^{_escaped(etaprime)}$"):
        scan_spectrum(MASSES, model, start=0.94, stop=0.97)
    with pytest.raises(BumphuntError, match=f"^{_escaped(etaprime)}$"):
        scan_spectrum(["a", "b"], model, start=0.94, stop=0.97)  # before the data are looked at
    with pytest.raises(BumphuntError, match=pattern("scan-empty-range", start="0.95", stop="0.951",
                                                    vetoes="etaprime", ranges=_veto_range(model, "etaprime"),
                                                    veto_sigmas="3")):  # fmt: skip
        scan_spectrum(MASSES, model, start=0.95, stop=0.951)
    both = f"{_veto_range(model, 'eta', 4.0)}, {_veto_range(model, 'etaprime', 4.0)}"
    expected = pattern("scan-empty-range", start="0.55", stop="0.96", vetoes="eta and etaprime", ranges=both,
                       veto_sigmas="4")  # fmt: skip
    with pytest.raises(BumphuntError, match=expected):
        scan_grid(model, 0.55, 0.96, 0.5, 4.0, step_gev=0.41)


def test_run_scan_refuses_a_range_inside_a_veto_and_writes_nothing(tmp_path):
    config = load_config(None, {"output_dir": str(tmp_path / "out"), "scan.start": 0.94, "scan.stop": 0.97})
    model = synthetic_shape_model(sqrt_s=Beams.from_config(config).sqrt_s)
    config["scan"]["shapes"] = str(model.save(tmp_path / "signal_shapes.json"))
    expected = pattern("scan-empty-range", start="0.94", stop="0.97", vetoes="etaprime",
                       ranges=_veto_range(model, "etaprime"), veto_sigmas="3")  # fmt: skip
    with pytest.raises(BumphuntError, match=expected):
        run_scan(config, progress=False)
    layout = OutputLayout.from_config(config)
    assert not layout.scan_table_json.exists() and not layout.scan_table_csv.exists()
    assert not layout.scan_points_dir.exists()


# -- figures and readers of a table without rows -------------------------------------------


def _empty_scan() -> ScanResult:
    significance = global_significance(np.array([]), np.array([]), 0.5, [0])
    return ScanResult.from_rows([], global_significance=significance, vetoed={"etaprime": (0.93, 0.98)})


def test_an_empty_table_reads_back_and_draws_as_such(tmp_path):
    _, table_json = write_table(_empty_scan(), tmp_path / "scan")
    scan = read_table(table_json)
    assert isinstance(scan, ScanResult) and len(scan) == 0 and scan.kind == "scan"
    assert not math.isfinite(scan.global_significance.z_local_max)
    exclusion_json = tmp_path / "exclusion.json"
    exclusion_json.write_text(json.dumps(ExclusionResult.from_rows([], vetoed={}).to_dict()))
    exclusion = read_table(exclusion_json)
    assert isinstance(exclusion, ExclusionResult) and len(exclusion) == 0
    said = message("plot-empty-table")
    for figure, table in [(plot_brazil, scan), (plot_local_significance, scan), (plot_coupling_exclusion, exclusion),
                          (plot_cross_section_limits, exclusion)]:  # fmt: skip
        ax = figure(table)
        assert [text.get_text() for text in ax.texts] == [said], figure.__name__
        save_figure(ax, tmp_path / f"{figure.__name__}.png")  # draws
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert plot_brazil(scan, ax=ax) is ax and [t.get_text() for t in ax.texts] == [said]
    plt.close(fig)
    with pytest.raises(BumphuntError, match=pattern("plot-other-table", figure="plot_brazil", kind="exclusion",
                                                    columns="ul_exp_m2, ul_exp_m1, ul_exp, ul_exp_p1, ul_exp_p2, "
                                                            "ul_obs")):  # fmt: skip
        plot_brazil(exclusion)  # an empty table of another kind is still refused as such
