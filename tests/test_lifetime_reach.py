"""The reach of the efficiency versus lifetime: the ladder of long-lived couplings, its validity
(the mixture reweighting between and beyond its samples, against the analytic acceptance and a
direct simulation), and exclusion rows that say why a limit is missing."""

import dataclasses
import math
import re

import numpy as np
import pytest

from bumphunt import physics
from bumphunt.config import load_config
from bumphunt.coupling import QUOTED, coupling_limit, expected_signal
from bumphunt.exclusion.stage import COLUMNS, LIMITS, exclusion_row
from bumphunt.models.lifetime import (
    K_MAX,
    K_MIN,
    MAX_LIFETIME_STEP,
    LifetimeResponse,
    lifetime_ladder,
    mixture_effective_fraction,
    mixture_weights,
)
from bumphunt.ntuple import read_metadata, read_ntuple
from bumphunt.simulation import Reconstruction, run_simulation
from bumphunt.simulation.stage import long_lived_couplings, plan_long_lived_signal

from .helpers import small_config, synthetic_shape_model

SQRT_S = 10.58


def _lifetimes(signal_coupling, couplings):
    """c tau relative to the signal's (c tau ~ 1/g^2)."""
    return [(signal_coupling / g) ** 2 for g in (signal_coupling, *couplings)]


@pytest.mark.parametrize(
    ("signal_coupling", "down_to"), [(1e-3, 3e-5), (1e-3, 1e-6), (2e-3, 5e-4), (1e-3, 7e-4), (1e-3, 8e-4)]
)
def test_ladder_keeps_adjacent_lifetimes_within_the_valid_step_and_reaches_the_bound(signal_coupling, down_to):
    ladder = lifetime_ladder(signal_coupling, down_to)
    lifetimes = _lifetimes(signal_coupling, ladder)
    steps = np.diff(lifetimes) / lifetimes[:-1] + 1
    assert np.all(np.diff(lifetimes) > 0) and np.all(steps <= MAX_LIFETIME_STEP * (1 + 1e-12))
    # the reach, K_MAX times the longest lifetime, ends at down_to (or the signal's own goes further)
    if ladder:
        assert ladder[-1] / math.sqrt(K_MAX) == pytest.approx(down_to, rel=1e-12)
        assert np.allclose(steps, steps[0], rtol=1e-9)  # evenly spaced in log g
        # the fewest samples: one fewer would need a larger step, none leaves the signal's reach short
        if len(ladder) > 1:
            assert lifetimes[-1] ** (1 / (len(ladder) - 1)) > MAX_LIFETIME_STEP
        else:
            assert signal_coupling / math.sqrt(K_MAX) > down_to
    else:
        assert signal_coupling / math.sqrt(K_MAX) <= down_to
    assert MAX_LIFETIME_STEP == pytest.approx(K_MAX / K_MIN)


def test_default_configuration_simulates_the_ladder_independently_of_the_luminosity():
    config = load_config()
    long_lived = config["simulation"]["signal"]["long_lived"]
    assert long_lived["down_to"] == 3e-5
    couplings = long_lived_couplings(config)
    assert couplings == pytest.approx([3.427e-4, 1.1745e-4, 4.0249e-5], rel=1e-4)
    assert couplings == lifetime_ladder(config["simulation"]["signal"]["coupling"], 3e-5)
    plan = plan_long_lived_signal(config, Reconstruction.from_config(config))
    assert plan.metadata["lifetime_reach_gev_inv"] == pytest.approx(3e-5, rel=1e-12)
    assert sorted({entry["coupling_gev_inv"] for entry in plan.metadata["masses"]}, reverse=True) == couplings
    assert plan.n_generated == long_lived["events_per_mass"] * len(plan.metadata["masses"])
    brighter = load_config(None, {"luminosity": 362_000.0})
    assert long_lived_couplings(brighter) == couplings
    # listed couplings add to the ladder; without down_to only they are simulated
    more = load_config(None, {"simulation.signal.long_lived.couplings": [2e-4, 1e-6]})
    assert long_lived_couplings(more) == sorted([*couplings, 2e-4, 1e-6], reverse=True)
    listed = load_config(None, {"simulation.signal.long_lived": {"couplings": [4e-4], "events_per_mass": 10}})
    assert long_lived_couplings(listed) == [4e-4]
    assert long_lived_couplings(load_config(None, {"simulation.signal.long_lived.down_to": None})) == []


