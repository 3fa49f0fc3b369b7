import subprocess
import sys

import click
import pytest
import yaml
from click.testing import CliRunner

from bumphunt import __version__
from bumphunt.cli import main
from bumphunt.config import load_config
from bumphunt.ntuple import read_metadata

from .bad_inputs import message

SMALL = [
    "--set", "simulation.signal.masses={start: 1.0, stop: 5.0, step: 0.5}",
    "--set", "shapes.n_held_out=2",
    "--set", "select.n_held_out=1",
    "--set", "select.network={hidden: [8, 8], bce_epochs: 2, punzi_epochs: 2}",
    "--set", "select.plots=false",
    "--set", "shapes.plots=false",
    "--set", "scan.start=1.2",
    "--set", "scan.stop=4.8",
    "--set", "scan.step_sigmas=10",
    "--set", "scan.global_toys=0",
    "--set", "scan.plots=false",
    "--set", "simulation.signal.events_per_mass=1000",
    "--set", "simulation.backgrounds.ggg.events=2000",
    "--set", "simulation.backgrounds.pi0_gamma.events=500",
    "--set", "simulation.backgrounds.eta_gamma.events=0",
    "--set", "simulation.backgrounds.etaprime_gamma.events=0",
    "--set", "simulation.backgrounds.gg.events=2000",
    "--set", "simulation.backgrounds.eeg.events=500",
    "--set", "simulation.backgrounds.pi0_gamma_gamma.events=0",
    "--set", "simulation.backgrounds.eta_gamma_gamma.events=0",
    "--set", "simulation.backgrounds.etaprime_gamma_gamma.events=0",
    "--workers", "1",
]  # fmt: skip


def test_version_and_help_answer_fast_without_heavy_imports():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    assert "bumphunt run" in CliRunner().invoke(main, ["--help"]).output
    # a fresh interpreter: --help must not pull in TensorFlow, zfit or uproot
    code = "import sys; from bumphunt.cli import main; sys.argv=['bumphunt','--help'];\n"
    code += "try: main()\nexcept SystemExit: pass\n"
    code += "print(sorted(m for m in ('tensorflow', 'zfit', 'uproot', 'numba', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")


def test_simulate_writes_ntuples(tmp_path):
    result = CliRunner().invoke(main, ["simulate", "--set", f"output_dir={tmp_path}", "-q", *SMALL])
    assert result.exit_code == 0, result.output
    assert "alp" in result.output and "pi0_gamma" in result.output
    assert read_metadata(tmp_path / "simulation" / "alp.root")["n_generated"] == 9000
    assert not (tmp_path / "simulation" / "eta_gamma.root").exists()


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    runner = CliRunner()
    bad = load_config()
    bad["beam"]["e_plus_energie"] = bad["beam"].pop("e_plus_energy")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    for args, expected in [
        (["simulate", "-c", str(path)], "bumphunt: config error: unknown key 'beam.e_plus_energie'"),
        (["config", "check", str(path)], "bumphunt: config error: unknown key 'beam.e_plus_energie'"),
        (["simulate", "-c", str(tmp_path / "none.yaml")], "bumphunt: cannot read configuration"),
        (["simulate", "--set", "seed"], "bumphunt: --set takes KEY=VALUE"),
        (
            ["simulate", "--set", "sed=3"],
            "bumphunt: config error: unknown key 'sed' in override (did you mean 'seed'?)",
        ),
        (["simulate", "--sample", "zz"], "bumphunt: unknown sample 'zz'"),
    ]:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith(expected), result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["scan", "--bogus"], message("cli-unknown-option", option="--bogus", command="bumphunt scan")),
        (["--bogus"], message("cli-unknown-option", option="--bogus", command="bumphunt")),
        (
            ["config", "check", "my.yaml", "-x"],
            message("cli-unknown-option", option="-x", command="bumphunt config check"),
        ),
        (["scan", "--ouput", "x"], message("cli-misspelt", kind="option", name="--ouput", suggestion="--output")),
        (["sacn"], message("cli-misspelt", kind="command", name="sacn", suggestion="scan")),
        (["fly"], message("cli-unknown-command", name="fly", command="bumphunt")),
        (["config", "edit"], message("cli-unknown-command", name="edit", command="bumphunt config")),
        (
            ["config", "check"],
            message("cli-missing-argument", argument="CONFIG_PATH", command="bumphunt config check"),
        ),
        (["scan", "--output"], message("cli-missing-value", option="--output", command="bumphunt scan")),
        (["config", "show", "--set"], message("cli-missing-value", option="--set", command="bumphunt config show")),
        (
            ["scan", "--workers", "-1"],
            message("cli-bad-value", option="--workers", reason="-1 is not in the range x>=0", command="bumphunt scan"),
        ),
        (
            ["kinfit", "--threads", "x"],
            message(
                "cli-bad-value",
                option="--threads",
                reason="'x' is not a valid integer range",
                command="bumphunt kinfit",
            ),
        ),
        (["scan", "my.yaml"], message("cli-extra-argument", argument="my.yaml", command="bumphunt scan")),
        (
            ["config", "show", "--set", "seed=[1"],
            message(
                "cli-set-not-yaml", setting="seed", value="[1", problem="expected ',' or ']', but got '<stream end>'"
            ),
        ),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args, expected):
    """click's usage errors in bumphunt's one-line style instead of click's usage block."""
    result = CliRunner().invoke(main, args, prog_name="bumphunt")
    assert result.exit_code == 2, (args, result.output)
    assert result.output == f"bumphunt: {expected}\n"


