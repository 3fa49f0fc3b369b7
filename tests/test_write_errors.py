"""A full disk, an exceeded quota, a denied permission or a read-only disk while writing: one
line naming the file (BumphuntError), the temporary file removed and the file as it was
(bumphunt._io, NtupleWriter, save_figure, and the CLI for a library's own writes). The
faults are provoked by making the low-level write raise, not by filling a disk."""

import errno
import os
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest
import uproot.sink.file
from click.testing import CliRunner

from bumphunt import _io, cli, plotting
from bumphunt.errors import BumphuntError
from bumphunt.ntuple import NtupleWriter, num_entries, read_ntuple

from .bad_inputs import message, pattern
from .test_ntuple import _random_events

#: The errno of each case of the bad-input table.
CASES = [
    (errno.ENOSPC, "write-disk-full"),
    (errno.EDQUOT, "write-quota"),
    (errno.EACCES, "write-permission"),
    (errno.EPERM, "write-permission"),
    (errno.EROFS, "write-read-only"),
]


def _fault(number: int):
    return OSError(number, os.strerror(number))


def _half_written(monkeypatch, number: int = errno.ENOSPC):
    """Make ``Path.write_text`` write half its text, then fail as a full disk does."""
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise _fault(number)

    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize(("number", "key"), CASES)
def test_atomic_write_stops_on_one_line_and_keeps_the_file(tmp_path, monkeypatch, number, key):
    path = tmp_path / "results.json"
    path.write_text('{"before": 1}')
    _half_written(monkeypatch, number)
    with pytest.raises(BumphuntError, match=pattern(key, path=path)):
        _io.write_json(path, {"after": list(range(100))})
    monkeypatch.undo()
    assert path.read_text() == '{"before": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"], "the temporary file is removed"


@pytest.mark.parametrize(("number", "key"), CASES)
def test_a_failed_rename_keeps_the_file(tmp_path, monkeypatch, number, key):
    path = tmp_path / "sub" / "table.csv"
    path.parent.mkdir()
    path.write_text("a,b\n1,2\n")

    def replace(src, dst):
        raise _fault(number)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(BumphuntError, match=pattern(key, path=path)) as caught:
        _io.atomic_write_text(path, "a,b\n3,4\n")
    assert isinstance(caught.value.__cause__, OSError), "the OSError stays chained"
    assert path.read_text() == "a,b\n1,2\n" and os.listdir(path.parent) == ["table.csv"]


