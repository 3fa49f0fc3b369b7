"""The mass scan end to end on a small analysis: table, plots, parallel and Dask runs, resume."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

from bumphunt.errors import BumphuntError, NtupleError
from bumphunt.scan import COLUMNS, run_scan, scan_grid, upcrossings

from .conftest import small_config

SCAN = {
    "simulation.signal.masses": {"start": 0.3, "stop": 3.3, "step": 0.25},
    "simulation.signal.events_per_mass": 3000,
    "simulation.backgrounds.ggg.events": 150_000,
    "simulation.chunk_size": 100_000,
    "shapes.n_held_out": 2,
    "shapes.plots": False,
    "scan.start": 0.4,
    "scan.stop": 3.0,
    "scan.step_sigmas": 2.0,
    "scan.global_toys": 1,
    "scan.workers": 1,
}


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """Simulated, fitted and shaped small analysis, ready to scan."""
    from bumphunt.kinfit import run_kinfit
    from bumphunt.shapes import run_shapes
    from bumphunt.simulate import simulate

    tmp_path = tmp_path_factory.mktemp("scan")
    config = small_config(tmp_path, **SCAN)
    simulate(config, progress=False, workers=2)
    run_kinfit(config, progress=False)
    run_shapes(config, progress=False)
    return config


@pytest.fixture(scope="module")
def serial(analysis, tmp_path_factory):
    return run_scan(analysis, output_dir=tmp_path_factory.mktemp("serial"), workers=1, progress=False)


def _table(result):
    return json.loads(result.table_json.read_text())["rows"]


def test_table_plots_and_vetoes(analysis, serial):
    rows = _table(serial)
    assert list(json.loads(serial.table_json.read_text())["columns"]) == list(COLUMNS)
    header = serial.table_csv.read_text().splitlines()[0].split(",")
    assert header == list(COLUMNS) and len(serial.table_csv.read_text().splitlines()) == len(rows) + 1
    masses = np.array([r["mass"] for r in rows])
    low, high = serial.vetoed["eta"]
    assert not np.any((masses > low) & (masses < high)) and high - low > 0.05
    ok = [r for r in rows if r["fit_status"] == "ok"]
    assert len(ok) >= 0.95 * len(rows)
    for r in ok:
        assert r["ul_exp_m2"] < r["ul_exp_m1"] < r["ul_exp"] < r["ul_exp_p1"] < r["ul_exp_p2"]
        assert r["ul_obs"] > 0 and r["xsec_ul_pb"] > 0 and r["g_ul_gev"] > 0
    assert {p.name for p in serial.plots} == {"upper_limits.png", "local_significance.png", "best_fit.png"}
    assert 0 <= serial.global_significance["z_global"] <= serial.global_significance["z_local_max"]


def test_parallel_and_dask_scans_equal_the_serial_scan(analysis, serial, tmp_path):
    parallel = run_scan(analysis, output_dir=tmp_path / "parallel", workers=2, progress=False)
    assert _table(parallel) == _table(serial)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:  # fmt: skip
        on_dask = run_scan(analysis, output_dir=tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    assert _table(on_dask) == _table(serial)


def test_killed_scan_resumes_to_the_same_table(analysis, serial, tmp_path):
    output = tmp_path / "resumed"
    config_path = tmp_path / "analysis.json"
    config_path.write_text(json.dumps(analysis))
    code = (
        "import json, sys; from bumphunt.scan import run_scan; "
        f"run_scan(json.load(open({str(config_path)!r})), output_dir={str(output)!r}, workers=1, progress=False)"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    points = output / "points"
    deadline = time.time() + 120
    while time.time() < deadline and (not points.is_dir() or len(list(points.glob("*.json"))) < 20):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    n_done = len(list(points.glob("*.json")))
    assert 20 <= n_done < len(serial.rows), "the scan must be killed mid-way"
    resumed = run_scan(analysis, output_dir=output, workers=1, progress=False)
    assert resumed.resumed_points >= 20
    assert _table(resumed) == _table(serial)


def test_injected_signal_is_found(analysis, tmp_path):
    config = {**analysis, "scan": {**analysis["scan"], "inject": {"mass": 1.55, "events": 3000}, "step_sigmas": 1.0}}
    result = run_scan(config, output_dir=tmp_path / "injected", progress=False)
    best = result.global_significance
    assert abs(best["mass"] - 1.55) < 0.03 and best["z_local_max"] > 4


def test_bad_data_are_flagged_or_rejected(analysis, tmp_path):
    # a data file with NaN masses and nothing above 2 GeV: NaN ignored, empty windows flagged
    rng = np.random.default_rng(1)
    values = rng.uniform(0.3, 2.0, (40_000, 3))
    values[::10, 0] = np.nan
    data = tmp_path / "data.root"
    with uproot.recreate(data) as file:
        file["events"] = {"m_gg_fit": values, "fit_status": np.zeros(len(values), dtype=np.int32)}
    config = {**analysis, "scan": {**analysis["scan"], "data": str(data), "global_toys": 0, "plots": False}}
    result = run_scan(config, output_dir=tmp_path / "bad", progress=False)
    status = {round(r["mass"], 3): r["fit_status"] for r in result.rows}
    high = [s for m, s in status.items() if m > 2.4]
    assert high and all(s.startswith("empty window") for s in high)
    assert all(np.isnan(r["ul_obs"]) for r in result.rows if r["fit_status"] != "ok")
    # windows (+-20 sigma ~ +-0.2 GeV) inside the data range fit well; those across its
    # edges cannot be described by a polynomial and are flagged, never given a number
    assert all(s == "ok" for m, s in status.items() if 0.6 < m < 1.7)
    with pytest.raises(NtupleError, match="no such file"):
        run_scan({**config, "scan": {**config["scan"], "data": str(tmp_path / "missing.root")}}, progress=False)
    with pytest.raises(BumphuntError, match="cannot read signal shapes"):
        run_scan({**config, "scan": {**config["scan"], "shapes": str(tmp_path / "none.json")}}, progress=False)


def test_grid_and_upcrossings():
    class Flat:
        def resolution(self, mass):
            return np.full(np.shape(mass), 0.01) if np.ndim(mass) else 0.01

    masses, vetoed = scan_grid(Flat(), 0.2, 1.2, 0.5, 3.0)
    assert masses[0] == 0.2 and np.allclose(np.diff(masses)[:10], 0.005)
    for low, high in vetoed.values():
        assert not np.any((masses > low) & (masses < high)) and high - low == pytest.approx(0.06)
    fixed, _ = scan_grid(Flat(), 2.0, 3.0, 0.5, 3.0, step_gev=0.1)
    assert np.allclose(fixed, np.arange(2.0, 3.01, 0.1))
    assert upcrossings(np.array([0, 1, 0, 2, 2, 0, np.nan, 3]), 0.5) == 3


def test_windows_are_cut_at_the_floor_and_stay_normalised(analysis):
    from scipy import integrate

    from bumphunt.scan import _load_model, window_shape

    model = _load_model(str((Path(analysis["output_dir"]) / "shapes" / "signal_shapes.json").resolve()))
    settings = {"window_sigmas": 20.0, "window_floor": 0.3}
    shape = window_shape(model, 0.4, settings)
    assert shape.lower == 0.3 and shape.upper == pytest.approx(0.4 + 20 * float(model.resolution(0.4)), rel=1e-3)
    area = integrate.quad(lambda x: shape.pdf(x)[0], shape.lower, shape.upper, points=[shape.mu], limit=200)[0]
    assert area == pytest.approx(1.0, rel=1e-6)
    assert window_shape(model, 2.0, settings).lower > 0.3  # far from the floor: untouched
