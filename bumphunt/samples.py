"""The inputs of an analysis: named samples of events, the simulated toy's or the analyst's own.

A configuration's ``samples`` section describes any number of samples, each with a role
(``signal``, ``background`` or ``data``), its files (globs), its tree, and how to read it:

* ``format: bumphunt``: ntuples in bumphunt's event format (:mod:`bumphunt.ntuple`);
* ``format: candidates``: one row per candidate, as basf2's ``VariablesToNtuple`` writes
  them, with a branch map from bumphunt's quantities to the user's expressions
  (:data:`QUANTITIES`); rows are grouped into events by the bookkeeping branches
  (``__experiment__``, ``__run__``, ``__event__``), keeping every candidate or the best one.

Without a ``samples`` section the analysis reads the simulation's ntuples: the toy is one
such description (:func:`analysis_samples`), so every analysis has one input path.

:func:`read_sample` turns a sample's files into chunks of bumphunt's event branches (photons
ordered by decreasing energy, packed covariance, weights at the luminosity), with a beam
four-momentum per event; the kinematic fit writes them out with its own branches.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cuts import branches_used, evaluate_expression
from .errors import ConfigError, NtupleError
from .kinematics import Beams
from .layout import OutputLayout
from .ntuple import (
    BACKGROUND_SAMPLES,
    ORIGIN_DAUGHTER,
    ORIGIN_PROMPT,
    SAMPLE_IDS,
    check_branches,
    iterate_ntuple,
)
from .physics import alp_cross_section, alp_ctau

ROLES = ("signal", "background", "data")
#: Photon origin of a user's photon without truth information.
ORIGIN_UNKNOWN = -1
#: Sample code of a ``samples`` section's data sample; its signal sample is 0 and its backgrounds
#: 1, 2, ... in the order of the section (the toy's codes when they follow its order), which
#: seeds every random step that depends on the sample.
DATA_SAMPLE_ID = 1000
#: The three photons of a candidate.
N_PHOTONS = 3

#: What a candidate-row sample's ``branches`` map may name: per-photon quantities take an
#: expression with ``{i}`` (photon 0, 1, 2) or a list of three expressions.
QUANTITIES = {
    "photon_E": "photon energy (GeV), lab frame; required",
    "photon_theta": "photon polar angle (rad), lab frame; or photon_px/py/pz",
    "photon_phi": "photon azimuth (rad), lab frame; or photon_px/py/pz",
    "photon_px": "photon momentum x (GeV), lab frame, with photon_py and photon_pz",
    "photon_py": "photon momentum y (GeV)",
    "photon_pz": "photon momentum z (GeV)",
    "photon_error_E": "energy uncertainty (GeV), e.g. clusterErrorE; required",
    "photon_error_theta": "polar-angle uncertainty (rad), e.g. clusterErrorTheta; required",
    "photon_error_phi": "azimuth uncertainty (rad), e.g. clusterErrorPhi; required",
    "photon_time": "cluster time (ns), e.g. clusterTiming; 0 when not given",
    "photon_truth": "non-zero for a daughter of the ALP (signal MC truth); the pair rule otherwise",
    "weight": "per-candidate weight, e.g. __weight__; 1 when not given",
    "trigger_efficiency": "trigger efficiency of the event, where the MC does not simulate the trigger; 1 if not given",
    "score": "the analyst's own selection score, stored as branch user_score",
    "proper_decay_length": "signal truth: c t of the ALP decay in its rest frame (cm), for the efficiency vs lifetime",
    "experiment": "experiment number; default __experiment__ where the file has it",
    "run": "run number; default __run__",
    "event": "event number; default __event__",
    "candidate": "candidate index in its event; default __candidate__",
    "e_minus_energy": "HER (electron) beam energy of the event (GeV), instead of a run table",
    "e_plus_energy": "LER (positron) beam energy of the event (GeV)",
    "sqrt_s": "nominal sqrt(s) of the run (GeV), e.g. Ecms: checked against the beams",
}
PHOTON_QUANTITIES = tuple(name for name in QUANTITIES if name.startswith("photon_"))
BOOKKEEPING_DEFAULTS = {
    "experiment": "__experiment__",
    "run": "__run__",
    "event": "__event__",
    "candidate": "__candidate__",
}
#: Largest spread of a sample's nominal sqrt(s) that one beam four-vector may stand for (GeV).
SQRT_S_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Sample:
    """One sample of an analysis (a key of the ``samples`` configuration section)."""

    name: str
    role: str
    files: tuple[str, ...]
    tree: str = "events"
    format: str = "bumphunt"
    branches: Mapping[str, object] = field(default_factory=dict)
    mass: object = None
    n_generated: object = None
    cross_section_pb: float | None = None
    coupling: float | None = None
    isr_factor: object = None
    best_candidate: Mapping | None = None
    beam_table: str | None = None
    sample_id: int = 0

    @property
    def key(self) -> str:
        """Where the sample sits in the configuration, for messages."""
        return f"samples.{self.name}"

    def paths(self) -> list[Path]:
        """The sample's files, globs expanded, in sorted order.

        Raises
        ------
        ConfigError
            A pattern matches no file.
        """
        paths = []
        for pattern in self.files:
            found = (
                sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern] if Path(pattern).exists() else []
            )
            if not found:
                raise ConfigError(f"config error at '{self.key}.files': {pattern!r} matches no file")
            paths.extend(Path(p) for p in found)
        return paths


def analysis_samples(config: Mapping) -> dict[str, Sample]:
    """The samples of an analysis, by name: its ``samples`` section, or the simulated toy's
    ntuples (``<output_dir>/simulation/<sample>.root``) when that section is empty."""
    declared = config.get("samples") or {}
    if declared:
        samples, n_backgrounds = {}, 0
        for name, spec in declared.items():
            sample = _sample(name, spec)
            n_backgrounds += sample.role == "background"
            code = {"signal": 0, "background": n_backgrounds, "data": DATA_SAMPLE_ID}[sample.role]
            samples[name] = dataclasses.replace(sample, sample_id=code)
        return samples
    layout = OutputLayout.from_config(config)
    samples = {}
    for name, sample_id in SAMPLE_IDS.items():
        role = "background" if name in BACKGROUND_SAMPLES else "signal"
        samples[name] = Sample(name, role, (str(layout.ntuple("simulation", name)),), sample_id=sample_id)
    return samples


def user_samples(config: Mapping) -> bool:
    """Whether the analysis reads samples of its own rather than the simulated toy."""
    return bool(config.get("samples"))


def sample_names(config: Mapping, role: str) -> list[str]:
    """The names of the samples of ``role``, in the order of the configuration."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    return [name for name, sample in analysis_samples(config).items() if sample.role == role]


