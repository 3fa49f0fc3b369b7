"""Where an analysis keeps its files (bumphunt.layout) and the check that a stage can write
its folder before any work (bumphunt._io.writable_folder)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from bumphunt._io import writable_folder
from bumphunt.cli import main
from bumphunt.errors import BumphuntError
from bumphunt.kinfit import run_kinfit
from bumphunt.layout import OutputLayout
from bumphunt.scan import run_scan
from bumphunt.shapes import run_shapes
from bumphunt.simulation import run_simulation

from .bad_inputs import message, pattern
from .helpers import small_config


def test_scan_results_and_lock_are_named_by_the_layout(tmp_path):
    layout = OutputLayout(tmp_path).with_stage_dir("scan", tmp_path / "elsewhere")
    assert [p.name for p in layout.scan_results] == [
        "results.csv",
        "results.json",
        "upper_limits.png",
        "local_significance.png",
        "best_fit.png",
    ]
    assert {p.parent for p in layout.scan_results} == {layout.scan_lock_file.parent} == {tmp_path / "elsewhere"}


def test_writable_folder_is_created_and_checked(tmp_path, monkeypatch):
    folder = tmp_path / "a" / "b"
    assert writable_folder(folder) == folder and folder.is_dir()
    assert list(folder.iterdir()) == [], "the check leaves nothing behind"
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    for target in (blocker / "out", blocker / "out" / "deeper", blocker):
        reason = f"{blocker} is a file, not a folder"
        with pytest.raises(BumphuntError, match=pattern("output-not-writable", folder=target, reason=reason)):
            writable_folder(target)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.NamedTemporaryFile", refuse)
    with pytest.raises(BumphuntError, match=pattern("output-not-writable", folder=folder, reason="Permission denied")):
        writable_folder(folder)


def test_every_stage_refuses_an_unwritable_folder_before_any_work(tmp_path):
    """Below a regular file nothing can be written, not even by root; the inputs do not exist,
    so a stage that got past the check would fail differently."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    blocked = blocker / "out"
    reason = f"{blocker} is a file, not a folder"
    config = small_config(tmp_path)
    missing = tmp_path / "missing.root"
    below = small_config(tmp_path, output_dir=str(blocked))
    stages = [
        (lambda: run_simulation(config, output_dir=blocked, progress=False), blocked),
        (lambda: run_kinfit(config, [missing], blocked, progress=False), blocked),
        (lambda: run_kinfit(config, [missing], blocked / "fit.root", progress=False), blocked),
        (lambda: run_shapes(config, missing, blocked, progress=False), blocked),
        (lambda: run_scan(config, output_dir=blocked, progress=False), blocked),
        # the folders of the layout, below the configuration's output_dir
        (lambda: run_simulation(below, progress=False), blocked / "simulation"),
        (lambda: run_kinfit(below, [missing], progress=False), blocked / "kinfit"),
        (lambda: run_shapes(below, missing, progress=False), blocked / "shapes"),
        (lambda: run_scan(below, progress=False), blocked / "scan"),
    ]
    for run, folder in stages:
        with pytest.raises(BumphuntError, match=pattern("output-not-writable", folder=folder, reason=reason)):
            run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], "nothing written"


def test_cli_stops_on_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    blocked = blocker / "out"
    source = tmp_path / "input.root"
    source.write_text("never read")
    expected = message("output-not-writable", folder=blocked, reason=f"{blocker} is a file, not a folder")
    for command in (["simulate"], ["kinfit", str(source)], ["shapes", str(source)], ["scan"]):
        args = [*command, "--set", f"output_dir={tmp_path / 'analysis'}", "-o", str(blocked), "-q"]
        result = CliRunner().invoke(main, args, prog_name="bumphunt")
        assert result.exit_code == 2, (command, result.output)
        assert result.output == f"bumphunt: {expected}\n", command
    assert not Path(tmp_path / "analysis").exists()
