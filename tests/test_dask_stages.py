"""The heavy stages on a Dask cluster: a LocalCluster of two worker processes simulates,
fits and scores the quick analysis to the numbers of its serial run (tests/conftest.py
``quick_run``); a scheduler that cannot be reached, or a missing dask.distributed, stops a
command on one line; where the work runs is no part of a stage's fingerprint."""

import sys

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose, assert_array_equal

from bumphunt import cli, pipeline
from bumphunt._parallel import connect
from bumphunt.config import load_config
from bumphunt.errors import BumphuntError
from bumphunt.kinfit import KINFIT_BRANCHES, run_kinfit
from bumphunt.layout import OutputLayout
from bumphunt.ntuple import read_metadata, read_ntuple
from bumphunt.select.stage import FRIEND_BRANCHES, run_select
from bumphunt.simulation import run_simulation

#: Serial and Dask results agree to this relative tolerance (they are expected to agree bit for bit).
RTOL = 1e-12
#: A local address where no scheduler listens: the connection is refused at once.
NOWHERE = "tcp://127.0.0.1:1"


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of two single-threaded worker processes, as on a batch cluster."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:  # fmt: skip
        yield cluster.scheduler_address


def _quick_config(folder) -> dict:
    """The configuration of the shared quick run (``bumphunt run --quick``)."""
    return cli._load_run_config(None, (f"output_dir={folder}",), True)


def _assert_same_branches(path, reference, branches=None):
    """Every branch of ``path`` equals the one of ``reference``, array by array."""
    ours, theirs = read_ntuple(path, branches), read_ntuple(reference, branches)
    assert sorted(ours) == sorted(theirs), path
    for name, values in theirs.items():
        if np.issubdtype(values.dtype, np.floating):
            assert_allclose(ours[name], values, rtol=RTOL, atol=0.0, equal_nan=True, err_msg=f"{path}: {name}")
        else:
            assert_array_equal(ours[name], values, err_msg=f"{path}: {name}")


def test_simulation_kinfit_and_scoring_on_dask_equal_the_serial_run(quick_run, scheduler, tmp_path):
    folder, _ = quick_run
    config = _quick_config(folder)
    serial = OutputLayout.from_config(config)
    simulated = sorted(serial.simulation_dir.glob("*.root"))
    assert len(simulated) >= 10

    run_simulation(config, output_dir=tmp_path / "simulation", scheduler=scheduler, progress=False)
    for reference in simulated:
        ours = tmp_path / "simulation" / reference.name
        _assert_same_branches(ours, reference)
        assert read_metadata(ours) == read_metadata(reference)

    # the fit of the serial run's ntuples, a file per worker, reading and writing where this process does
    run_kinfit(config, simulated, tmp_path / "kinfit", scheduler=scheduler, progress=False)
    for reference in sorted(serial.kinfit_dir.glob("*.root")):
        _assert_same_branches(tmp_path / "kinfit" / reference.name, reference, list(KINFIT_BRANCHES))

    # the serial run's network applied to its fitted events, scored in chunks on the workers
    summary = run_select({**config, "select": {**config["select"], "plots": False}}, tmp_path / "select",
                         model_path=serial.select_model_dir, scheduler=scheduler, progress=False)  # fmt: skip
    assert len(summary.friends) == len(simulated)
    for ours in summary.friends:
        _assert_same_branches(ours, serial.select_dir / ours.name, list(FRIEND_BRANCHES))


def test_own_samples_with_relative_paths_are_fitted_on_dask_as_here(scheduler, tmp_path, monkeypatch):
    """basf2-like candidate files named relative to this process' working directory, which a
    worker does not share: the workers get them from the filesystem's root."""
    from .test_own_analysis import PHOTONS, _candidate_file

    monkeypatch.chdir(tmp_path)
    _candidate_file(tmp_path / "alp_1.root")
    _candidate_file(tmp_path / "qed.root", n=30)
    common = {"tree": "cands", "branches": PHOTONS}
    samples = {
        "alp": {"role": "signal", "files": "alp_*.root", "mass": 1.0, "n_generated": 1000, **common},
        "qed": {"role": "background", "files": "qed.root", "cross_section_pb": 2.0, "n_generated": 600, **common},
    }
    config = load_config(None, {"output_dir": "out", "samples": samples})
    here = run_kinfit(config, output="here", progress=False)
    there = run_kinfit(config, output="there", scheduler=scheduler, progress=False)
    assert [s.output_path.name for s in there] == [s.output_path.name for s in here] == ["alp.root", "qed.root"]
    for ours, reference in zip(there, here):
        _assert_same_branches(ours.output_path, reference.output_path)
        assert read_metadata(ours.output_path) == read_metadata(reference.output_path)


@pytest.mark.parametrize(
    "command",
    [
        ["simulate", "--scheduler", NOWHERE],
        ["kinfit", "missing.root", "--scheduler", NOWHERE],
        ["select", "--set", f"dask.scheduler={NOWHERE}"],
    ],
    ids=["simulate", "kinfit", "select-from-the-configuration"],
)
def test_an_unreachable_scheduler_stops_on_one_line(command, tmp_path):
    result = CliRunner().invoke(cli.main, [*command, "-q", "--set", f"output_dir={tmp_path / 'out'}"])
    assert result.exit_code == 2, result.output
    assert result.output == f"bumphunt: cannot reach the Dask scheduler at {NOWHERE} (Connection refused; " \
                            "docs/cluster.md)\n"  # fmt: skip


def test_without_dask_distributed_the_scheduler_is_refused_on_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    with pytest.raises(BumphuntError) as error:
        connect(NOWHERE)
    assert str(error.value) == (
        f"running on the Dask cluster at {NOWHERE} needs dask.distributed: pip install 'bumphunt[dask]'"
    )


def test_the_scheduler_is_no_part_of_a_stage_fingerprint(tmp_path):
    config = cli._load_run_config(None, (f"output_dir={tmp_path}",), True)
    elsewhere = {**config, "dask": {"scheduler": "tcp://batch-node:8786"}}
    for stage in pipeline.CHAIN:
        if stage.settings != ("*",):  # the report reads the whole configuration
            assert pipeline.settings_of(stage, elsewhere) == pipeline.settings_of(stage, config), stage.name