def test_a_new_file_is_not_left_half_written(tmp_path, monkeypatch):
    path = tmp_path / "new.csv"
    _half_written(monkeypatch)
    with pytest.raises(BumphuntError, match=pattern("write-disk-full", path=path)):
        _io.atomic_write_text(path, "x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_other_errors_stay_what_they_are(tmp_path, monkeypatch):
    """An I/O error of the device is not something to free space for: it is not reworded."""
    _half_written(monkeypatch, errno.EIO)
    with pytest.raises(OSError) as caught:
        _io.atomic_write_text(tmp_path / "x.txt", "text")
    assert caught.value.errno == errno.EIO and not isinstance(caught.value, BumphuntError)
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_name_is_shown_as_its_file(tmp_path):
    error = _io.write_error(tmp_path / f".shape_fits.{os.getpid()}.tmp.pdf", _fault(errno.ENOSPC))
    assert str(error) == message("write-disk-full", path=tmp_path / "shape_fits.pdf")
    error = _io.write_error(tmp_path / ".punzinet.77.tmp" / "model.weights.h5", _fault(errno.EROFS))
    assert str(error) == message("write-read-only", path=tmp_path / "punzinet" / "model.weights.h5")
    assert _io.write_error(tmp_path / "x", _fault(errno.EIO)) is None


def _ntuple(path, n=500, seed=0):
    with NtupleWriter(path) as writer:
        writer.extend(_random_events(np.random.default_rng(seed), n))
        writer.metadata = {"sample": "test"}
    return path


def test_ntuple_writer_on_a_full_disk_keeps_the_previous_ntuple(tmp_path, monkeypatch):
    path = _ntuple(tmp_path / "sample.root")
    before = path.read_bytes()
    real = uproot.sink.file.FileSink.write
    calls = []

    def write(self, location, serialization):
        calls.append(location)
        if len(calls) > 5:  # the header and the tree are written, then the disk is full
            raise _fault(errno.ENOSPC)
        return real(self, location, serialization)

    monkeypatch.setattr(uproot.sink.file.FileSink, "write", write)
    rng = np.random.default_rng(1)
    with pytest.raises(BumphuntError, match=pattern("write-disk-full", path=path)):
        with NtupleWriter(path) as writer:
            for _ in range(20):
                writer.extend(_random_events(rng, 2000))
            writer.metadata = {"sample": "test"}
    monkeypatch.undo()
    assert path.read_bytes() == before and num_entries(path) == 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.root"]


@pytest.mark.parametrize(("number", "key"), CASES)
def test_ntuple_writer_failing_at_the_end_leaves_nothing(tmp_path, monkeypatch, number, key):
    """The last writes (metadata, closing) or the rename fail: no ntuple, no temporary file."""
    path = tmp_path / "new.root"

    def replace(src, dst):
        raise _fault(number)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(BumphuntError, match=pattern(key, path=path)):
        _ntuple(path)
    assert list(tmp_path.iterdir()) == []


def test_ntuple_writer_that_cannot_create_its_file(tmp_path, monkeypatch):
    path = tmp_path / "denied.root"

    def recreate(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(uproot, "recreate", recreate)
    with pytest.raises(BumphuntError, match=pattern("write-permission", path=path)):
        _ntuple(path)
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_works_still_writes(tmp_path):
    path = _ntuple(tmp_path / "ok.root", n=300)
    assert len(read_ntuple(path, ["weight"])["weight"]) == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.root"]


@pytest.mark.parametrize(("number", "key"), CASES)
def test_save_figure_on_a_full_disk_keeps_the_previous_figure(tmp_path, monkeypatch, number, key):
    import matplotlib.pyplot as plt

    path = tmp_path / "upper_limits.png"
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    plotting.save_figure(ax, path)
    before = path.read_bytes()

    def savefig(self, target, *args, **kwargs):
        Path(target).write_bytes(b"\x89PNG half a figure")
        raise _fault(number)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    fig, ax = plt.subplots()
    with pytest.raises(BumphuntError, match=pattern(key, path=path)):
        plotting.save_figure(ax, path)
    assert not plt.fignum_exists(fig.number), "the figure is closed all the same"
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["upper_limits.png"]


def test_the_cli_says_so_on_one_line_for_a_write_of_a_library(tmp_path, monkeypatch):
    """Writes bumphunt does not make itself (a library's writer) still end on one line:
    naming the file when the error does (a temporary name shown as its file), else the folder
    the command writes to."""
    import bumphunt.report

    folder = tmp_path / "analysis"
    for error, expected in [
        (OSError(errno.ENOSPC, "No space left on device", str(folder / "report" / ".page.123.tmp")),
         message("write-disk-full", path=folder / "report" / "page")),
        (OSError(errno.ENOSPC, "No space left on device"), message("write-disk-full", path=folder)),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), message("write-quota", path=folder)),
    ]:  # fmt: skip

        def write_report(config, stages=None, error=error):
            raise error

        monkeypatch.setattr(bumphunt.report, "write_report", write_report)
        result = CliRunner().invoke(cli.main, ["report", "--set", f"output_dir={folder}"])
        assert result.exit_code == 2, result.output
        assert result.output == f"bumphunt: {expected}\n"
    # a permission error may be a read's: it is not taken for a write's
    monkeypatch.setattr(bumphunt.report, "write_report", lambda config, stages=None: open(folder / "nothing"))
    result = CliRunner().invoke(cli.main, ["report", "--set", f"output_dir={folder}"])
    assert result.exit_code == 1 and isinstance(result.exception, FileNotFoundError)
