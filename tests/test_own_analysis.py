"""An analysis on the analyst's own ntuples: basf2-like candidate rows read through a ``samples``
section give the chain of bumphunt's own ntuples of the same events, the data stay blinded
until unblinded, and bad inputs get one line naming file and key (docs/own-analysis.md)."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import uproot

from bumphunt.cli import _run_chain
from bumphunt.config import load_config
from bumphunt.errors import ConfigError, NtupleError
from bumphunt.kinematics import Beams
from bumphunt.kinfit import fit_photons, run_kinfit
from bumphunt.layout import OutputLayout
from bumphunt.ntuple import read_metadata, read_ntuple, read_selected
from bumphunt.results import read_table
from bumphunt.samples import analysis_samples, read_sample
from bumphunt.scan import COLUMNS, run_scan

from .bad_inputs import pattern

EXAMPLE = Path(__file__).parents[1] / "examples" / "own_ntuples" / "make_ntuples.py"
#: The quick analysis, smaller still: the chain twice in about a minute.
SMALL = {
    "simulation.signal.masses": {"start": 1.5, "stop": 3.5, "step": 0.25},
    "simulation.signal.events_per_mass": 800,
    "simulation.signal.long_lived": {"couplings": [], "events_per_mass": 200},
    "simulation.backgrounds.ggg.events": 40000,
    "simulation.backgrounds.gg.events": 10000,
    "simulation.backgrounds.eeg.events": 2000,
    **{
        f"simulation.backgrounds.{name}.events": 500
        for name in (
            "pi0_gamma",
            "eta_gamma",
            "etaprime_gamma",
            "pi0_gamma_gamma",
            "eta_gamma_gamma",
            "etaprime_gamma_gamma",
        )
    },
    "select.bdt_baseline": False,
    "simulation.workers": 1,
    "select.network": {"hidden": [8, 8], "bce_epochs": 2, "punzi_epochs": 2},
    "select.n_held_out": 1,
    "shapes.n_held_out": 1,
    "scan.start": 1.7,
    "scan.stop": 3.3,
    "scan.step_sigmas": 4.0,
    "scan.global_toys": 0,
    "scan.workers": 1,
    "systematics.impact_step": 0.0,
}


def _example():
    spec = importlib.util.spec_from_file_location("make_ntuples", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    """The toy's chain, and the chain on basf2-like files written from the toy's simulation."""
    folder = tmp_path_factory.mktemp("own")
    toy = load_config(None, {**SMALL, "output_dir": str(folder / "toy")})
    _run_chain(toy, quiet=True)
    own = load_config(_example().write_candidate_ntuples(folder / "toy" / "simulation", folder / "own"))
    _run_chain(own, quiet=True)
    return toy, own


@pytest.mark.slow
def test_the_chain_on_candidate_rows_equals_the_chain_on_bumphunt_ntuples(chains):
    toy, own = chains
    toy_layout, own_layout = OutputLayout.from_config(toy), OutputLayout.from_config(own)
    for toy_name, own_name in (("alp", "signal"), ("ggg", "ggg"), ("gg", "gg")):
        a = read_ntuple(toy_layout.ntuple("kinfit", toy_name), ["fit_chi2", "fit_status", "weight"])
        b = read_ntuple(own_layout.ntuple("kinfit", own_name), ["fit_chi2", "fit_status", "weight"])
        np.testing.assert_array_equal(b["fit_status"], a["fit_status"])
        np.testing.assert_allclose(b["fit_chi2"], a["fit_chi2"], rtol=1e-12, atol=0)
        np.testing.assert_allclose(b["weight"], a["weight"], rtol=1e-12, atol=0)
    before, after = read_table(toy_layout.scan_table_json), read_table(own_layout.scan_table_json)
    assert len(before) == len(after) > 5 and list(after["fit_status"]) == list(before["fit_status"])
    for column in COLUMNS:
        if column != "fit_status":
            np.testing.assert_allclose(after[column], before[column], rtol=1e-9, atol=0, err_msg=column)
    model = json.loads(own_layout.shapes_file.read_text())
    assert model["settings"]["truth_matching"] == "truth"
    assert read_metadata(own_layout.ntuple("kinfit", "signal"))["truth_matching"] is True


@pytest.mark.slow
def test_data_stay_blinded_until_unblinded(chains, tmp_path):
    """Blinded by default: the scan of the analysis with a data sample is the scan of the toy,
    which has none (no data event entered a fit), and says so; unblinded, it fits the data."""
    _, own = chains
    layout = OutputLayout.from_config(own)
    blinded = read_table(layout.scan_table_json)
    assert blinded.settings["blinded"] is True
    report = layout.report_html.read_text()
    assert "BLINDED: pseudo-data from the background samples" in report
    datamc = {p.name for p in layout.select_dir.glob("datamc_*.png")}
    assert datamc == {"datamc_m_gg.png", "datamc_photon_E.png", "datamc_photon_theta.png", "datamc_punzi_score.png"}
    unblinded = run_scan({**own, "unblind": True}, output_dir=tmp_path / "unblinded", progress=False).result
    assert unblinded.settings["blinded"] is False
    data = read_ntuple(layout.ntuple("kinfit", "data"), ["fit_status"])
    assert len(data["fit_status"]) > 0
    assert not np.array_equal(unblinded["n_events"], blinded["n_events"])


def _candidate_file(path: Path, n: int = 40, *, tree: str = "cands", energy_scale: float = 1.0,
                    n_candidates: int = 1, sqrt_s=None, run=None) -> Path:  # fmt: skip
    """A basf2-like file of ``n`` events of three back-to-back-ish photons."""
    rng = np.random.default_rng(5)
    rows = n * n_candidates
    branches = {
        "__experiment__": np.full(rows, 8, dtype=np.int32),
        "__run__": np.asarray(run if run is not None else np.full(rows, 101), dtype=np.int32),
        "__event__": np.repeat(np.arange(n, dtype=np.int32), n_candidates),
        "__candidate__": np.tile(np.arange(n_candidates, dtype=np.int32), n),
        "chiProb": rng.uniform(size=rows),
    }
    for i, energy in enumerate((5.2, 3.0, 1.5)):
        branches[f"gamma{i}_E"] = energy * energy_scale * rng.uniform(0.95, 1.05, rows)
        branches[f"gamma{i}_theta"] = rng.uniform(0.6, 2.4, rows)
        branches[f"gamma{i}_phi"] = rng.uniform(-np.pi, np.pi, rows)
        for q in ("E", "Theta", "Phi"):
            branches[f"gamma{i}_clusterError{q}"] = np.full(rows, 0.01)
    if sqrt_s is not None:
        branches["Ecms"] = np.asarray(sqrt_s, dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as file:
        file[tree] = branches
    return path


PHOTONS = {
    "photon_E": "gamma{i}_E",
    "photon_theta": "gamma{i}_theta",
    "photon_phi": "gamma{i}_phi",
    "photon_error_E": "gamma{i}_clusterErrorE",
    "photon_error_theta": "gamma{i}_clusterErrorTheta",
    "photon_error_phi": "gamma{i}_clusterErrorPhi",
}


def _config(tmp_path, **samples):
    return load_config(None, {"output_dir": str(tmp_path / "out"), "samples": samples})


def _signal(path, **extra):
    return {"role": "signal", "files": str(path), "tree": "cands", "mass": 1.0, "n_generated": 1000,
            "branches": PHOTONS, **extra}  # fmt: skip


def test_candidate_rows_become_events(tmp_path):
    """Photons by decreasing energy, diagonal covariance from the cluster errors, one candidate
    per event by the best-candidate rule, weights from the cross-section."""
    signal = _candidate_file(tmp_path / "sig.root")
    background = _candidate_file(tmp_path / "bkg.root", n=30, n_candidates=3)
    config = _config(tmp_path, alp=_signal(signal), qed={
        "role": "background", "files": str(background), "tree": "cands", "cross_section_pb": 2.0,
        "n_generated": 600, "best_candidate": {"expression": "chiProb", "rule": "max"},
        "branches": PHOTONS})  # fmt: skip
    samples = analysis_samples(config)
    assert [samples[n].sample_id for n in ("alp", "qed")] == [0, 1]
    events = np.concatenate([chunk["photon_E"] for _, chunk in read_sample(samples["alp"], config)])
    assert events.shape == (40, 3) and np.all(np.diff(events, axis=1) <= 0)
    chunks = [chunk for _, chunk in read_sample(samples["qed"], config, step_size=7)]  # events cross chunks
    kept = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    raw = uproot.open(background)["cands"].arrays(library="np")
    best = [np.argmax(raw["chiProb"][raw["__event__"] == e]) for e in range(30)]
    assert list(kept["event"]) == list(range(30)) and list(kept["candidate"]) == best
    np.testing.assert_allclose(kept["weight"], 2.0 * config["luminosity"] / 600, rtol=1e-15)
    np.testing.assert_allclose(kept["photon_cov"][..., 0], 1e-4, rtol=1e-6)
    assert np.all(kept["photon_cov"][..., [1, 2, 4]] == 0)
    np.testing.assert_array_equal(kept["beam"], np.broadcast_to(Beams.from_config(config).four_momentum, (30, 4)))


def test_momenta_and_beams_per_run(tmp_path):
    """px/py/pz give the angles; a run table gives each event its beams, and the fit uses them."""
    path = _candidate_file(tmp_path / "data.root", n=6, run=[101, 101, 102, 102, 103, 103])
    with uproot.open(path) as file:
        branches = file["cands"].arrays(library="np")
    for i in range(3):
        e, t, f = branches[f"gamma{i}_E"], branches[f"gamma{i}_theta"], branches[f"gamma{i}_phi"]
        branches[f"gamma{i}_px"], branches[f"gamma{i}_py"] = e * np.sin(t) * np.cos(f), e * np.sin(t) * np.sin(f)
        branches[f"gamma{i}_pz"] = e * np.cos(t)
    with uproot.recreate(path) as file:
        file["cands"] = branches
    table = tmp_path / "runs.csv"
    table.write_text("experiment,run,e_minus_energy,e_plus_energy\n8,101,7.0,4.0\n8,102,7.002,4.0\n8,103,7.0,3.998\n")
    momenta = {k: v for k, v in PHOTONS.items() if k not in ("photon_theta", "photon_phi")}
    momenta |= {"photon_px": "gamma{i}_px", "photon_py": "gamma{i}_py", "photon_pz": "gamma{i}_pz"}
    config = _config(tmp_path, alp=_signal(path), data={"role": "data", "files": str(path), "tree": "cands",
                                                        "beam_table": str(table), "branches": momenta})  # fmt: skip
    ((_, chunk),) = read_sample(analysis_samples(config)["data"], config)
    order = np.argsort(-branches["gamma0_E"][:1])  # the leading photon is gamma0 here
    np.testing.assert_allclose(chunk["photon_theta"][:, order[0]], branches["gamma0_theta"], rtol=1e-12)
    beams = [Beams(7.0, 4.0), Beams(7.002, 4.0), Beams(7.0, 3.998)]
    expected = np.array([beams[k].four_momentum for k in (0, 0, 1, 1, 2, 2)])
    np.testing.assert_allclose(chunk["beam"], expected, rtol=1e-15)
    one_by_one = [fit_photons(*(chunk[b][i : i + 1] for b in ("photon_E", "photon_theta", "photon_phi",
                                                                  "photon_cov")), expected[i]).chi2[0]
                  for i in range(6)]  # fmt: skip
    together = fit_photons(chunk["photon_E"], chunk["photon_theta"], chunk["photon_phi"], chunk["photon_cov"], expected)
    np.testing.assert_array_equal(together.chi2, one_by_one)


def test_bad_samples_are_one_line_errors(tmp_path):
    good = _candidate_file(tmp_path / "alp_m1p500.root")
    with pytest.raises(ConfigError, match=pattern("sample-unknown-role", name="x", role="'simulation'")):
        _config(tmp_path, alp=_signal(good), x={"role": "simulation", "files": str(good)})
    config = _config(tmp_path, alp=_signal(good), bkg={"role": "background", "files": str(tmp_path / "nothing*.root"),
                                                       "branches": PHOTONS})  # fmt: skip
    with pytest.raises(
        ConfigError, match=pattern("sample-glob-empty", name="bkg", pattern="'" + str(tmp_path / "nothing*.root") + "'")
    ):
        run_kinfit(config, progress=False)
    config = _config(tmp_path, alp=_signal(good, branches={**PHOTONS, "photon_E": "gamma{i}_energy"}))
    expected = pattern("sample-missing-branch", path=good, tree="cands", branch="'gamma0_energy'", name="alp",
                       quantity="photon_E")  # fmt: skip
    with pytest.raises(NtupleError, match=expected):
        run_kinfit(config, progress=False)
    config = _config(tmp_path, alp=_signal(good, mass={"filename": r"alp_mass(\d+)"}))
    with pytest.raises(NtupleError, match=pattern("sample-mass-unreadable", path=good, name="alp",
                                                  regex="'alp_mass(\\\\d+)'")):  # fmt: skip
        run_kinfit(config, progress=False)
    mixed = _candidate_file(tmp_path / "mixed.root", n=4, sqrt_s=[10.58, 10.58, 10.52, 10.52])
    config = _config(tmp_path, alp=_signal(mixed, branches={**PHOTONS, "sqrt_s": "Ecms"}))
    with pytest.raises(NtupleError, match=pattern("sample-mixed-beams", path=mixed, low="10.5200", high="10.5800",
                                                  expression="Ecms", name="alp")):  # fmt: skip
        run_kinfit(config, progress=False)
    mev = _candidate_file(tmp_path / "mev.root", energy_scale=1000.0)
    config = _config(tmp_path, alp=_signal(mev))
    with pytest.raises(NtupleError, match=r"are they in MeV\? bumphunt reads GeV$"):
        run_kinfit(config, progress=False)
    largest = max(uproot.open(mev)["cands"]["gamma0_E"].array(library="np"))
    with pytest.raises(NtupleError, match=pattern("sample-mev", path=mev, largest=f"{largest:.4g}", name="alp",
                                                  total=f"{Beams().four_momentum[0]:.4g}")):  # fmt: skip
        run_kinfit(config, progress=False)


def test_the_roles_of_an_analysis(tmp_path):
    good = str(_candidate_file(tmp_path / "alp_m1p500.root"))
    with pytest.raises(ConfigError, match="needs exactly one sample of role signal, found 2"):
        _config(tmp_path, a=_signal(good), b=_signal(good))
    with pytest.raises(ConfigError, match="^config error at 'unblind': there is no data to unblind"):
        load_config(None, {"unblind": True})
    with pytest.raises(ConfigError, match="^config error at 'samples.alp.branches.photon_E': 'gamma_E' names one"):
        _config(tmp_path, alp=_signal(good, branches={**PHOTONS, "photon_E": "gamma_E"}))
    with pytest.raises(ConfigError, match="^config error: missing key 'samples.alp.branches.photon_error_E'"):
        _config(tmp_path, alp=_signal(good, branches={k: v for k, v in PHOTONS.items() if k != "photon_error_E"}))


def test_a_stage_never_overwrites_a_file_it_did_not_write(tmp_path):
    """The analyst's own file where the kinematic fit would write is refused, and left as it was."""
    good = _candidate_file(tmp_path / "alp_m1p500.root")
    config = _config(tmp_path, alp=_signal(good, branches={**PHOTONS, "score": "chiProb"}))
    foreign = OutputLayout.from_config(config).ntuple("kinfit", "alp")
    _candidate_file(foreign, n=7)
    before = foreign.read_bytes()
    with pytest.raises(NtupleError, match=pattern("stage-foreign-file", path=foreign)):
        run_kinfit(config, progress=False)
    assert foreign.read_bytes() == before
    foreign.unlink()
    run_kinfit(config, progress=False)  # its own file it rewrites
    run_kinfit(config, progress=False)
    assert len(read_ntuple(foreign, ["fit_chi2"])["fit_chi2"]) == 40
    # the user's own score is a branch a cut can use (shapes.selection: "user_score > 0.5")
    scores = uproot.open(good)["cands"]["chiProb"].array(library="np")
    selected = read_selected(foreign, ["user_score"], "user_score > 0.5")["user_score"]
    np.testing.assert_array_equal(selected, scores[scores > 0.5])


def test_signal_without_truth_is_matched_to_the_nearest_pair():
    from bumphunt.shapes.stage import nearest_pair_matching

    rng = np.random.default_rng(3)
    n = 2000
    candidates = rng.uniform(0.5, 4.0, (n, 3))
    correct = rng.integers(0, 3, n)
    candidates[np.arange(n), correct] = rng.normal(2.0, 0.02, n)
    matched = nearest_pair_matching(candidates, 2.0)
    assert matched.sum(axis=1).max() == 1
    inside = matched.any(axis=1)
    assert 0.95 < inside.mean() < 1.0  # 3 robust sigma keep ~99.7 % of a Gaussian peak, a few wrong pairs
    # a wrong pair (2 per event, 0.57 per GeV) nearer than the right one: ~2 % of events
    assert np.mean(np.argmax(matched[inside], axis=1) == correct[inside]) > 0.97
    assert math.isclose(1.4826 * np.median(np.abs(candidates[np.arange(n), correct] - 2.0)), 0.02, rel_tol=0.1)
