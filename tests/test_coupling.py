"""The coupling conversion: closed forms, the self-consistent solution with a lifetime-dependent
efficiency (islands included), and the efficiency reweighted in lifetime against direct simulation."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from bumphunt import physics
from bumphunt.constants import ALPHA_EM, GEV2_TO_PB, HBAR_C_GEV_CM
from bumphunt.coupling import (
    COUPLING_RANGE,
    coupling_limit,
    expected_signal,
    limit_columns,
    prompt_coupling_limit,
)
from bumphunt.kinfit import run_kinfit
from bumphunt.models.lifetime import K_MAX, K_MIN, LifetimeResponse, lifetime_weights, mixture_weights
from bumphunt.models.signal import MassFit
from bumphunt.shapes.stage import lifetime_response
from bumphunt.simulation import run_simulation

from .helpers import small_config

SQRT_S = 10.58
LUMINOSITY = 445.0


def test_cross_section_width_and_decay_length_against_closed_forms():
    mass, g = 0.7, 2.5e-3
    threshold = (1 - mass**2 / SQRT_S**2) ** 3
    assert physics.alp_cross_section(mass, g, SQRT_S) == pytest.approx(
        ALPHA_EM * g**2 / 24 * threshold * GEV2_TO_PB, rel=1e-14
    )
    width = g**2 * mass**3 / (64 * math.pi)
    assert physics.alp_width(mass, g) == pytest.approx(width, rel=1e-14)
    assert physics.alp_ctau(mass, g) == pytest.approx(HBAR_C_GEV_CM / width, rel=1e-14)
    p_star = (SQRT_S**2 - mass**2) / (2 * SQRT_S)
    assert physics.alp_mean_decay_length(mass, g, SQRT_S) == pytest.approx(p_star / mass * HBAR_C_GEV_CM / width)
    # 1 GeV^-2 = 0.3894 mb; alpha(0)
    assert GEV2_TO_PB == pytest.approx(0.3893794e9, rel=1e-6) and 1 / ALPHA_EM == pytest.approx(137.036, abs=1e-3)


@pytest.mark.parametrize("mass", [0.3, 2.0, 9.5])
def test_prompt_conversion_inverts_exactly(mass):
    efficiency, events_limit = 0.31, 7.3
    closed = prompt_coupling_limit(events_limit, mass, efficiency, LUMINOSITY, SQRT_S)
    sigma_unit = ALPHA_EM / 24 * (1 - mass**2 / SQRT_S**2) ** 3 * GEV2_TO_PB
    assert closed == pytest.approx(math.sqrt(events_limit / (efficiency * LUMINOSITY * sigma_unit)), rel=1e-14)
    solved = coupling_limit(events_limit, mass, LUMINOSITY, SQRT_S, lambda ctau: np.full(np.shape(ctau), efficiency))
    assert solved.status == "ok" and solved.excluded == [(solved.coupling, math.inf)]
    assert solved.coupling == pytest.approx(closed, rel=1e-10)
    assert solved.cross_section_pb == pytest.approx(events_limit / (efficiency * LUMINOSITY), rel=1e-14)
    assert limit_columns(events_limit, mass, LUMINOSITY, SQRT_S, efficiency)["g_ul_gev"] == pytest.approx(closed)


def _fading(mass, decay_length_cm):
    """An efficiency that vanishes for long lifetimes: decays within ``decay_length_cm`` (mean CM decay length)."""
    boost = physics.recoil_photon_energy(mass, SQRT_S) / mass
    return lambda ctau: 0.4 * -np.expm1(-decay_length_cm / (boost * np.asarray(ctau)))


@pytest.mark.parametrize("mass", [0.2, 0.5, 1.0])
def test_self_consistent_limit_gives_back_the_events_limit(mass):
    g_prompt = prompt_coupling_limit(5.0, mass, 0.4, LUMINOSITY, SQRT_S)
    # decays seen within twice the mean decay length at the prompt limit
    efficiency = _fading(mass, 2 * float(physics.alp_mean_decay_length(mass, g_prompt, SQRT_S)))
    result = coupling_limit(5.0, mass, LUMINOSITY, SQRT_S, efficiency)
    assert result.status == "ok"
    assert expected_signal(result.coupling, mass, LUMINOSITY, SQRT_S, efficiency) == pytest.approx(5.0, rel=1e-6)
    assert result.efficiency == pytest.approx(float(efficiency(physics.alp_ctau(mass, result.coupling))), rel=1e-12)
    assert result.ctau_cm == pytest.approx(float(physics.alp_ctau(mass, result.coupling)), rel=1e-12)
    # the lifetime only lowers the efficiency: the limit is weaker than the prompt one
    assert result.coupling > 1.05 * g_prompt


def test_efficiency_in_a_band_of_lifetimes_gives_an_island_with_the_right_edges():
    """Efficiency eps0 only for decay lengths between ctau_low and ctau_high: excluded where
    N = L sigma eps0 > N_UL and ctau(g) inside the band, i.e. g in [max(g_prompt, g(ctau_high)), g(ctau_low)]."""
    mass, eps0, events_limit = 0.3, 0.2, 4.0
    ctau_low, ctau_high = 1e-4, 5.0
    efficiency = lambda ctau: np.where((np.asarray(ctau) > ctau_low) & (np.asarray(ctau) < ctau_high), eps0, 0.0)  # noqa: E731

    def coupling_at(ctau):  # ctau = hbar c 64 pi / (g^2 m^3)
        return math.sqrt(HBAR_C_GEV_CM * 64 * math.pi / (ctau * mass**3))

    g_prompt = prompt_coupling_limit(events_limit, mass, eps0, LUMINOSITY, SQRT_S)
    assert coupling_at(ctau_high) < g_prompt < coupling_at(ctau_low)
    result = coupling_limit(events_limit, mass, LUMINOSITY, SQRT_S, efficiency)
    assert result.status == "island" and len(result.excluded) == 1
    low, high = result.excluded[0]
    assert low == pytest.approx(g_prompt, rel=1e-9)
    assert high == pytest.approx(coupling_at(ctau_low), rel=1e-9)
    # a band that starts above the prompt limit: the lower edge is the long-lifetime end
    narrow = lambda ctau: np.where((np.asarray(ctau) > ctau_low) & (np.asarray(ctau) < 2e-4), eps0, 0.0)  # noqa: E731
    assert coupling_at(2e-4) > g_prompt
    island = coupling_limit(events_limit, mass, LUMINOSITY, SQRT_S, narrow)
    assert island.status == "island"
    assert island.excluded[0][0] == pytest.approx(coupling_at(2e-4), rel=1e-9)
    assert island.excluded[0][1] == pytest.approx(coupling_at(ctau_low), rel=1e-9)
    # too little signal anywhere: nothing excluded
    assert coupling_limit(1e12, mass, LUMINOSITY, SQRT_S, efficiency).status == "no coupling excluded"
    assert coupling_limit(math.nan, mass, LUMINOSITY, SQRT_S, efficiency).status == "no limit"


def test_unknown_efficiency_at_the_crossing_is_flagged():
    mass = 0.3
    g_prompt = prompt_coupling_limit(4.0, mass, 0.2, LUMINOSITY, SQRT_S)
    reach = float(physics.alp_ctau(mass, 2 * g_prompt))  # known only for shorter lifetimes than at 2 g_prompt
    efficiency = lambda ctau: np.where(np.asarray(ctau) <= reach, 0.2, np.nan)  # noqa: E731
    result = coupling_limit(4.0, mass, LUMINOSITY, SQRT_S, efficiency)
    assert result.status == "beyond the simulated lifetime reach"
    assert COUPLING_RANGE[0] < 1e-6


def test_lifetime_weights_reweight_an_exponential():
    """Weighted draws of one exponential follow another: mean weight 1, mean decay length tau,
    and the variance of the weights 1 / (k (2 - k)) - 1 (finite for k < 2; its estimate settles
    for k < 4/3, where the fourth moment is finite)."""
    rng = np.random.default_rng(3)
    tau0, n = 2.0, 1_000_000
    t = rng.exponential(tau0, n)
    for k in (0.1, 0.5, 1.5):
        w = lifetime_weights(t, tau0, k * tau0)
        spread = w.std() / math.sqrt(n)
        assert w.mean() == pytest.approx(1.0, abs=5 * spread)
        assert np.average(t, weights=w) == pytest.approx(k * tau0, rel=10 * spread + 2e-3)
        if k < 4 / 3:
            assert w.var() == pytest.approx(1 / (k * (2 - k)) - 1, rel=0.02)
            # Kish's effective fraction (sum w)^2 / (n sum w^2) = k (2 - k)
            assert w.sum() ** 2 / (n * np.sum(w * w)) == pytest.approx(k * (2 - k), rel=0.02)
    with pytest.raises(ValueError, match="positive"):
        lifetime_weights(t, 0.0, 1.0)


def test_lifetime_response_against_an_analytic_acceptance():
    """A detector that sees decays within a flight of R: eps(tau) = 1 - exp(-R m / (p c tau))."""
    rng = np.random.default_rng(4)
    masses, ctau0 = np.array([0.2, 0.3]), np.array([1.0, 0.4])
    boosts, reach = np.array([26.0, 17.0]), 20.0
    lengths = []
    for boost, tau in zip(boosts, ctau0):
        t = rng.exponential(tau, 200_000)
        lengths.append(t[t * boost < reach])  # the counted candidates
    response = LifetimeResponse.measure(masses, [[(tau, 200_000)] for tau in ctau0], lengths)
    for i, (boost, tau) in enumerate(zip(boosts, ctau0)):
        at_generated = -math.expm1(-reach / (boost * tau))
        for k in (K_MIN, 0.2, 1.0, K_MAX):
            expected = -math.expm1(-reach / (boost * k * tau)) / at_generated
            value = float(response(masses[i], k * tau))
            error = np.interp(np.log(k), np.log(response.relative_lifetimes), response.error[i])
            assert value == pytest.approx(expected, abs=4 * error + 1e-12)
        assert float(response(masses[i], tau)) == pytest.approx(1.0, abs=1e-12)
        assert float(response(masses[i], K_MIN * tau / 10)) == float(response(masses[i], K_MIN * tau))
        assert math.isnan(float(response(masses[i], 1.01 * K_MAX * tau)))
    # between the masses: linear in mass at fixed c tau
    middle = float(response(0.25, 0.3))
    assert middle == pytest.approx(0.5 * (float(response(0.2, 0.3)) + float(response(0.3, 0.3))), rel=1e-12)
    again = LifetimeResponse.from_dict(response.to_dict())
    assert_allclose(again(masses, ctau0 * 0.5), response(masses, ctau0 * 0.5), rtol=0, atol=0)


def test_long_lived_sources_extend_the_reach():
    """Signal at tau0 (20,000 decays) and long-lived decays at 6.25 tau0 (2,000): the mixture
    reweighting reproduces the analytic acceptance up to 1.8 x 6.25 tau0, and its weights have
    mean 1 over the generated decays of both sources."""
    rng = np.random.default_rng(5)
    tau0, tau_long, boost, reach = 0.5, 3.125, 26.0, 20.0
    t = np.r_[rng.exponential(tau0, 20_000), rng.exponential(tau_long, 2_000)]
    sources = [(tau0, 20_000), (tau_long, 2_000)]
    for k in (0.1, 1.0, 5.0, 11.0):
        w = mixture_weights(t, sources, [k * tau0])[:, 0]
        assert w.mean() == pytest.approx(1.0, abs=5 * w.std() / math.sqrt(len(w)))
    assert_allclose(mixture_weights(t[:50], [(tau0, 10)], [0.7 * tau0]), lifetime_weights(t[:50], tau0, [0.7 * tau0]))
    counted = t[t * boost < reach]
    response = LifetimeResponse.measure([0.2], [sources], [counted])
    assert response.relative_lifetimes.max() == pytest.approx(K_MAX * tau_long / tau0)
    at_generated = -math.expm1(-reach / (boost * tau0))
    for k in (0.2, 1.0, 3.0, 8.0, 11.0):
        expected = -math.expm1(-reach / (boost * k * tau0)) / at_generated
        error = float(response.ratio_error(0.2, k * tau0))
        assert float(response(0.2, k * tau0)) == pytest.approx(expected, abs=4 * error + 1e-12)
    assert math.isnan(float(response(0.2, 12.0 * tau0)))
    # without the long-lived decays the reach ends at K_MAX tau0
    alone = LifetimeResponse.measure([0.2], [[(tau0, 20_000)]], [counted[: np.sum(t[:20_000] * boost < reach)]])
    assert math.isnan(float(alone(0.2, 3.0 * tau0)))


def _efficiency_at(config, masses):
    """Candidates of the pre-selected, kinematically fitted ALP events within +-40 MeV of the
    generated mass (fit probability > 1 %), per generated event; and the lifetime response."""
    from bumphunt.ntuple import iterate_ntuple, read_metadata

    path = run_kinfit(config, progress=False)[0].output_path
    generated = {round(m["mass"], 9): m["n_generated"] for m in read_metadata(path)["masses"]}
    counts = dict.fromkeys(masses, 0)
    selection = "fit_status == 0 and fit_pvalue > 0.01"
    for chunk in iterate_ntuple(path, ["gen_mass", "m_gg_fit", "fit_status", "fit_pvalue"]):
        keep = (chunk["fit_status"] == 0) & (chunk["fit_pvalue"] > 0.01)
        for mass in masses:
            at = keep & np.isclose(chunk["gen_mass"], mass)
            counts[mass] += int(np.sum(np.abs(chunk["m_gg_fit"][at] - mass) <= 0.04))
    fits = [MassFit(m, "ok", generated[m], 0, 0, m - 0.04, m + 0.04) for m in masses]
    response = lifetime_response(path, fits, "m_gg_fit", selection)
    return {m: (counts[m] / generated[m], generated[m]) for m in masses}, response


def test_reweighted_efficiency_agrees_with_direct_simulation(tmp_path):
    """Signal simulated at g1 = 1e-5 and reweighted to g2 = 1.3 g1 (tau2 = 0.59 tau1) against
    signal simulated at g2, at 0.2, 0.25 and 0.3 GeV, where the ALPs fly 130, 54 and 26 cm at g1
    (the efficiency changes by far more than its statistical error between g1 and g2)."""
    masses = [0.2, 0.25, 0.3]
    efficiencies = {}
    for name, scale in (("g1", 1.0), ("g2", 1.3)):
        config = small_config(tmp_path / name, **{
            "simulation.signal.masses": {"start": 0.2, "stop": 0.3, "step": 0.05},
            "simulation.signal.events_per_mass": 20000,
            "simulation.signal.coupling": 1e-5 * scale,
            "simulation.workers": 2,
        })  # fmt: skip
        run_simulation(config, samples=["alp"], progress=False)
        efficiencies[name] = _efficiency_at(config, masses)
    direct_g1, response = efficiencies["g1"]
    direct_g2, _ = efficiencies["g2"]
    for mass in masses:
        (eps1, n1), (eps2, n2) = direct_g1[mass], direct_g2[mass]
        error1, error2 = math.sqrt(eps1 / n1), math.sqrt(eps2 / n2)
        ctau2 = float(physics.alp_ctau(mass, 1e-5 * 1.3))
        reweighted = eps1 * float(response(mass, ctau2))
        assert abs(eps2 - eps1) > 5 * math.hypot(error1, error2)  # the lifetime matters here
        assert reweighted == pytest.approx(eps2, abs=3 * math.hypot(error1, error2))