def test_no_arguments_show_the_help():
    for args, listed in [([], "simulate"), (["config"], "check")]:
        result = CliRunner().invoke(main, args, prog_name="bumphunt")
        assert result.output.startswith("Usage: bumphunt") and listed in result.output


def _commands(group: click.Group, prefix: str = "bumphunt"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


def test_every_command_help_shows_an_example():
    commands = sorted(_commands(main))
    assert commands == sorted(
        f"bumphunt {name}"
        for name in (
            "run",
            "simulate",
            "kinfit",
            "select",
            "shapes",
            "scan",
            "count",
            "exclusion",
            "report",
            "config",
            "config show",
            "config check",
            "study",
            "study luminosity",
        )  # fmt: skip
    )
    for command in ["bumphunt", *commands]:
        result = CliRunner().invoke(main, [*command.split()[1:], "--help"], prog_name="bumphunt")
        assert result.exit_code == 0, result.output
        lines = [line.strip() for line in result.output.splitlines()]
        examples = [line for line in lines if line == command or line.startswith(f"{command} ")]
        assert examples and any(line.startswith("Example") for line in lines), command


def test_set_reads_yaml_numbers():
    shown = CliRunner().invoke(main, ["config", "show", "--set", "luminosity=1e3", "--set", "seed=2e1"]).output
    assert yaml.safe_load(shown)["luminosity"] == 1000.0 and yaml.safe_load(shown)["seed"] == 20


def test_config_show_round_trips(tmp_path):
    runner = CliRunner()
    default_text = runner.invoke(main, ["config", "show"]).output
    assert "# bumphunt default analysis" in default_text
    path = tmp_path / "mine.yaml"
    path.write_text(default_text)
    assert runner.invoke(main, ["config", "check", str(path)]).output == f"{path}: valid\n"
    shown = runner.invoke(main, ["config", "show", "-c", str(path), "--set", "seed=5"]).output
    assert yaml.safe_load(shown)["seed"] == 5


def test_kinfit_command(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["simulate", "--set", f"output_dir={tmp_path}", "-q", *SMALL]).exit_code == 0
    result = runner.invoke(main, ["kinfit", "--set", f"output_dir={tmp_path}", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kinfit" / "alp.root").is_file() and (tmp_path / "kinfit" / "pi0_gamma.root").is_file()
    single = tmp_path / "single.root"
    result = runner.invoke(main, ["kinfit", str(tmp_path / "simulation" / "ggg.root"), "--output", str(single), "-q"])
    assert result.exit_code == 0 and single.is_file()
    result = runner.invoke(main, ["kinfit", "--set", f"output_dir={tmp_path / 'empty'}"])
    assert result.exit_code == 2 and "no simulated ntuples to fit" in result.output


def test_shapes_command(tmp_path):
    runner = CliRunner()
    grid = [
        "--set", "simulation.signal.masses={start: 0.5, stop: 5.0, step: 0.25}",
        "--set", "simulation.signal.events_per_mass=1500",
        "--set", "shapes.n_held_out=4",
        "--set", "shapes.plots=false",
    ]  # fmt: skip
    args = ["--set", f"output_dir={tmp_path}", "-q", *grid]
    assert runner.invoke(main, ["simulate", "--sample", "alp", *args]).exit_code == 0
    assert runner.invoke(main, ["kinfit", *args]).exit_code == 0
    unselected = runner.invoke(main, ["shapes", *args])  # the default cuts on the Punzi-net's decision
    assert unselected.exit_code == 2 and "run `bumphunt select` first" in unselected.output
    result = runner.invoke(main, ["shapes", *args, "--set", "shapes.selection=fit_status == 0 and fit_pvalue > 0.01"])
    assert result.exit_code == 0, result.output
    assert "signal shapes: 19/19 masses fitted, 4 held out" in result.output
    assert (tmp_path / "shapes" / "signal_shapes.json").is_file()
    missing = runner.invoke(main, ["shapes", str(tmp_path / "nothing.root"), *args])
    assert missing.exit_code == 2 and "nothing.root: no such file" in missing.output
