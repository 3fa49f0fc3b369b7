import csv

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from bumphunt import physics
from bumphunt.config import signal_masses
from bumphunt.kinematics import Beams, invariant_mass, photon_four_vectors
from bumphunt.layout import OutputLayout
from bumphunt.ntuple import (
    BACKGROUND_SAMPLES,
    BRANCHES,
    ORIGIN_BEAM_BACKGROUND,
    ORIGIN_DAUGHTER,
    ORIGIN_PROMPT,
    SAMPLE_IDS,
    read_metadata,
    read_ntuple,
)
from bumphunt.simulation import Reconstruction, composition, run_simulation
from bumphunt.simulation.detector import ClusterTiming
from bumphunt.simulation.stage import PLANNERS

from .helpers import small_config


def test_every_sample_is_written_with_metadata(simulated):
    config, summaries = simulated
    assert set(summaries) == set(PLANNERS)
    for sample, summary in summaries.items():
        data = read_ntuple(summary.path)
        metadata = read_metadata(summary.path)
        assert set(data) == set(BRANCHES)
        assert metadata["sample"] == sample and metadata["n_selected"] == len(data["weight"]) == summary.n_selected
        assert np.all(data["sample_id"] == SAMPLE_IDS[sample])
        assert metadata["expected_events"] == pytest.approx(data["weight"].sum(), rel=1e-9)
        assert metadata["config"] == config
        assert 0 < summary.n_selected <= summary.n_generated
        assert len(np.unique(data["event_id"])) == len(data["event_id"])


def test_preselection_holds_on_every_written_event(simulated):
    config, summaries = simulated
    beams = Beams.from_config(config)
    for summary in summaries.values():
        data = read_ntuple(summary.path)
        energy = data["photon_E"]
        assert np.all(np.diff(energy, axis=1) <= 0), "photons ordered by decreasing energy"
        assert np.all(energy > config["detector"]["photon_energy_min"])
        theta = np.degrees(data["photon_theta"])
        assert np.all((theta > config["detector"]["theta_min_deg"]) & (theta < config["detector"]["theta_max_deg"]))
        m_ggg = invariant_mass(photon_four_vectors(energy, data["photon_theta"], data["photon_phi"]).sum(axis=1))
        assert_allclose(data["m_ggg"], m_ggg, rtol=1e-12)
        assert np.all((m_ggg > 0.8 * beams.sqrt_s) & (m_ggg < 1.05 * beams.sqrt_s))
        assert np.all(data["n_photons"] >= 3)


def test_signal_weights_and_truth(simulated):
    config, summaries = simulated
    data = read_ntuple(summaries["alp"].path)
    metadata = read_metadata(summaries["alp"].path)
    sqrt_s = Beams.from_config(config).sqrt_s
    n_per_mass = config["simulation"]["signal"]["events_per_mass"]
    for mass, entry in zip(signal_masses(config), metadata["masses"]):
        at_mass = data["gen_mass"] == mass
        # the Born cross-section times the ISR factor (beam.py), and the trigger efficiency
        born = physics.alp_cross_section(mass, 1e-3, sqrt_s)
        assert entry["born_cross_section_pb"] == born and 0.85 < entry["isr_factor"] < 0.97
        assert entry["cross_section_pb"] == pytest.approx(born * entry["isr_factor"], rel=1e-14)
        expected_weight = entry["cross_section_pb"] * config["luminosity"] / n_per_mass
        assert_allclose(data["weight"][at_mass], expected_weight * data["trigger_efficiency"][at_mass], rtol=1e-12)
        assert entry["n_selected"] == at_mass.sum()
        # one recoil photon and two daughters in almost every event
        origin = data["photon_origin"][at_mass]
        clean = (np.sum(origin == ORIGIN_PROMPT, axis=1) == 1) & (np.sum(origin == ORIGIN_DAUGHTER, axis=1) == 2)
        assert clean.mean() > 0.95
        true_photons = photon_four_vectors(
            data["photon_true_E"][at_mass][clean],
            data["photon_true_theta"][at_mass][clean],
            data["photon_true_phi"][at_mass][clean],
        )
        daughters = np.where((origin[clean] == ORIGIN_DAUGHTER)[..., None], true_photons, 0.0).sum(axis=1)
        # at g = 1e-3 the ALP flies micrometres: seen from the IP, the pair mass is the
        # generated mass to ~ flight / ECL radius ~ 1e-5
        assert_allclose(invariant_mass(daughters), mass, rtol=1e-4)


