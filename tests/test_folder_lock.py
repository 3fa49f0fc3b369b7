"""One bumphunt command at a time per folder: ``bumphunt run`` and every stage command lock
the folder they write to (bumphunt.pipeline.lock_folder); a second one stops at once, naming
the holder, and the lock never outlives its process."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bumphunt import cli, pipeline
from bumphunt.errors import BumphuntError
from bumphunt.layout import OutputLayout
from bumphunt.scan.runner import lock_scan_folder

from .bad_inputs import message, pattern

#: Every command that writes to an analysis folder, with the arguments it needs.
COMMANDS = [["run"], ["run", "--quick"], ["simulate"], ["kinfit"], ["select"], ["shapes"], ["scan"], ["count"],
            ["exclusion"], ["report"]]  # fmt: skip

HOLD = """
import sys
from bumphunt.pipeline import lock_folder
with lock_folder(sys.argv[1], "bumphunt run"):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held(tmp_path):
    """A folder another process holds, as ``bumphunt run`` does: (folder, process, holder)."""
    folder = tmp_path / "analysis"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout.readline() == "locked\n"
        holder = json.loads((folder / pipeline.HOLDER_NAME).read_text())
        described = f"bumphunt run (process {process.pid} on {holder['host']}, since {holder['since']})"
        yield folder, process, described
    finally:
        process.kill()
        process.wait()


def test_every_command_stops_at_once_while_another_writes_the_folder(held):
    folder, process, holder = held
    assert holder.startswith(f"bumphunt run (process {process.pid} on ")
    expected = f"bumphunt: {message('folder-locked', folder=folder, holder=holder)}\n"
    for command in COMMANDS:
        start = time.perf_counter()
        quiet = [] if command[0] == "report" else ["-q"]
        result = CliRunner().invoke(cli.main, [*command, "--set", f"output_dir={folder}", *quiet])
        assert result.exit_code == 2, (command, result.output)
        assert result.output == expected, command
        assert time.perf_counter() - start < 5, f"{command} waited"
    assert sorted(p.name for p in folder.iterdir()) == [pipeline.LOCK_NAME, pipeline.HOLDER_NAME], "nothing written"


def test_the_lock_ends_with_its_process_even_a_killed_one(held):
    folder, process, _ = held
    process.send_signal(signal.SIGKILL)
    process.wait()
    # the killed holder left its holder file; the lock is free all the same, and taken over
    assert (folder / pipeline.HOLDER_NAME).is_file()
    with pipeline.lock_folder(folder, "bumphunt scan") as locked:
        assert locked == folder
        assert json.loads((folder / pipeline.HOLDER_NAME).read_text())["command"] == "bumphunt scan"
    assert not (folder / pipeline.HOLDER_NAME).exists(), "a released lock names no holder"


def test_a_command_writing_elsewhere_is_not_held_up(held, tmp_path):
    """-o/--output writes to another folder: that folder is locked, not the analysis'."""
    folder, _, _ = held
    missing = tmp_path / "missing.root"
    for command in (["kinfit", str(missing)], ["shapes", str(missing)]):
        result = CliRunner().invoke(cli.main, [*command, "--set", f"output_dir={folder}", "-o", str(tmp_path / "own")])
        assert result.exit_code == 2 and "is writing there" not in result.output, result.output
        assert f"{missing}: no such file" in result.output, result.output


def test_the_lock_is_reentrant_in_a_thread_and_refuses_another_thread(tmp_path):
    folder = tmp_path / "analysis"
    with pipeline.lock_folder(folder, "bumphunt run"):
        with pipeline.lock_folder(folder, "bumphunt scan"):  # the same thread: re-entrant
            pass
        holder = json.loads((folder / pipeline.HOLDER_NAME).read_text())
        assert holder["command"] == "bumphunt run", "the outer command still holds it"
        refused = []

        def second():
            try:
                with pipeline.lock_folder(folder, "bumphunt report"):
                    pass
            except BumphuntError as error:
                refused.append(str(error))

        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
        described = f"bumphunt run (process {holder['pid']} on {holder['host']}, since {holder['since']})"
        assert refused == [message("folder-locked", folder=folder, holder=described)]
    with pipeline.lock_folder(folder, "bumphunt report"):  # released: free again
        pass


def test_the_scan_s_own_lock_still_works_inside_the_folder_lock(tmp_path):
    folder = tmp_path / "analysis"
    layout = OutputLayout(folder)
    with pipeline.lock_folder(folder, "bumphunt scan"):
        lock = lock_scan_folder(layout)
        try:
            assert lock.is_locked and layout.scan_lock_file.is_file()
        finally:
            lock.release()
    # the lock files are no outputs of a stage folder (a folder locked with -o may be one)
    assert pipeline._output_files(folder / "scan") == {}


def test_a_holder_file_that_cannot_be_read(tmp_path):
    folder = tmp_path / "analysis"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout.readline() == "locked\n"
        (folder / pipeline.HOLDER_NAME).write_text("{broken")
        with pytest.raises(BumphuntError, match=pattern("folder-locked", folder=folder,
                                                        holder="another bumphunt command")):  # fmt: skip
            with pipeline.lock_folder(folder, "bumphunt run"):
                pass
    finally:
        process.kill()
        process.wait()
    assert Path(folder / pipeline.LOCK_NAME).is_file()
