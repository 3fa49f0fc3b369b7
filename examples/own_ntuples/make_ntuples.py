"""Write basf2-like candidate-row ntuples from bumphunt's simulated toy, and the configuration
that reads them: what an analyst brings from basf2's ``VariablesToNtuple``.

    bumphunt run --quick --set output_dir=toy --set scan.stop=4.0   # or any simulated toy
    python examples/own_ntuples/make_ntuples.py toy/simulation my_ntuples
    bumphunt run my_ntuples/analysis.yaml

It writes, below the target folder:

* ``signal/alp_m<mass>.root``: one file per generated mass (``alp_m1p025.root`` is 1.025 GeV),
  tree ``alp``, with the bookkeeping branches ``__experiment__``, ``__run__``, ``__event__``,
  ``__candidate__``, ``__ncandidates__``, ``__weight__`` and the photons as daughters
  ``gamma{0,1,2}_E``, ``_theta``, ``_phi``, ``_clusterErrorE``, ``_clusterErrorTheta``,
  ``_clusterErrorPhi``, ``_clusterTiming``, ``_isSignal`` (the photon comes from the ALP), and
  ``Ecms``, ``trgEff`` and ``mcProperDecayLength`` (the ALP's c t, cm);
* ``background/<process>.root``: one file per process, tree ``candidates``, and
  ``cross_sections.csv`` with each process' cross-section and generated events;
* ``data/data.root``: pseudo-data drawn from the backgrounds (every event Poisson(weight)
  times, seeded), tree ``data``, photons as ``gamma{i}_px``, ``_py``, ``_pz``, ``_E``; with
  ``runs.csv``, the beam energies of its runs;
* ``analysis.yaml``: the toy's configuration with a ``samples`` section that reads them.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import uproot
import yaml

from bumphunt.kinematics import Beams
from bumphunt.ntuple import BACKGROUND_SAMPLES, ORIGIN_DAUGHTER, read_metadata, read_ntuple

#: Runs the toy's events are spread over (experiment 8, as Belle II's 2019 runs).
EXPERIMENT = 8
RUNS = (101, 102, 103)


def _candidate_branches(events: dict, *, cartesian: bool = False) -> dict[str, np.ndarray]:
    """The photons and bookkeeping of the toy's events as basf2-like candidate rows."""
    n = len(events["event_id"])
    out = {
        "__experiment__": np.full(n, EXPERIMENT, dtype=np.int32),
        "__run__": np.asarray(RUNS, dtype=np.int32)[np.arange(n) % len(RUNS)],
        "__event__": np.asarray(events["event_id"], dtype=np.int32),
        "__candidate__": np.zeros(n, dtype=np.int32),
        "__ncandidates__": np.ones(n, dtype=np.int32),
    }
    energy, theta, phi = events["photon_E"], events["photon_theta"], events["photon_phi"]
    errors = np.sqrt(events["photon_cov"][..., [0, 3, 5]].astype(np.float64))
    for i in range(3):
        if cartesian:
            out[f"gamma{i}_px"] = energy[:, i] * np.sin(theta[:, i]) * np.cos(phi[:, i])
            out[f"gamma{i}_py"] = energy[:, i] * np.sin(theta[:, i]) * np.sin(phi[:, i])
            out[f"gamma{i}_pz"] = energy[:, i] * np.cos(theta[:, i])
            out[f"gamma{i}_E"] = energy[:, i]
        else:
            out[f"gamma{i}_E"] = energy[:, i]
            out[f"gamma{i}_theta"] = theta[:, i]
            out[f"gamma{i}_phi"] = phi[:, i]
        out[f"gamma{i}_clusterErrorE"] = errors[:, i, 0]
        out[f"gamma{i}_clusterErrorTheta"] = errors[:, i, 1]
        out[f"gamma{i}_clusterErrorPhi"] = errors[:, i, 2]
        out[f"gamma{i}_clusterTiming"] = events["photon_time"][:, i]
        if "photon_origin" in events and not cartesian:
            out[f"gamma{i}_isSignal"] = (events["photon_origin"][:, i] == ORIGIN_DAUGHTER).astype(np.int32)
    return out