def test_measured_minus_true_energy_has_the_stored_resolution(simulated):
    _, summaries = simulated
    data = read_ntuple(summaries["ggg"].path)
    hard = data["photon_true_E"] > 0.5  # far above threshold: no selection bias
    pull = (data["photon_E"][hard] - data["photon_true_E"][hard]) / np.sqrt(data["photon_cov"][..., 0][hard])
    assert abs(pull.mean()) < 0.03
    assert pull.std() == pytest.approx(1.0, abs=0.02)


def test_cluster_times_trigger_and_collision_energy(simulated):
    config, summaries = simulated
    timing = ClusterTiming.from_config(config)
    plateau = config["detector"]["trigger"]["plateau"]
    pulls = []
    for summary in summaries.values():
        data = read_ntuple(summary.path)
        # collision photons are in time, measured with the resolution at their energy
        in_time = data["photon_origin"] != ORIGIN_BEAM_BACKGROUND
        pulls.append(data["photon_time"][in_time] / timing.resolution(data["photon_true_E"][in_time]))
        assert np.all(np.abs(data["photon_time"]) < config["preselection"]["cluster_time_max"])
        # energy sums of ~10 GeV: every pre-selected event is on the trigger plateau
        assert_allclose(data["trigger_efficiency"], plateau, rtol=1e-12)
        # sqrt(s'): ISR only lowers it (beyond the 5 MeV spread), never below 0.72 sqrt(s)
        sqrt_s = Beams.from_config(config).sqrt_s
        assert np.all(data["sqrt_s_true"] < sqrt_s + 0.04) and np.all(data["sqrt_s_true"] > 0.72 * sqrt_s)
    pull = np.concatenate(pulls)
    assert abs(pull.mean()) < 5 / np.sqrt(len(pull)) and pull.std() == pytest.approx(1.0, abs=0.01)


def test_ggg_weights_reproduce_the_cross_section(simulated):
    config, summaries = simulated
    metadata = read_metadata(summaries["ggg"].path)
    data = read_ntuple(summaries["ggg"].path)
    assert metadata["cross_section_error_pb"] < 0.01 * metadata["cross_section_pb"]
    assert metadata["overweight_fraction"] < 0.01
    # unweighted events: all but the rare over-weight ones carry the same weight
    assert np.mean(np.isclose(data["weight"], data["weight"].min(), rtol=1e-12)) > 0.99
    # sum of weights before pre-selection = sigma * L: after it, sigma * L * (pass fraction)
    # times the trigger efficiency
    passed_fraction = metadata["n_selected"] / metadata["n_generated"]
    assert data["weight"].sum() == pytest.approx(
        metadata["cross_section_pb"] * config["luminosity"] * passed_fraction * data["trigger_efficiency"].mean(),
        rel=0.03,
    )
    assert metadata["cross_section_pb"] == pytest.approx(metadata["born_cross_section_pb"] * metadata["isr_factor"])


def test_same_seed_same_events_for_any_number_of_workers(tmp_path):
    overrides = {"simulation.backgrounds.pi0_gamma.events": 0, "simulation.backgrounds.etaprime_gamma.events": 0}
    serial = run_simulation(small_config(tmp_path / "a", **overrides), progress=False, workers=1)
    parallel = run_simulation(small_config(tmp_path / "b", **overrides), progress=False, workers=2)
    reseeded = run_simulation(small_config(tmp_path / "c", seed=7, **overrides), progress=False, workers=1)
    assert [s.sample for s in serial] == [
        "alp", "ggg", "eta_gamma", "gg", "eeg", "pi0_gamma_gamma", "eta_gamma_gamma", "etaprime_gamma_gamma",
        "alp_long_lived",
    ]  # fmt: skip
    for first, second, third in zip(serial, parallel, reseeded):
        one, two, three = read_ntuple(first.path), read_ntuple(second.path), read_ntuple(third.path)
        for name in BRANCHES:
            assert_array_equal(one[name], two[name], err_msg=name)
        assert not np.array_equal(one["photon_E"][:100], three["photon_E"][:100])
        # the beam-energy spread, ISR and cluster times (on by default) are drawn too
        assert one["sqrt_s_true"].std() > 0.005 and np.all(one["photon_time"] != 0)
        meta_one, meta_two = read_metadata(first.path), read_metadata(second.path)
        meta_one.pop("config"), meta_two.pop("config")
        assert meta_one == meta_two