def test_mixture_of_the_ladder_keeps_the_effective_sample():
    """Signal (20 N decays) and the default ladder (N each): from K_MIN of the signal's lifetime to
    K_MAX of the longest, Kish's effective sample of the mixture weights stays above what the
    single-sample map accepts at K_MIN and K_MAX (0.36 N), and above 1.3 N between the samples."""
    assert mixture_effective_fraction([(1.0, 1)], K_MAX) == pytest.approx(K_MAX * (2 - K_MAX), rel=1e-6)
    assert mixture_effective_fraction([(1.0, 1)], 0.5) == pytest.approx(0.75, rel=1e-6)
    lifetimes = _lifetimes(1e-3, lifetime_ladder(1e-3, 3e-5))
    sources = [(lifetimes[0], 20.0)] + [(tau, 1.0) for tau in lifetimes[1:]]
    total = sum(n for _, n in sources)
    for k in np.geomspace(K_MIN, lifetimes[-1], 60):
        assert total * mixture_effective_fraction(sources, k) > 1.3, k
    assert total * mixture_effective_fraction(sources, K_MAX * lifetimes[-1]) == pytest.approx(0.372, abs=0.01)
    # the worst pair: two samples of N decays MAX_LIFETIME_STEP apart
    pair = [(1.0, 1), (MAX_LIFETIME_STEP, 1)]
    worst = min(2 * mixture_effective_fraction(pair, k) for k in np.geomspace(1.0, MAX_LIFETIME_STEP, 41))
    assert worst == pytest.approx(1.31, abs=0.01)
    # a Monte Carlo of the weights agrees (k = 3, where their fourth moment is finite)
    rng = np.random.default_rng(11)
    t = np.concatenate([rng.exponential(tau, 200_000) for tau, _ in pair])
    w = mixture_weights(t, [(tau, 200_000) for tau, _ in pair], [3.0])[:, 0]
    assert w.sum() ** 2 / np.sum(w * w) / len(w) == pytest.approx(mixture_effective_fraction(pair, 3.0), rel=0.01)


def test_ladder_reproduces_an_analytic_acceptance_up_to_its_reach():
    """A detector that sees decays within a flight of R: eps(tau) = 1 - exp(-R / (b c tau)), with
    the signal (20,000 decays) and the default ladder (1,000 each), between and beyond the samples."""
    rng = np.random.default_rng(12)
    tau0, boost, reach = 2e-3, 26.0, 20.0
    lifetimes = [tau0 * k for k in _lifetimes(1e-3, lifetime_ladder(1e-3, 3e-5))]
    sources = [(lifetimes[0], 20_000)] + [(tau, 1_000) for tau in lifetimes[1:]]
    decays = np.concatenate([rng.exponential(tau, n) for tau, n in sources])
    response = LifetimeResponse.measure([0.2], [sources], [decays[decays * boost < reach]])
    assert response.relative_lifetimes.max() == pytest.approx(K_MAX * lifetimes[-1] / tau0)
    at_generated = -math.expm1(-reach / (boost * tau0))
    between = [math.sqrt(a * b) for a, b in zip(lifetimes[:-1], lifetimes[1:])]
    for ctau in [*lifetimes, *between, 0.99 * K_MAX * lifetimes[-1]]:
        expected = -math.expm1(-reach / (boost * ctau)) / at_generated
        error = float(response.ratio_error(0.2, ctau))
        assert float(response(0.2, ctau)) == pytest.approx(expected, abs=4 * error + 1e-12), ctau / tau0
    top = response(0.2, 0.99 * K_MAX * lifetimes[-1])
    assert top < 0.5  # the decays leave the detector at the top of the reach
    assert math.isnan(float(response(0.2, 1.01 * K_MAX * lifetimes[-1])))


def _simulated_efficiency(folder, coupling, seed, masses, events):
    """Pre-selected ALPs per generated one at each mass, and the proper decay lengths of the
    selected ones, from the simulation stage."""
    config = small_config(folder, **{
        "seed": seed,
        "simulation.signal.masses": {"start": masses[0], "stop": masses[-1], "step": masses[1] - masses[0]},
        "simulation.signal.events_per_mass": events,
        "simulation.signal.coupling": coupling,
    })  # fmt: skip
    path = run_simulation(config, samples=["alp"], progress=False)[0].path
    metadata = {round(m["mass"], 9): m for m in read_metadata(path)["masses"]}
    data = read_ntuple(path, ["gen_mass", "proper_decay_length"])
    out = {}
    for mass in masses:
        entry = metadata[round(mass, 9)]
        lengths = data["proper_decay_length"][np.isclose(data["gen_mass"], mass)]
        out[mass] = (entry["n_selected"] / entry["n_generated"], entry["n_generated"], entry["ctau_cm"], lengths)
    return out


