"""``bumphunt run`` on a copied results folder and on a full disk: a copy that resets the
modification times (``cp -r``) keeps every stage up to date (content hashes in the records),
an edit that keeps a file's size is still seen, and a full disk in a stage stops the run on
one line with every file as it was, so a rerun recovers."""

import errno
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bumphunt import cli, pipeline
from bumphunt.layout import OutputLayout

from .bad_inputs import message


def _invoke(folder: Path, *args: str):
    return CliRunner().invoke(cli.main, ["run", "--quick", "-q", "--set", f"output_dir={folder}", *args])


def _run(folder: Path, *args: str) -> str:
    result = _invoke(folder, *args)
    assert result.exit_code == 0, result.output
    return result.output


def _stages(output: str, what: str) -> list[str]:
    return [stage for stage in pipeline.STAGE_NAMES if re.search(rf"^{stage}: {what}\b", output, re.MULTILINE)]


def _contents(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def quick_folder(quick_run):
    """The shared quick run's folder (tests/conftest.py); tests that change it work on a copy."""
    return quick_run[0]


@pytest.fixture
def plain_copy(quick_folder, tmp_path):
    """A copy of the quick run as ``cp -r`` makes it: contents only, every time new."""
    folder = tmp_path / "copy"
    shutil.copytree(quick_folder, folder, copy_function=shutil.copyfile)
    return folder


@pytest.fixture
def hashes(monkeypatch):
    """The files whose content the pipeline reads from now on (none hashed before)."""
    read = []
    real = pipeline.content_hash

    def content_hash(path, status=None):
        read.append(Path(path))
        return real(path, status)

    pipeline._HASHES.clear()
    monkeypatch.setattr(pipeline, "content_hash", content_hash)
    return read


def test_a_copy_without_times_skips_every_stage(quick_folder, plain_copy, hashes):
    sample = plain_copy / "kinfit" / "alp.root"
    assert sample.stat().st_mtime_ns != (quick_folder / "kinfit" / "alp.root").stat().st_mtime_ns
    before = _contents(plain_copy)
    output = _run(plain_copy)
    for stage in pipeline.STAGE_NAMES:
        assert message("copied-folder", stage=stage) in output.splitlines(), output
    assert _stages(output, "runs") == []
    assert sample in hashes, "the files whose time changed were compared by content"
    # the records took the copies' times (nothing else changed), so the next run reads no file
    after = _contents(plain_copy)
    changed = sorted(name for name in before if after[name] != before[name])
    assert changed == [f"{stage}/fingerprint.json" for stage in sorted(pipeline.STAGE_NAMES)]
    hashes.clear()
    pipeline._HASHES.clear()
    assert _stages(_run(plain_copy), "up to date") == list(pipeline.STAGE_NAMES)
    assert hashes == [], "an unchanged folder is checked by size and time alone"


def test_an_unchanged_folder_is_not_read(quick_folder, hashes):
    assert _stages(_run(quick_folder), "runs") == []
    assert hashes == []


def test_an_edit_that_keeps_the_size_is_seen(plain_copy, hashes):
    table = plain_copy / "exclusion" / "exclusion.csv"
    text = table.read_text()
    digit = re.search(r"\d", text.splitlines()[1]).start() + len(text.splitlines()[0]) + 1
    edited = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1 :]
    table.write_text(edited)
    assert len(edited) == len(text)
    output = _run(plain_copy)
    assert message("output-edited-same-size", stage="exclusion", name="exclusion.csv") in output.splitlines()
    assert _stages(output, "runs") == ["exclusion", "report"]
    assert table.read_text() == text, "the stage rewrote it"


def test_the_upstream_part_of_a_fingerprint_survives_a_copy(quick_folder, plain_copy):
    for stage in pipeline.CHAIN:
        original = pipeline.fingerprint(stage, _quick(quick_folder), OutputLayout(quick_folder))
        copied = pipeline.fingerprint(stage, _quick(plain_copy), OutputLayout(plain_copy))
        assert copied.parts["upstream"] == original.parts["upstream"], stage.name
        recorded = pipeline.read_record(stage, OutputLayout(plain_copy))
        assert copied.digest == recorded["fingerprint"], stage.name


def _quick(folder: Path) -> dict:
    return cli._load_run_config(None, (f"output_dir={folder}",), True)


def _full_disk_on(monkeypatch, name: str):
    """The disk is full when ``name`` is written (half of it is, in its temporary file)."""
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self.name.startswith(f".{name}."):
            real(self, text[: len(text) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize(("stage", "gone", "written"), [
    ("scan", "scan/upper_limits.png", "scan/results.csv"),
    ("exclusion", "exclusion/coupling_exclusion.png", "exclusion/exclusion.json"),
])  # fmt: skip
def test_a_full_disk_in_a_stage_stops_on_one_line_and_a_rerun_recovers(plain_copy, monkeypatch, stage, gone, written):
    (plain_copy / gone).unlink()
    before = _contents(plain_copy)
    _full_disk_on(monkeypatch, Path(written).name)
    result = _invoke(plain_copy)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.splitlines()[-1] == f"bumphunt: {message('write-disk-full', path=plain_copy / written)}"
    assert f"{stage}: runs (output {Path(gone).name} is missing)" in result.output
    after = _contents(plain_copy)
    assert after[written] == before[written], "the file is as it was"
    assert not [name for name in after if ".tmp" in name], "no temporary file is left"
    monkeypatch.undo()
    output = _run(plain_copy)
    assert _stages(output, "runs")[0] == stage and (plain_copy / gone).is_file()