def signal_sample(config: Mapping) -> str:
    """The name of the signal sample whose shapes the analysis fits (``alp`` for the toy)."""
    names = sample_names(config, "signal")
    if not user_samples(config):
        return "alp"
    return names[0]


def data_sample(config: Mapping) -> str | None:
    """The name of the data sample, or None."""
    names = sample_names(config, "data")
    return names[0] if names else None


def _sample(name: str, spec: Mapping) -> Sample:
    key = f"samples.{name}"
    role = spec.get("role")
    if role not in ROLES:
        raise ConfigError(f"config error at '{key}.role': {role!r} is not a role; choose from {', '.join(ROLES)}")
    files = spec.get("files")
    files = (files,) if isinstance(files, str) else tuple(files or ())
    if not files:
        raise ConfigError(f"config error: missing key '{key}.files'")
    branches = dict(spec.get("branches") or {})
    form = spec.get("format", "candidates" if branches else "bumphunt")
    unknown = sorted(set(branches) - set(QUANTITIES))
    if unknown:
        raise ConfigError(
            f"config error: unknown key '{key}.branches.{unknown[0]}'; choose from {', '.join(QUANTITIES)}"
        )
    if form == "candidates":
        _check_branch_map(key, branches)
    sample = Sample(
        name=name,
        role=role,
        files=files,
        tree=spec.get("tree", "events"),
        format=form,
        branches=branches,
        mass=spec.get("mass"),
        n_generated=spec.get("n_generated"),
        cross_section_pb=spec.get("cross_section_pb"),
        coupling=spec.get("coupling"),
        isr_factor=spec.get("isr_factor"),
        best_candidate=spec.get("best_candidate"),
        beam_table=spec.get("beam_table"),
    )
    if form == "candidates" and role == "signal" and (sample.mass is None or sample.n_generated is None):
        missing = "mass" if sample.mass is None else "n_generated"
        raise ConfigError(
            f"config error: missing key '{key}.{missing}' (a signal sample needs its generated mass and events)"
        )
    if form == "candidates" and role == "background" and sample.cross_section_pb is not None and not sample.n_generated:
        raise ConfigError(
            f"config error: missing key '{key}.n_generated' (weights need the cross-section and the generated events)"
        )
    return sample


