"""Beam-energy spread and ISR: the radiator against closed forms, the sampled collisions, the
frames the generators use, and the x_max beyond which nothing passes the pre-selection."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats

from bumphunt import physics
from bumphunt.constants import ALPHA_EM, ELECTRON_MASS, PI0_MASS
from bumphunt.kinematics import Beams, boost, invariant_mass
from bumphunt.ntuple import ORIGIN_PROMPT
from bumphunt.simulation.beam import (
    MASSLESS_SCALING,
    MESON_POWER,
    BeamEffects,
    Collisions,
    CrossSectionScaling,
    isr_x_max,
    radiator,
    radiator_beta,
)
from bumphunt.simulation.generators import generate_two_photon_resonance
from bumphunt.simulation.qed import ThreePhotonSampler, generation_cuts_for_acceptance
from bumphunt.simulation.stage import Reconstruction

BEAMS = Beams()
BETA = radiator_beta(BEAMS.s)
A = 1.0 + 0.75 * BETA


def radiator_cdf(x):
    """Closed-form integral of W from 0 to x: A x^beta - beta (x - x^2/4)."""
    return A * x**BETA - BETA * (x - x * x / 4.0)


def test_radiator_beta_and_normalisation():
    # beta = (2 alpha/pi)(ln(s/m_e^2) - 1) = 0.0877 at 10.574 GeV
    assert BETA == pytest.approx(2 * ALPHA_EM / np.pi * (2 * np.log(BEAMS.sqrt_s / ELECTRON_MASS) - 1), rel=1e-12)
    assert BETA == pytest.approx(0.0877, abs=1e-4)
    # W integrates to one on (0, 1): quadrature of the singular integrand and the closed form
    value, error = integrate.quad(lambda x: radiator(x, BETA), 0.0, 1.0, limit=200)
    assert value == pytest.approx(1.0, abs=1e-7) and radiator_cdf(1.0) == pytest.approx(1.0, rel=1e-15)
    assert np.all(radiator(np.linspace(1e-9, 1.0, 1000), BETA) > 0)
    # the sample's cross-section factor is the same integral up to x_max
    for x_max in (0.1, 0.4816, 1.0):
        effects = BeamEffects(BEAMS, isr=True, x_max=x_max)
        assert effects.cross_section_factor(CrossSectionScaling(0.0, 0.0)) == pytest.approx(
            radiator_cdf(x_max), rel=1e-12
        )


def test_sampled_fraction_follows_the_radiator():
    x_max = 0.95
    effects = BeamEffects(BEAMS, isr=True, x_max=x_max)
    n = 400_000
    collisions = effects.collisions(np.random.default_rng(1), n, CrossSectionScaling(0.0, 0.0))
    x = collisions.isr_fraction
    assert stats.kstest(x, lambda x: radiator_cdf(x) / radiator_cdf(x_max)).pvalue > 0.01
    # mean x on (0, x_max): [beta A x^(1+beta) / (1+beta) - beta (x^2/2 - x^3/6)] / F(x_max) (closed
    # form; beta A / (1 + beta) - beta/3 = 0.0568 for x_max = 1), within 5 standard errors
    mean = (BETA * A * x_max ** (1 + BETA) / (1 + BETA) - BETA * (x_max**2 / 2 - x_max**3 / 6)) / radiator_cdf(x_max)
    assert x.mean() == pytest.approx(mean, abs=5 * x.std() / np.sqrt(n))
    # one beam radiates: s' = (1 - x) s up to terms m_e^2 / E^2 (< 1e-5 for E > 0.2 GeV)
    assert_allclose(collisions.sqrt_s**2, (1 - x) * BEAMS.s, rtol=1e-5)


@pytest.mark.parametrize(
    "scaling, sigma",
    [
        (CrossSectionScaling(6.5, 0.0), lambda s: physics.alp_cross_section(6.5, 1e-3, np.sqrt(s))),
        (
            CrossSectionScaling(PI0_MASS, MESON_POWER),
            lambda s: physics.pseudoscalar_gamma_cross_section(PI0_MASS, 0.185, np.sqrt(s)),
        ),
    ],
)
def test_cross_section_scaling_and_effective_cross_section(scaling, sigma):
    s = BEAMS.s
    s_prime = np.array([0.5, 0.8, 0.99, 1.0]) * s
    assert_allclose(scaling.ratio(s_prime, s), sigma(s_prime) / sigma(s), rtol=1e-12)
    effects = BeamEffects(BEAMS, isr=True)
    expected, _ = integrate.quad(
        lambda x: radiator(x, BETA) * sigma((1 - x) * s) / sigma(s), 0.0, effects.x_max, limit=200, points=[1e-6]
    )
    assert effects.cross_section_factor(scaling) == pytest.approx(expected, rel=1e-6)


def test_weighted_sample_matches_its_effective_cross_section():
    """x drawn with density W(x) sigma(s')/sigma(s): for gamma gamma gamma (sigma ~ 1/s') the
    mean of 1 - x is integral W dx / integral W/(1-x) dx."""
    effects = BeamEffects(BEAMS, isr=True)
    n = 400_000
    x = effects.collisions(np.random.default_rng(2), n, MASSLESS_SCALING).isr_fraction
    assert x.max() <= effects.x_max
    one_minus_x = 1 - x
    expected = radiator_cdf(effects.x_max) / effects.cross_section_factor(MASSLESS_SCALING)
    assert one_minus_x.mean() == pytest.approx(expected, abs=5 * one_minus_x.std() / np.sqrt(n))


def test_energy_spread_of_sqrt_s_is_the_configured_one():
    effects = BeamEffects(BEAMS, energy_spread=0.005)
    n = 200_000
    collisions = effects.collisions(np.random.default_rng(3), n)
    assert np.all(collisions.isr_fraction == 0)
    sqrt_s = collisions.sqrt_s
    assert sqrt_s.std() == pytest.approx(0.005, rel=0.01)  # standard error 0.16 %
    assert sqrt_s.mean() == pytest.approx(BEAMS.sqrt_s, abs=5 * 0.005 / np.sqrt(n))
    # both beams carry the same relative spread, sqrt(2) sigma_W / sqrt(s)
    for beam, nominal in ((collisions.electron, BEAMS.e_minus_energy), (collisions.positron, BEAMS.e_plus_energy)):
        assert beam[:, 0].std() / nominal == pytest.approx(np.sqrt(2) * 0.005 / BEAMS.sqrt_s, rel=0.01)


def test_effects_off_draw_nothing_and_are_the_nominal_beams():
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    collisions = BeamEffects(BEAMS).collisions(rng, 10)
    assert rng.bit_generator.state == state and collisions.nominal
    assert_allclose(collisions.sqrt_s, BEAMS.sqrt_s, rtol=0)
    p = np.random.default_rng(5).normal(size=(10, 3, 4))
    assert np.array_equal(collisions.local_cm_to_lab(p), BEAMS.local_cm_to_lab(p))
    assert BeamEffects(BEAMS, isr=True).cross_section_factor(MASSLESS_SCALING) != 1.0
    assert BeamEffects(BEAMS, energy_spread=0.005).cross_section_factor(MASSLESS_SCALING) == 1.0


def test_per_event_frames_reduce_to_the_nominal_one():
    n = 6
    explicit = Collisions(BEAMS, n, np.tile(BEAMS.electron, (n, 1)), np.tile(BEAMS.positron, (n, 1)))
    assert_allclose(explicit.cm_rotation, np.broadcast_to(BEAMS.cm_rotation, (n, 3, 3)), atol=1e-15)
    p = np.random.default_rng(6).normal(size=(n, 2, 4))
    assert_allclose(explicit.local_cm_to_lab(p), BEAMS.local_cm_to_lab(p), atol=1e-13)
    assert_allclose(explicit.sqrt_s, BEAMS.sqrt_s, rtol=1e-14)


@pytest.mark.parametrize("mass", [0.2, 4.0, 10.375])
def test_resonance_events_conserve_each_collisions_four_momentum(mass):
    effects = BeamEffects(BEAMS, energy_spread=0.005, isr=True)
    n = 20_000
    collisions = effects.collisions(np.random.default_rng(7), n, CrossSectionScaling(mass, 0.0))
    assert np.any(collisions.isr_fraction > 0.01)
    events = generate_two_photon_resonance(np.random.default_rng(8), n, mass, BEAMS, collisions=collisions)
    total = events.recoil + events.daughters.sum(axis=1)
    assert_allclose(total, collisions.four_momentum, atol=1e-9)
    assert_allclose(invariant_mass(events.daughters.sum(axis=1)), mass, rtol=1e-8)
    # in the collision's frame the recoil photon has E* = (s' - m^2) / (2 sqrt s') and the
    # electron runs along +z'
    recoil_cm = boost(events.recoil, -collisions.boost_vector)
    assert_allclose(recoil_cm[:, 0], (collisions.sqrt_s**2 - mass**2) / (2 * collisions.sqrt_s), rtol=1e-9)
    electron_cm = boost(collisions.electron, -collisions.boost_vector)[:, 1:]
    local = np.einsum("nji,nj->ni", collisions.cm_rotation, electron_cm)
    assert_allclose(local[:, :2] / local[:, 2:], 0.0, atol=1e-12)
    assert np.all(local[:, 2] > 0)
    # no collision below the threshold: for m near sqrt(s) the radiator is cut at 1 - m^2/s
    assert collisions.sqrt_s.min() > mass


def test_resonance_below_threshold_is_refused():
    effects = BeamEffects(BEAMS, isr=True)
    with pytest.raises(ValueError, match="threshold"):
        effects.collisions(np.random.default_rng(0), 5, CrossSectionScaling(BEAMS.sqrt_s + 0.1, 0.0))


def test_nothing_above_x_max_passes_the_preselection(config):
    """gamma gamma gamma events radiating exactly x_max (from either beam) never pass; at
    x = 0.3 many do, so the test has power."""
    config["detector"]["beam_background"]["mean_photons"] = 0.5
    reconstruction = Reconstruction.from_config(config)
    x_max = reconstruction.beam_effects.x_max
    assert x_max == pytest.approx(isr_x_max(0.8)) == pytest.approx(1 - 0.72**2)
    calorimeter = reconstruction.calorimeter
    cuts = generation_cuts_for_acceptance(BEAMS, calorimeter.energy_min, calorimeter.theta_min, calorimeter.theta_max)
    rng = np.random.default_rng(9)
    photons_cm, weight = ThreePhotonSampler(BEAMS.sqrt_s, cuts).sample(rng, 40_000)
    photons_cm = photons_cm[weight > 0]
    n = len(photons_cm)
    passing = {}
    for x in (x_max, 0.3):
        for radiating in ("electron", "positron"):
            electron = np.tile(BEAMS.electron, (n, 1)) * (1 - x if radiating == "electron" else 1.0)
            positron = np.tile(BEAMS.positron, (n, 1)) * (1 - x if radiating == "positron" else 1.0)
            collisions = Collisions(BEAMS, n, electron, positron, np.full(n, x))
            lab = collisions.local_cm_to_lab(photons_cm * np.sqrt(1 - x))
            passed, _ = reconstruction(rng, lab, np.zeros((n, 3, 3)), np.full((n, 3), ORIGIN_PROMPT), collisions)
            passing[x, radiating] = passed.sum()
    assert passing[x_max, "electron"] == passing[x_max, "positron"] == 0
    assert min(passing[0.3, "electron"], passing[0.3, "positron"]) > 0.2 * n