def test_mixture_between_two_samples_agrees_with_a_direct_simulation(tmp_path):
    """ALPs at g1 = 1.3e-5 (mean flights ~15-25 cm at 0.25-0.3 GeV) and at g1 / 3 (9 times the
    lifetime, the largest step of the ladder), reweighted from their mixture to g1 / sqrt(3) in
    between, against ALPs simulated there with another seed (4,000 per mass each)."""
    masses, events, g1 = [0.25, 0.3], 4000, 1.3e-5
    short = _simulated_efficiency(tmp_path / "short", g1, 1, masses, events)
    long = _simulated_efficiency(tmp_path / "long", g1 / 3, 1, masses, events)
    direct = _simulated_efficiency(tmp_path / "direct", g1 / math.sqrt(3), 2, masses, events)
    sources = [[(short[m][2], events), (long[m][2], events)] for m in masses]
    response = LifetimeResponse.measure(masses, sources, [np.r_[short[m][3], long[m][3]] for m in masses])
    for mass in masses:
        eps_short, eps_long, (eps_direct, n, ctau, _) = short[mass][0], long[mass][0], direct[mass]
        assert ctau == pytest.approx(3 * short[mass][2], rel=1e-12)
        error_direct = math.sqrt(eps_direct * (1 - eps_direct) / n)
        # the lifetime matters: the samples differ by far more than the statistical errors
        assert eps_short - eps_direct > 8 * error_direct and eps_direct - eps_long > 8 * error_direct
        ratio, ratio_error = float(response(mass, ctau)), float(response.ratio_error(mass, ctau))
        reweighted = eps_short * ratio  # as the signal model computes it
        error_short = math.sqrt(eps_short * (1 - eps_short) / events)
        error = math.hypot(error_direct, eps_short * ratio_error, ratio * error_short)
        assert reweighted == pytest.approx(eps_direct, abs=3 * error), mass
        # the mixture's own estimate: the weights of the selected decays over all generated ones
        weights = mixture_weights(np.r_[short[mass][3], long[mass][3]], sources[masses.index(mass)], [ctau])[:, 0]
        mixture = weights.sum() / (2 * events)
        error_mixture = math.sqrt((np.sum(weights**2) / (2 * events) - mixture**2) / (2 * events))
        assert mixture == pytest.approx(eps_direct, abs=3 * math.hypot(error_direct, error_mixture)), mass


def _fading_model(top_k: float):
    """The synthetic signal model with a lifetime map: the decays are seen within 20 cm of flight
    (the efficiency falls as 1/c tau once the ALPs fly further), known up to ``top_k`` times the
    lifetime of g = 1e-3 GeV^-1."""
    model = synthetic_shape_model(sqrt_s=SQRT_S)
    masses = np.linspace(0.3, 9.5, 24)
    ctau0 = physics.alp_ctau(masses, 1e-3)
    boost = physics.recoil_photon_energy(masses, SQRT_S) / masses
    grid = np.unique(np.r_[np.geomspace(K_MIN, top_k, 80), 1.0])
    flight = boost[:, None] * ctau0[:, None] * grid[None, :]
    seen = -np.expm1(-20.0 / flight) / -np.expm1(-20.0 / (boost * ctau0))[:, None]
    lifetime = LifetimeResponse(masses, ctau0, grid, seen, 0.01 * seen, np.ones_like(seen))
    return dataclasses.replace(model, lifetime=lifetime)


def _unexplained(out: dict) -> list[str]:
    """The columns of g that are NaN although the mass was converted, without a status naming them."""
    first, *more = out["status"].split("; ")
    named = {suffix for part in more for suffix in re.match(r"((?:\w+, )*\w+) ", part).group(1).split(", ")}
    missing = [s for s in LIMITS.values() if not math.isfinite(out[f"g_{s}"])]
    if first not in QUOTED:  # the observed limit is missing: the first status says why
        missing = [s for s in missing if s != "obs"]
    return [s for s in missing if s not in named]