def test_displaced_photons_are_seen_from_the_interaction_point(config):
    config["detector"]["beam_background"]["mean_photons"] = 0
    reconstruction = Reconstruction.from_config(config)
    # two photons along +z and -x produced at (0, 100, 0) cm, one prompt along +x: the first
    # hits the forward end cap at (0, 100, 196), the second the barrel at (-75, 100, 0)
    photons = np.array([[[2.0, 0.0, 0.0, 2.0], [4.0, -4.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0]]])
    production = np.array([[[0.0, 100.0, 0.0], [0.0, 100.0, 0.0], [0.0, 0.0, 0.0]]])
    origin = np.array([[ORIGIN_DAUGHTER, ORIGIN_DAUGHTER, ORIGIN_PROMPT]])
    passed, branches = reconstruction(np.random.default_rng(0), photons, production, origin)
    assert passed.tolist() == [True]
    expected = {
        2.0: (np.arctan2(100.0, 196.0), np.pi / 2),
        4.0: (np.pi / 2, np.arctan2(100.0, -75.0)),
        5.0: (np.pi / 2, 0.0),
    }
    for energy, theta, phi in zip(
        branches["photon_true_E"][0], branches["photon_true_theta"][0], branches["photon_true_phi"][0]
    ):
        assert (theta, phi) == pytest.approx(expected[energy], abs=1e-12)


def test_long_lived_alps_lose_efficiency(tmp_path):
    prompt = small_config(tmp_path / "prompt", **{"simulation.signal.masses": {"start": 0.3, "stop": 0.3, "step": 1.0}})
    displaced = small_config(
        tmp_path / "displaced",
        **{"simulation.signal.masses": {"start": 0.3, "stop": 0.3, "step": 1.0}, "simulation.signal.coupling": 5e-6},
    )
    # at 5e-6 GeV^-1 and 0.3 GeV, gamma beta c tau ~ 1 m: many decay beyond the ECL
    assert 50.0 < physics.alp_ctau(0.3, 5e-6) * 5.3 / 0.3 < 200.0
    n_prompt = run_simulation(prompt, samples=["alp"], progress=False)[0].n_selected
    summary = run_simulation(displaced, samples=["alp"], progress=False)[0]
    assert summary.n_selected < 0.9 * n_prompt
    vertex = read_ntuple(summary.path, ["decay_vertex"])["decay_vertex"]
    assert np.median(np.linalg.norm(vertex, axis=1)) > 1.0
    assert np.all(np.hypot(vertex[:, 0], vertex[:, 1]) < 125.0)


def test_background_composition_counts_every_candidate(simulated):
    config, summaries = simulated
    layout = OutputLayout.from_config(config)
    rows = list(csv.DictReader(layout.composition_table.open()))
    assert [row["process"] for row in rows] == [s for s in BACKGROUND_SAMPLES if s in summaries] + ["all"]
    assert layout.composition_plot.stat().st_size > 10_000
    edges = composition.TABLE_EDGES
    for row in rows[:-1]:
        data = read_ntuple(summaries[row["process"]].path, ["photon_E", "photon_theta", "photon_phi", "weight"])
        photons = photon_four_vectors(data["photon_E"], data["photon_theta"], data["photon_phi"])
        masses = np.stack([invariant_mass(photons[:, i] + photons[:, j]) for i in range(3) for j in range(i + 1, 3)], 1)
        expected = np.histogram(masses, bins=edges, weights=np.repeat(data["weight"][:, None], 3, axis=1))[0]
        table = np.array([float(row[f"{low:g}-{high:g} GeV"]) for low, high in zip(edges[:-1], edges[1:])])
        np.testing.assert_allclose(table, expected, rtol=1e-3)  # the CSV holds 4 significant digits
    # the eta peak of eta gamma lies in its first range, the continuum spreads over all
    eta = np.array([float(v) for k, v in rows[[r["process"] for r in rows].index("eta_gamma")].items() if "GeV" in k])
    assert eta[0] > eta[1:].max()