def _check_branch_map(key: str, branches: Mapping) -> None:
    momentum = [q in branches for q in ("photon_px", "photon_py", "photon_pz")]
    angles = [q in branches for q in ("photon_theta", "photon_phi")]
    needed = ["photon_E", "photon_error_E", "photon_error_theta", "photon_error_phi"]
    if not all(momentum) and not all(angles):
        needed += ["photon_theta", "photon_phi"]
    for quantity in needed:
        if quantity not in branches:
            raise ConfigError(f"config error: missing key '{key}.branches.{quantity}' ({QUANTITIES[quantity]})")
    if ("e_minus_energy" in branches) != ("e_plus_energy" in branches):
        raise ConfigError(f"config error at '{key}.branches': e_minus_energy and e_plus_energy go together")
    for quantity, expression in branches.items():
        if quantity in PHOTON_QUANTITIES:
            _photon_expressions(key, quantity, expression)


def _photon_expressions(key: str, quantity: str, expression) -> list[str]:
    if isinstance(expression, str):
        if "{i}" not in expression:
            raise ConfigError(
                f"config error at '{key}.branches.{quantity}': {expression!r} names one value; write the photon "
                "index as {i} (e.g. gamma{i}_E) or give a list of three expressions"
            )
        return [expression.replace("{i}", str(i)) for i in range(N_PHOTONS)]
    if isinstance(expression, list) and len(expression) == N_PHOTONS and all(isinstance(e, str) for e in expression):
        return list(expression)
    raise ConfigError(
        f"config error at '{key}.branches.{quantity}': give an expression with {{i}} or three expressions"
    )


# --------------------------------------------------------------------------------------------
# Reading


def mass_of_file(sample: Sample, path: Path) -> float | None:
    """The generated mass of a signal file from ``mass``: a number, ``{filename: regex}`` (the
    groups joined by a dot: ``alp_m(\\d+)p(\\d+)`` reads ``alp_m1p025.root`` as 1.025), or None
    for ``{branch: expression}`` (read per candidate)."""
    mass = sample.mass
    if isinstance(mass, (int, float)) and not isinstance(mass, bool):
        return float(mass)
    if isinstance(mass, Mapping) and "filename" in mass:
        match = re.search(mass["filename"], path.name)
        if not match:
            raise NtupleError(f"{path}: {sample.key}.mass.filename {mass['filename']!r} does not match the file name")
        text = ".".join(group for group in match.groups() if group is not None) if match.groups() else match.group(0)
        try:
            return float(text)
        except ValueError:
            raise NtupleError(f"{path}: the mass {text!r} read from the file name is not a number") from None
    if isinstance(mass, Mapping) and "branch" in mass:
        return None
    raise ConfigError(f"config error at '{sample.key}.mass': give a number, {{filename: regex}} or {{branch: name}}")


def generated_events(sample: Sample, mass: float | None = None) -> int:
    """Events generated for ``sample`` (at ``mass`` for a signal sample); raise a one-line error
    when the configuration does not say."""
    n = _by_mass(sample, "n_generated", mass)
    if n is None or n <= 0:
        raise ConfigError(f"config error at '{sample.key}.n_generated': needs the number of generated events")
    return int(n)


def isr_factor(sample: Sample, mass: float) -> float:
    """sigma(with ISR) / sigma_Born of the signal generator at ``mass`` (``isr_factor``: a
    number or a table by mass; 1 when not given, which the report says)."""
    return 1.0 if sample.isr_factor is None else float(_by_mass(sample, "isr_factor", mass))