def test_exclusion_rows_never_leave_a_missing_limit_unexplained():
    """Every mass whose fit is ok has a finite limit or a status naming why not, for each band:
    limits within the reach, beyond it, none at all, no limit on events, a failed fit."""
    model = _fading_model(top_k=1e5)
    luminosity = 362_000.0
    rows = []
    for mass in (0.3, 0.5, 1.0, 4.0):
        for scale in (1e-6, 1e-3, 1.0, 1e3, 1e12):
            row = {"mass": mass, "fit_status": "ok"}
            row |= {column: 5.0 * scale * (1 + 0.2 * i) for i, column in enumerate(LIMITS)}
            row["ul_exp_m2"] = math.nan if scale == 1.0 else row["ul_exp_m2"]
            rows.append(row)
    rows.append({"mass": 1.0, "fit_status": "failed: no convergence", **dict.fromkeys(LIMITS, 3.0)})
    rows.append({"mass": 9.9, "fit_status": "ok", **dict.fromkeys(LIMITS, 3.0)})
    statuses = set()
    for row in rows:
        out = exclusion_row(row, model, luminosity, SQRT_S)
        assert list(out) == list(COLUMNS)
        first = out["status"].split("; ")[0]
        statuses.add(first)
        assert math.isfinite(out["g_obs"]) or first not in QUOTED, out["status"]  # never NaN with "ok"
        converted = row["fit_status"] == "ok" and 0.3 <= row["mass"] <= 9.5
        if converted:
            assert _unexplained(out) == [], out["status"]
        if first in QUOTED:
            efficiency = model.efficiency_of_lifetime(row["mass"])
            n = expected_signal(out["g_obs"], row["mass"], luminosity, SQRT_S, efficiency)
            assert float(n) == pytest.approx(row["ul_obs"], rel=1e-6)
            assert math.isfinite(out["efficiency_at_limit"]) and out["efficiency_at_limit"] > 0
    assert {"ok", "no coupling excluded", "beyond the simulated lifetime reach", "failed: no convergence",
            "outside the signal model's mass range"} <= statuses  # fmt: skip


def test_alps_that_leave_the_detector_give_a_limit_or_a_stated_reason():
    """At 0.3 GeV the ALPs fly beyond 20 cm below g ~ 1e-5: the efficiency falls as 1/c tau and
    N(g) as g^4. A limit there is finite (the crossing within the reach); one whose crossing would
    lie beyond the map says so; with an efficiency exactly zero beyond the detector the limit is
    where the ALPs start to decay within it; never NaN with status ok."""
    mass, luminosity = 0.3, 362_000.0
    model = _fading_model(top_k=1e8)
    efficiency = model.efficiency_of_lifetime(mass)
    ctau_at = lambda g: float(physics.alp_ctau(mass, g))  # noqa: E731
    # where the ALPs fly metres the efficiency is a small fraction of the prompt one
    assert float(efficiency(ctau_at(1e-6))) < 0.05 * float(model.efficiency(mass))
    for events_limit in (3.0, 30.0, 300.0):
        limit = coupling_limit(events_limit, mass, luminosity, SQRT_S, efficiency)
        assert limit.status == "ok" and math.isfinite(limit.coupling)
        assert limit.excluded == [(limit.coupling, math.inf)]
    short = _fading_model(top_k=10.0).efficiency_of_lifetime(mass)
    unreached = coupling_limit(3.0, mass, luminosity, SQRT_S, short)
    assert unreached.status == "beyond the simulated lifetime reach" and math.isnan(unreached.coupling)
    # nothing seen beyond 20 cm of flight: N jumps from 0 where the ALPs start to decay inside
    boost = physics.recoil_photon_energy(mass, SQRT_S) / mass
    inside = lambda ctau: np.where(boost * np.asarray(ctau) < 20.0, 0.3, 0.0)  # noqa: E731
    edge = 1e-3 * math.sqrt(boost * ctau_at(1e-3) / 20.0)  # the coupling whose ALPs fly 20 cm
    assert float(expected_signal(edge * (1 + 1e-9), mass, luminosity, SQRT_S, inside)) > 0.01
    closed = coupling_limit(0.01, mass, luminosity, SQRT_S, inside)
    assert closed.status == "ok" and closed.coupling == pytest.approx(edge, rel=1e-8)
    assert coupling_limit(1e12, mass, luminosity, SQRT_S, inside).status == "no coupling excluded"
    # an efficiency unknown everywhere is named as such, not as the reach
    unknown = coupling_limit(3.0, mass, luminosity, SQRT_S, lambda ctau: np.full(np.shape(ctau), np.nan))
    assert unknown.status == "no efficiency at any coupling" and math.isnan(unknown.coupling)
