"""``bumphunt run``: the chain end to end on the quick analysis, the report, and the stage
fingerprints that skip what is up to date and rerun exactly what a change touches."""

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from bumphunt import cli, pipeline
from bumphunt.config import load_config
from bumphunt.layout import STAGE_DIRS, OutputLayout
from bumphunt.simulation.composition import TABLE_EDGES

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: The CSV tables of a run and their section of docs/results.md.
TABLES = ("simulation/composition.csv", "select/fom.csv", "scan/results.csv", "scan/impacts.csv",
          "exclusion/exclusion.csv")  # fmt: skip
#: The figures every run with plots on makes.
PLOTS = (
    "simulation/composition.png", "select/fom.png", "select/training.png", "select/scores.png",
    "shapes/shape_parameters.png", "scan/upper_limits.png", "scan/local_significance.png", "scan/best_fit.png",
    "scan/systematics_impact.png", "exclusion/coupling_exclusion.png", "exclusion/cross_section_limits.png",
    "exclusion/efficiency_map.png", "exclusion/sensitivity.png", "report/resolution.png",
)  # fmt: skip


def _run(output_dir: Path, *args: str):
    result = CliRunner().invoke(cli.main, ["run", "--quick", "-q", "--set", f"output_dir={output_dir}", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _stages(output: str, what: str) -> list[str]:
    """The stages the run's output says ran (``what="runs"``) or skipped (``"up to date"``)."""
    return [stage for stage in pipeline.STAGE_NAMES if re.search(rf"^{stage}: {what}\b", output, re.MULTILINE)]


def _snapshot(folder: Path) -> dict:
    """Every file below ``folder``: size, modification time and content hash."""
    return {
        path.relative_to(folder).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns,
                                              hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(folder.rglob("*")) if path.is_file()
    }  # fmt: skip


@pytest.fixture
def copied_run(quick_run, tmp_path):
    """A copy of the quick run (modification times kept), for a test to change."""
    folder = tmp_path / "run"
    shutil.copytree(quick_run[0], folder, copy_function=shutil.copy2)
    return folder


def _documented_columns(table: str, config: dict) -> list[str]:
    """The columns docs/results.md lists for ``table``, placeholders expanded."""
    text = (DOCS / "results.md").read_text()
    section = text.split(f"## {table}\n", 1)[1].split("\n## ", 1)[0]
    columns = []
    for name in re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE):
        if name == "<low>-<high> GeV":
            columns += [f"{low:g}-{high:g} GeV" for low, high in zip(TABLE_EDGES[:-1], TABLE_EDGES[1:])]
        elif "<source>" in name:
            continue  # expanded below, the pair of columns per source
        else:
            columns.append(name)
    if table == "scan/impacts.csv":
        for source in config["systematics"]["sources"]:
            columns += [f"ul_obs_without_{source['name']}", f"ul_exp_without_{source['name']}"]
    if table == "select/fom.csv" and not config["select"]["bdt_baseline"]:
        columns = [c for c in columns if not c.endswith("_bdt") and "_bdt_" not in c]
    return columns


def test_quick_run_goes_from_events_to_the_report(quick_run):
    folder, output = quick_run
    assert _stages(output, "runs") == list(pipeline.STAGE_NAMES)
    config = load_config(None, {"output_dir": str(folder), "select.bdt_baseline": False})
    for table in TABLES:
        with open(folder / table, newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == _documented_columns(table, config), table
        assert len(rows) > 1, f"{table} has no rows"
    # every figure of the run exists, is an image and is not blank
    made = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert set(PLOTS) <= set(made), sorted(set(PLOTS) - set(made))
    for name in made:
        image = matplotlib.image.imread(folder / name)
        assert image.shape[0] > 100 and image.shape[1] > 100 and np.std(image[..., :3]) > 0.01, name
    report = (folder / "report" / "report.html").read_text()
    assert "g_agg" in report and "exclusion" in report.lower()
    assert report.count("data:image/png;base64,") >= len(made)
    # a record beside every stage's outputs
    for stage in pipeline.CHAIN:
        record = pipeline.read_record(stage, OutputLayout(folder))
        assert record is not None and record["outputs"], stage.name
    settings = pipeline.read_record("select", OutputLayout(folder))["parts"]["settings"]
    assert set(settings) == {"seed", "luminosity", "beam", "select", "scan.start", "scan.stop", "samples"}


def test_a_second_run_skips_every_stage_and_changes_no_file(copied_run):
    before = _snapshot(copied_run)
    output = _run(copied_run)
    assert _stages(output, "up to date") == list(pipeline.STAGE_NAMES)
    assert _stages(output, "runs") == []
    assert _snapshot(copied_run) == before


@pytest.mark.parametrize(
    ("setting", "first"),
    [("scan.confidence_level=0.9", "scan"), ("kinfit.max_iterations=25", "kinfit")],
)
def test_a_changed_setting_reruns_exactly_the_stages_after_it(copied_run, setting, first):
    before = _snapshot(copied_run)
    output = _run(copied_run, "--set", setting)
    downstream = list(pipeline.STAGE_NAMES[pipeline.STAGE_NAMES.index(first) :])
    assert _stages(output, "runs") == downstream
    assert f"{first}: runs (settings changed: {setting.split('=')[0]})" in output
    after = _snapshot(copied_run)
    upstream = [s for s in pipeline.STAGE_NAMES if s not in downstream]
    for name, signature in before.items():
        if name.split("/")[0] in upstream:
            assert after[name] == signature, name
    assert after[f"{first}/fingerprint.json"] != before[f"{first}/fingerprint.json"]
    # the same setting again: nothing to do
    assert _stages(_run(copied_run, "--set", setting), "runs") == []


def test_force_and_a_missing_output_rerun_their_stage_and_those_after(copied_run):
    output = _run(copied_run, "--force", "scan")
    assert _stages(output, "runs") == ["scan", "exclusion", "report"] and "scan: runs (forced)" in output
    assert re.search(r"scan: \d+ mass points \(0 resumed", output), output  # forced: every point again
    (copied_run / "exclusion" / "coupling_exclusion.png").unlink()
    output = _run(copied_run)
    assert _stages(output, "runs") == ["exclusion", "report"]
    assert "exclusion: runs (output coupling_exclusion.png is missing)" in output
    assert (copied_run / "exclusion" / "coupling_exclusion.png").is_file()


def test_a_broken_record_reruns_its_stage(copied_run):
    (copied_run / "report" / "fingerprint.json").write_text("{not json")
    assert _stages(_run(copied_run), "runs") == ["report"]


def test_the_report_command_rewrites_the_report(copied_run):
    report = copied_run / "report" / "report.html"
    report.unlink()
    result = CliRunner().invoke(cli.main, ["report", "--quick", "--set", f"output_dir={copied_run}"])
    assert result.exit_code == 0, result.output
    assert result.output == f"report -> {report}\n" and "coupling_exclusion.png" in report.read_text()
    assert "start: 1.2\n" in report.read_text()  # the settings of the quick run (scan.start)


def test_the_chain_is_the_pipeline_s():
    assert cli._CHAIN == pipeline.STAGE_NAMES
    assert pipeline.STAGE_NAMES == tuple(d for d in STAGE_DIRS if d != "count")


def test_a_stage_s_code_is_its_import_closure():
    scan = pipeline.code_identity(pipeline.stage_by_name("scan"))
    assert "bumphunt/stats/likelihood.py" in scan and "bumphunt/scan/runner.py" in scan
    assert "bumphunt/_io.py" in scan and "bumphunt/__init__.py" in scan
    assert not any(name.startswith(("bumphunt/select/", "bumphunt/simulation/")) for name in scan)
    assert "bumphunt/cli.py" not in scan
    assert "bumphunt/select/network.py" in pipeline.code_identity(pipeline.stage_by_name("select"))
    assert scan["numpy"] == np.__version__


def test_the_reason_names_the_changed_key(tmp_path):
    config = load_config(None, {"output_dir": str(tmp_path)})
    layout = OutputLayout(tmp_path)
    stage = pipeline.stage_by_name("exclusion")
    now, reason = pipeline.check(stage, config, layout)
    assert reason == "not run before"
    layout.stage_dir("exclusion").mkdir(parents=True)
    pipeline.record(stage, now, layout, 1.0)
    assert pipeline.check(stage, config, layout)[1] is None
    changed = load_config(None, {"output_dir": str(tmp_path), "exclusion.plots": False})
    assert pipeline.check(stage, changed, layout)[1] == "settings changed: exclusion.plots"
    record = json.loads((layout.stage_dir("exclusion") / "fingerprint.json").read_text())
    record["parts"]["code"]["bumphunt/exclusion/stage.py"] = "0" * 16
    record["fingerprint"] = "edited"
    (layout.stage_dir("exclusion") / "fingerprint.json").write_text(json.dumps(record))
    assert pipeline.check(stage, config, layout)[1] == "code changed: bumphunt/exclusion/stage.py"


def test_run_errors_are_one_line(tmp_path):
    runner = CliRunner()
    for args, expected in [
        (["run", "--force", "nothing"], "bumphunt: invalid value for --force"),
        (["run", "a.yaml", "-c", "b.yaml"], "bumphunt: give the configuration once"),
    ]:
        result = runner.invoke(cli.main, args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(expected) and result.output.count("\n") == 1, result.output