def _by_mass(sample: Sample, key: str, mass: float | None):
    """A setting given as a number or as a mapping {mass: value}."""
    value = getattr(sample, key)
    if not isinstance(value, Mapping):
        return value
    for entry, number in value.items():
        if mass is not None and math.isclose(float(entry), mass, abs_tol=1e-9):
            return number
    raise ConfigError(f"config error at '{sample.key}.{key}': no entry for the mass {mass} GeV")


@dataclass
class RunBeams:
    """Beam four-momenta by (experiment, run), from a CSV table with the columns
    ``experiment, run, e_minus_energy, e_plus_energy`` (GeV); the angles are the analysis'."""

    path: Path
    table: dict[tuple[int, int], np.ndarray]

    @classmethod
    def read(cls, path: str | Path, nominal: Beams) -> RunBeams:
        path = Path(path)
        try:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
        except OSError as error:
            raise ConfigError(f"cannot read the beam table {path}: {error.strerror or error}") from None
        needed = ("experiment", "run", "e_minus_energy", "e_plus_energy")
        if not rows or any(column not in rows[0] for column in needed):
            raise ConfigError(f"{path}: a beam table needs the columns {', '.join(needed)}")
        table = {}
        for row in rows:
            beams = Beams(float(row["e_minus_energy"]), float(row["e_plus_energy"]), nominal.crossing_angle,
                          nominal.her_angle)  # fmt: skip
            table[int(row["experiment"]), int(row["run"])] = beams.four_momentum
        return cls(path, table)

    def four_momenta(self, experiment: np.ndarray, run: np.ndarray, source: Path) -> np.ndarray:
        keys = np.stack([experiment.astype(np.int64), run.astype(np.int64)], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        vectors = []
        for exp, run_number in unique:
            if (int(exp), int(run_number)) not in self.table:
                raise NtupleError(f"{source}: experiment {exp} run {run_number} is not in the beam table {self.path}")
            vectors.append(self.table[int(exp), int(run_number)])
        return np.asarray(vectors)[inverse.ravel()]


def read_sample(
    sample: Sample, config: Mapping, *, step_size: int = 200_000
) -> Iterator[tuple[Path, dict[str, np.ndarray]]]:
    """The events of a candidate-row sample, file by file and chunk by chunk: (file, branches)
    with the event branches the kinematic fit writes (``bumphunt.kinfit.SAMPLE_BRANCHES``) and
    ``beam``, the beams' four-momentum of each event (n, 4).

    Raises
    ------
    ConfigError, NtupleError
        A glob matching nothing, a missing tree or branch, an unreadable mass, beams that
        differ between runs without a per-run table: one line naming the file and the key.
    """
    if sample.format != "candidates":
        raise ValueError(f"{sample.key} is in bumphunt's format: read it with bumphunt.ntuple")
    nominal = Beams.from_config(config)
    run_beams = RunBeams.read(sample.beam_table, nominal) if sample.beam_table else None
    expressions = _expressions(sample)
    event_index = 0
    for path in sample.paths():
        mass = mass_of_file(sample, path) if sample.role == "signal" else None
        needed = _with_defaults(path, sample, expressions)
        carry: dict[str, np.ndarray] | None = None
        chunks = iterate_ntuple(path, needed, step_size=step_size, tree=sample.tree)
        for chunk in _then_none(chunks):
            if chunk is not None:
                n = len(next(iter(chunk.values()))) if chunk else 0
                values = _candidates(sample, path, chunk, n, expressions, mass)
                if carry is not None:
                    values = {k: np.concatenate([carry[k], values[k]]) for k in values}
                values, carry = _hold_last_event(values) if sample.best_candidate else (values, None)
            else:
                if carry is None:
                    break
                values, carry = carry, None
            values = _best_candidates(sample, values)
            values = _event_branches(sample, path, values, config, nominal, run_beams, event_index)
            event_index += len(values["weight"])
            yield path, values


def _then_none(iterator):
    yield from iterator
    yield None


def _expressions(sample: Sample) -> dict[str, str]:
    """Every expression to evaluate, by name: per-photon ones as ``<quantity>:<i>``."""
    out = {}
    for quantity, expression in sample.branches.items():
        if quantity in PHOTON_QUANTITIES:
            for i, single in enumerate(_photon_expressions(sample.key, quantity, expression)):
                out[f"{quantity}:{i}"] = single
        else:
            out[quantity] = str(expression)
    mass = sample.mass
    if isinstance(mass, Mapping) and "branch" in mass:
        out["gen_mass"] = str(mass["branch"])
    if sample.best_candidate:
        out["best_candidate"] = str(sample.best_candidate.get("expression", ""))
    return out


def _key_of(sample: Sample, quantity: str) -> str:
    """The configuration key an expression of :func:`_expressions` comes from."""
    if quantity in ("gen_mass", "best_candidate"):
        return f"{sample.key}.{'mass.branch' if quantity == 'gen_mass' else 'best_candidate.expression'}"
    return f"{sample.key}.branches.{quantity.split(':')[0]}"


def _with_defaults(path: Path, sample: Sample, expressions: dict[str, str]) -> list[str]:
    """Add the bookkeeping branches basf2 writes (``__experiment__``...) where the file has them
    and the map does not name others; a missing mapped branch is a one-line error."""
    available = set(check_branches(path, None, tree=sample.tree))
    for quantity, expression in expressions.items():
        for name in branches_used(expression):
            if name not in available:
                raise NtupleError(f"{path}: tree '{sample.tree}' has no branch {name!r} ({_key_of(sample, quantity)})")
    for quantity, default in BOOKKEEPING_DEFAULTS.items():
        if quantity not in expressions and default in available:
            expressions[quantity] = default
    if sample.best_candidate and not {"experiment", "run", "event"} <= set(expressions):
        raise ConfigError(
            f"config error at '{sample.key}.best_candidate': {path} has no __experiment__, __run__, __event__ "
            "to group candidates by (map experiment, run and event in branches)"
        )
    return sorted(set().union(*(branches_used(e) for e in expressions.values())))


def _candidates(sample, path, chunk, n, expressions, mass) -> dict[str, np.ndarray]:
    values = {}
    for name, expression in expressions.items():
        try:
            values[name] = evaluate_expression(expression, chunk, n)
        except ConfigError as error:
            raise ConfigError(f"{path}: {_key_of(sample, name)}: {error}") from None
    if mass is not None:
        values["gen_mass"] = np.full(n, mass)
    values["row"] = np.arange(n, dtype=np.int64)
    return values


def _hold_last_event(values):
    """Split off the candidates of the last event of a chunk: its other candidates may be in
    the next chunk."""
    n = len(values["row"])
    if n == 0:
        return values, None
    key = np.stack([values["experiment"], values["run"], values["event"]], axis=1)
    last = np.all(key == key[-1], axis=1)
    first_of_last = n - int(np.argmin(last[::-1])) if not last.all() else 0
    head = {k: v[:first_of_last] for k, v in values.items()}
    tail = {k: v[first_of_last:] for k, v in values.items()}
    return head, tail


def _best_candidates(sample: Sample, values):
    rule = sample.best_candidate
    if not rule or len(values["row"]) == 0:
        return values
    direction = rule.get("rule", "max")
    score = values["best_candidate"] if direction == "max" else -values["best_candidate"]
    key = np.stack([values["experiment"], values["run"], values["event"]], axis=1)
    order = np.lexsort((-np.nan_to_num(score, nan=-np.inf), key[:, 2], key[:, 1], key[:, 0]))
    sorted_key = key[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(sorted_key[1:] != sorted_key[:-1], axis=1)
    keep = np.sort(order[first])
    return {k: v[keep] for k, v in values.items()}


def _photons(values, quantity):
    return np.stack([values[f"{quantity}:{i}"] for i in range(N_PHOTONS)], axis=1)


def _event_branches(sample, path, values, config, nominal, run_beams, first_index) -> dict[str, np.ndarray]:
    n = len(values["row"])
    energy = _photons(values, "photon_E")
    if "photon_theta:0" in values:
        theta, phi = _photons(values, "photon_theta"), _photons(values, "photon_phi")
    else:
        px, py, pz = (_photons(values, q) for q in ("photon_px", "photon_py", "photon_pz"))
        theta = np.arctan2(np.hypot(px, py), pz)
        phi = np.arctan2(py, px)
    _check_units(sample, path, energy, values.get("gen_mass"), nominal)
    errors = [_photons(values, f"photon_error_{q}") for q in ("E", "theta", "phi")]
    time = _photons(values, "photon_time") if "photon_time:0" in values else np.zeros((n, N_PHOTONS))
    if "photon_truth:0" in values:
        origin = np.where(_photons(values, "photon_truth") != 0, ORIGIN_DAUGHTER, ORIGIN_PROMPT).astype(np.int32)
    else:
        origin = np.full((n, N_PHOTONS), ORIGIN_UNKNOWN, dtype=np.int32)
    order = np.argsort(-np.nan_to_num(energy, nan=-np.inf), axis=1, kind="stable")  # by decreasing energy
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    energy, theta, phi, time, origin = (take(a) for a in (energy, theta, phi, time, origin))
    errors = [take(e) for e in errors]
    covariance = np.zeros((n, N_PHOTONS, 6), dtype=np.float32)
    covariance[..., 0], covariance[..., 3], covariance[..., 5] = (e**2 for e in errors)
    out = {
        "event_id": first_index + np.arange(n, dtype=np.int64),
        "sample_id": np.full(n, sample.sample_id, dtype=np.int32),
        "photon_E": energy,
        "photon_theta": theta,
        "photon_phi": phi,
        "photon_time": time,
        "photon_cov": covariance,
        "photon_origin": origin,
        "gen_mass": values.get("gen_mass", np.full(n, np.nan)),
        "user_score": values.get("score", np.full(n, np.nan)),
    }
    for quantity in BOOKKEEPING_DEFAULTS:
        out[quantity] = values[quantity].astype(np.int64) if quantity in values else np.full(n, -1, dtype=np.int64)
    if "proper_decay_length" in values:
        out["proper_decay_length"] = values["proper_decay_length"]
    out["trigger_efficiency"] = values.get("trigger_efficiency", np.ones(n))
    out["weight"] = _weights(sample, values, out["gen_mass"], config) * values.get("weight", 1.0)
    out["weight"] = out["weight"] * out["trigger_efficiency"]
    out["beam"] = _beams(sample, path, values, nominal, run_beams, n)
    return out


def _check_units(sample: Sample, path: Path, energy: np.ndarray, gen_mass, nominal: Beams) -> None:
    """Refuse energies or masses in MeV: a photon above the beams' total energy, a generated mass
    above sqrt(s)."""
    total = float(nominal.four_momentum[0])
    finite = energy[np.isfinite(energy)]
    if finite.size and finite.max() > total:
        raise NtupleError(
            f"{path}: photon energies up to {finite.max():.4g} ({sample.key}.branches.photon_E) exceed the beams' "
            f"{total:.4g} GeV: are they in MeV? bumphunt reads GeV"
        )
    masses = np.asarray(gen_mass if gen_mass is not None else [], dtype=np.float64)
    masses = masses[np.isfinite(masses)]
    if masses.size and masses.max() >= nominal.sqrt_s:
        raise NtupleError(
            f"{path}: generated masses up to {masses.max():.4g} ({sample.key}.mass) are not below sqrt(s) = "
            f"{nominal.sqrt_s:.4f} GeV: are they in MeV? bumphunt reads GeV"
        )


def _weights(sample: Sample, values, gen_mass, config) -> np.ndarray:
    n = len(values["row"])
    if sample.role == "data":
        return np.ones(n)
    luminosity = config["luminosity"]
    if sample.role == "background":
        if sample.cross_section_pb is None:
            return np.ones(n)  # the weight branch holds expected events
        return np.full(n, sample.cross_section_pb * luminosity / generated_events(sample))
    coupling = sample.coupling if sample.coupling is not None else config["simulation"]["signal"]["coupling"]
    sqrt_s = Beams.from_config(config).sqrt_s
    weights = np.empty(n)
    for mass in np.unique(gen_mass):
        at = gen_mass == mass
        sigma = float(alp_cross_section(mass, coupling, sqrt_s)) * isr_factor(sample, float(mass))
        weights[at] = sigma * luminosity / generated_events(sample, float(mass))
    return weights


def _beams(sample, path, values, nominal: Beams, run_beams: RunBeams | None, n: int) -> np.ndarray:
    if "e_minus_energy" in values:
        pairs = np.stack([values["e_minus_energy"], values["e_plus_energy"]], axis=1)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        vectors = [Beams(her, ler, nominal.crossing_angle, nominal.her_angle).four_momentum for her, ler in unique]
        return np.asarray(vectors).reshape(-1, 4)[inverse.ravel()] if n else np.empty((0, 4))
    if run_beams is not None:
        if "run" not in values or "experiment" not in values:
            raise NtupleError(f"{path}: {sample.key}.beam_table needs the experiment and run of every candidate")
        return run_beams.four_momenta(values["experiment"], values["run"], path)
    if "sqrt_s" in values and n:
        low, high = float(np.nanmin(values["sqrt_s"])), float(np.nanmax(values["sqrt_s"]))
        if high - low > SQRT_S_TOLERANCE:
            raise NtupleError(
                f"{path}: mixed beam energies (sqrt(s) {low:.4f}-{high:.4f} GeV in {sample.branches['sqrt_s']}) "
                f"without a per-run beam table: set {sample.key}.beam_table"
            )
        if abs(high - nominal.sqrt_s) > SQRT_S_TOLERANCE:
            raise NtupleError(
                f"{path}: sqrt(s) = {high:.4f} GeV in {sample.branches['sqrt_s']}, but the beams of the analysis give "
                f"{nominal.sqrt_s:.4f} GeV: set the beam section or {sample.key}.beam_table"
            )
    return np.broadcast_to(nominal.four_momentum, (n, 4))


def signal_metadata(sample: Sample, config: Mapping, masses) -> list[dict]:
    """The ``masses`` metadata of a user's signal sample, as the simulation writes it."""
    coupling = sample.coupling if sample.coupling is not None else config["simulation"]["signal"]["coupling"]
    sqrt_s = Beams.from_config(config).sqrt_s
    entries = []
    for mass in sorted(masses):
        born = float(alp_cross_section(mass, coupling, sqrt_s))
        entries.append({
            "mass": float(mass),
            "n_generated": generated_events(sample, float(mass)),
            "born_cross_section_pb": born,
            "cross_section_pb": born * isr_factor(sample, float(mass)),
            "isr_factor": isr_factor(sample, float(mass)),
            # the generated lifetime, where the decay lengths are known (else: prompt decays)
            "ctau_cm": float(alp_ctau(mass, coupling)) if "proper_decay_length" in sample.branches else 0.0,
        })  # fmt: skip
    return entries


def scan_data(config: Mapping, layout: OutputLayout | None = None) -> str | Path:
    """What the scan fits: ``"pseudo"`` (pseudo-data from the background samples), the data
    sample's kinematic-fit ntuple once the analysis is unblinded (``unblind: true``), or the file
    ``scan.data`` names (an explicit choice of data, as unblinding is)."""
    if config["scan"]["data"] != "pseudo":
        return config["scan"]["data"]
    name = data_sample(config)
    if name is not None and config.get("unblind"):
        return (layout or OutputLayout.from_config(config)).ntuple("kinfit", name)
    return "pseudo"


def blinded(config: Mapping) -> bool:
    """Whether the analysis has a data sample that it does not look at yet."""
    return data_sample(config) is not None and not config.get("unblind") and config["scan"]["data"] == "pseudo"


def data_description(config: Mapping) -> str:
    """What the scan fits, in words (for the report)."""
    source = scan_data(config)
    if source != "pseudo":
        return f"data: {source}"
    if blinded(config):
        return (
            "BLINDED: pseudo-data from the background samples, expected limits only "
            f"(data sample {data_sample(config)!r} not looked at)"
        )
    return "pseudo-data from the background samples (no data sample)"