def _write(path: Path, tree: str, branches: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as file:
        file[tree] = branches


def _mass_label(mass: float) -> str:
    return f"{mass:.3f}".replace(".", "p")


def write_candidate_ntuples(simulation_dir: str | Path, target: str | Path, *, seed: int = 1) -> Path:
    """Write the basf2-like ntuples of the toy in ``simulation_dir`` below ``target``; returns the
    path of the configuration that reads them."""
    simulation_dir, target = Path(simulation_dir), Path(target).resolve()
    alp_path = simulation_dir / "alp.root"
    metadata = read_metadata(alp_path)
    config = metadata["config"]
    sqrt_s = Beams.from_config(config).sqrt_s
    alp = read_ntuple(alp_path)
    n_generated, isr = {}, {}
    for entry in metadata["masses"]:
        mass = float(entry["mass"])
        at = alp["gen_mass"] == mass
        rows = _candidate_branches({k: v[at] for k, v in alp.items()})
        rows["__weight__"] = np.ones(int(at.sum()))
        rows["Ecms"] = np.full(int(at.sum()), sqrt_s)
        rows["trgEff"] = alp["trigger_efficiency"][at]
        rows["mcProperDecayLength"] = alp["proper_decay_length"][at]
        _write(target / "signal" / f"alp_m{_mass_label(mass)}.root", "alp", rows)
        n_generated[_mass_label(mass).replace("p", ".")] = int(entry["n_generated"])
        isr[_mass_label(mass).replace("p", ".")] = float(entry["isr_factor"])
    photon_map = {
        "photon_E": "gamma{i}_E",
        "photon_error_E": "gamma{i}_clusterErrorE",
        "photon_error_theta": "gamma{i}_clusterErrorTheta",
        "photon_error_phi": "gamma{i}_clusterErrorPhi",
        "photon_time": "gamma{i}_clusterTiming",
    }
    samples = {
        "signal": {
            "role": "signal",
            "files": str(target / "signal" / "alp_m*.root"),
            "tree": "alp",
            "mass": {"filename": r"alp_m(\d+)p(\d+)\.root"},
            "n_generated": n_generated,
            "isr_factor": isr,
            "coupling": metadata["coupling_gev_inv"],
            "branches": {**photon_map, "photon_theta": "gamma{i}_theta", "photon_phi": "gamma{i}_phi",
                         "photon_truth": "gamma{i}_isSignal", "weight": "__weight__", "trigger_efficiency": "trgEff",
                         "sqrt_s": "Ecms", "proper_decay_length": "mcProperDecayLength"},
        }
    }  # fmt: skip
    table = []
    backgrounds = {}
    for process in BACKGROUND_SAMPLES:
        path = simulation_dir / f"{process}.root"
        if not path.is_file():
            continue
        meta = read_metadata(path)
        events = read_ntuple(path)
        backgrounds[process] = events
        per_event = meta["cross_section_pb"] * meta["luminosity_pb_inv"] / meta["n_generated"]
        rows = _candidate_branches(events)
        rows["__weight__"] = events["weight"] / per_event  # the trigger efficiency and unweighting
        _write(target / "background" / f"{process}.root", "candidates", rows)
        table.append({"process": process, "cross_section_pb": meta["cross_section_pb"],
                      "n_generated": meta["n_generated"]})  # fmt: skip
        samples[process] = {
            "role": "background",
            "files": str(target / "background" / f"{process}.root"),
            "tree": "candidates",
            "cross_section_pb": meta["cross_section_pb"],
            "n_generated": meta["n_generated"],
            "branches": {**photon_map, "photon_theta": "gamma{i}_theta", "photon_phi": "gamma{i}_phi",
                         "weight": "__weight__"},
        }  # fmt: skip
    with open(target / "background" / "cross_sections.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["process", "cross_section_pb", "n_generated"])
        writer.writeheader()
        writer.writerows(table)
    rng = np.random.default_rng(seed)
    drawn = []
    for events in backgrounds.values():
        repeat = rng.poisson(events["weight"])
        drawn.append({k: np.repeat(v, repeat, axis=0) for k, v in events.items()})
    data = {k: np.concatenate([d[k] for d in drawn]) for k in drawn[0]}
    data["event_id"] = np.arange(len(data["event_id"]))
    rows = _candidate_branches(data, cartesian=True)
    _write(target / "data" / "data.root", "data", rows)
    beams = Beams.from_config(config)
    with open(target / "data" / "runs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["experiment", "run", "e_minus_energy", "e_plus_energy"])
        for run in RUNS:
            writer.writerow([EXPERIMENT, run, beams.e_minus_energy, beams.e_plus_energy])
    samples["data"] = {
        "role": "data",
        "files": str(target / "data" / "data.root"),
        "tree": "data",
        "beam_table": str(target / "data" / "runs.csv"),
        "branches": {**photon_map, "photon_px": "gamma{i}_px", "photon_py": "gamma{i}_py", "photon_pz": "gamma{i}_pz"},
    }
    analysis = {**config, "samples": samples, "output_dir": str(target / "bumphunt_output")}
    path = target / "analysis.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(analysis)), sort_keys=False))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("simulation_dir", help="the toy's simulation folder (<output_dir>/simulation)")
    parser.add_argument("target", help="folder to write the ntuples and analysis.yaml into")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pseudo-data")
    args = parser.parse_args(argv)
    path = write_candidate_ntuples(args.simulation_dir, args.target, seed=args.seed)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
