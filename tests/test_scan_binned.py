"""Pseudo-data and data held as a fine histogram (``scan.data_binning``): chunked fills equal
fills in memory, the binned scan equals the unbinned one, the counts are Poisson, bad bins
are refused."""

import logging

import numpy as np
import pytest
import uproot
from scipy import stats

from bumphunt.errors import BumphuntError
from bumphunt.scan import BackgroundModel, SmoothBackground, candidates_histogram, histogram_edges, scan_spectrum
from bumphunt.scan import data as scan_data
from bumphunt.scan.data import HISTOGRAM_ABOVE, RANDOM_BLOCK, candidates, histogram_wanted, spectrum_from

from .bad_inputs import pattern
from .helpers import synthetic_shape_model

SQRT_S = 10.58


@pytest.fixture(scope="module")
def model():
    return synthetic_shape_model(sqrt_s=SQRT_S)


def falling_background(total: float) -> SmoothBackground:
    """``total`` expected candidates of a smooth falling spectrum (0.05-10 GeV), in 10 MeV bins."""
    edges = np.linspace(0.0, 10.0, 1001)
    centres = 0.5 * (edges[1:] + edges[:-1])
    density = np.exp(-centres / 2.0) * (1.0 - np.exp(-centres / 0.1))
    return SmoothBackground(edges, total * density / density.sum())


def event_sample(n_events: int, seed: int):
    """Weighted events of three candidates each, some of them NaN, drawn event by event."""
    rng = np.random.default_rng(seed)
    masses = rng.uniform(0.2, 9.0, (n_events, 3))
    masses[rng.random(masses.shape) < 0.01] = np.nan
    return scan_data._EventSample(masses, rng.uniform(0.0, 1.0, n_events))


def test_chunked_pseudo_data_equal_the_ones_filled_in_memory(model):
    """Event by event: filled one random block at a time, all at once, and as the histogram of
    every candidate held in memory (the same Poisson draws) give the same counts, exactly; a
    smooth sample the same whatever the chunk size."""
    events = event_sample(3 * RANDOM_BLOCK + 123, seed=1)
    background = BackgroundModel.of_samples([events], model.resolution)
    chunked = background.sample_histogram(7, chunk_size=1)  # one block of 65,536 events at a time
    in_memory = background.sample_histogram(7, chunk_size=10**9)
    np.testing.assert_array_equal(chunked.weights, in_memory.weights)
    np.testing.assert_array_equal(chunked.edges, background.histogram_edges())
    repeats = np.concatenate(
        [rng.poisson(events.weights[low:high]) for low, high, rng in scan_data._streams(len(events.weights), 7, 0)]
    )
    every_candidate = np.repeat(events.masses, repeats, axis=0).ravel()
    every_candidate = every_candidate[np.isfinite(every_candidate)]
    np.testing.assert_array_equal(chunked.weights, np.histogram(every_candidate, chunked.edges)[0])
    assert chunked.n_events == len(every_candidate) > 0
    both = BackgroundModel.of_samples([falling_background(2e5), events], model.resolution)
    np.testing.assert_array_equal(both.sample_histogram(3, chunk_size=1).weights,
                                  both.sample_histogram(3, chunk_size=10**9).weights)  # fmt: skip


def test_binned_pseudo_data_are_poisson_and_seeded(model):
    """The total is Poisson about the expected candidates (within 4 sigma), the same seed gives
    the same counts and another seed others, and the counts follow the expected spectrum
    (chi2 in 0.1 GeV groups of bins) as the unbinned draw of the same background does."""
    expected = 1e6
    events = event_sample(20_000, seed=2)
    background = BackgroundModel.of_samples([falling_background(expected), events], model.resolution)
    mean = background.expected_candidates
    assert mean == pytest.approx(expected + np.nansum(events.weights[:, None] * np.isfinite(events.masses)), rel=1e-12)
    first, again, other = (background.sample_histogram(seed) for seed in (11, 11, 12))
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.array_equal(first.weights, other.weights)
    for spectrum in (first, other):
        assert abs(spectrum.n_events - mean) < 4 * np.sqrt(mean)
        assert np.all(spectrum.weights == np.round(spectrum.weights)) and spectrum.weights.min() >= 0
    groups = np.linspace(0.2, 9.0, 89)
    unbinned = np.histogram(background.sample(11), groups)[0]
    binned = np.histogram(first.x, groups, weights=first.weights)[0]  # bins of sigma/50 lie within a group
    chi2 = np.sum((binned - unbinned) ** 2 / (binned + unbinned))
    assert stats.chi2.sf(chi2, len(binned)) > 1e-3, chi2


def test_binned_scan_of_1e7_candidates_equals_the_unbinned_scan(model):
    """10^7 candidates of a falling spectrum, scanned as sorted masses and as a histogram of
    sigma/50 bins: the observed and the median expected limits agree within 1 % at five masses
    (0.4 % and 0.02 % seen), the local significance within 0.05 (0.012 seen)."""
    rng = np.random.default_rng(2024)
    low, high, slope = 0.3, 9.5, 2.0
    masses = low - slope * np.log1p(-rng.random(10**7) * -np.expm1(-(high - low) / slope))
    grid = dict(start=1.0, stop=7.0, step_gev=1.5, global_toys=0)  # 1.0, 2.5, 4.0, 5.5, 7.0 GeV
    unbinned = scan_spectrum(masses, model, data_binning="unbinned", **grid)
    binned = scan_spectrum(masses, model, data_binning="auto", **grid)  # 10^7 > HISTOGRAM_ABOVE: binned
    assert len(binned) == 5 and binned.ok.all() and unbinned.ok.all()
    widened = binned["n_events"] - unbinned["n_events"]  # the windows widened to whole bins of the histogram
    assert np.all(widened > 0)
    np.testing.assert_allclose(binned["ul_obs"], unbinned["ul_obs"], rtol=0.01)
    np.testing.assert_allclose(binned["ul_exp"], unbinned["ul_exp"], rtol=0.01)
    np.testing.assert_allclose(binned["z_local"], unbinned["z_local"], atol=0.05)


def test_auto_binning_threshold_and_bin_widths(model):
    """auto: binned above HISTOGRAM_ABOVE candidates; the fine bins are sigma/50 within 2 %."""
    assert not histogram_wanted("auto", HISTOGRAM_ABOVE) and histogram_wanted("auto", HISTOGRAM_ABOVE + 1)
    assert histogram_wanted("binned", 10) and not histogram_wanted("unbinned", 1e9)
    edges = histogram_edges(model.resolution, SQRT_S)
    some = slice(None, None, 97)  # the resolution of every bin takes seconds
    widths = np.diff(edges)[some] / model.resolution(0.5 * (edges[1:] + edges[:-1])[some])
    np.testing.assert_allclose(widths, 1 / 50, rtol=0.02)
    assert edges[0] == 0.0 and edges[-1] == pytest.approx(SQRT_S, rel=1e-12)


def test_data_ntuple_filled_chunk_by_chunk(model, tmp_path, caplog):
    """An ntuple of 3 candidates per event, read 1000 entries at a time into the histogram:
    the counts of the candidates read whole, the NaN ones counted as dropped; a tree of one's
    own with a mass expression the same."""
    rng = np.random.default_rng(5)
    n_events = 10_500
    masses = rng.uniform(0.2, 9.0, (n_events, 3))
    masses[rng.random(masses.shape) < 0.02] = np.nan
    status = rng.integers(0, 2, n_events).astype(np.int32)
    path = tmp_path / "data.root"
    with uproot.recreate(path) as file:
        file["events"] = {"m_gg_fit": masses, "fit_status": status}
        file["own"] = {"M_MeV": 1000 * masses[:, 0], "fit_status": status}
    edges = histogram_edges(model.resolution, SQRT_S)
    whole, dropped = candidates(path, "fit_status == 0", "m_gg_fit", count_dropped=True)
    with caplog.at_level(logging.WARNING, logger="bumphunt.scan.data"):
        fill = candidates_histogram(path, "fit_status == 0", "m_gg_fit", edges, step_size=1000)
    np.testing.assert_array_equal(fill.spectrum.weights, np.histogram(whole, edges)[0])
    assert fill.dropped == dropped == np.count_nonzero(np.isnan(masses[status == 0])) > 0
    assert fill.outside == 0 and "NaN or infinite m_gg_fit dropped" in caplog.text
    own = spectrum_from(path, tree="own", mass_variable="M_MeV / 1000", selection="fit_status == 0", edges=edges)
    first = masses[status == 0, 0]
    np.testing.assert_array_equal(own.weights, np.histogram(first[np.isfinite(first)], edges)[0])


def test_bins_coarser_than_the_resolution_and_mev_masses_are_refused(model):
    """Histogram bins wider than a third of sigma(m) are refused on one line; masses in MeV
    fall outside the histogram and are refused too; an unknown binning is named."""
    background = BackgroundModel.of_samples([falling_background(1e4)], model.resolution)
    for bins, call in ((2, lambda: histogram_edges(model.resolution, SQRT_S, bins_per_sigma=2)),
                       (1, lambda: background.sample_histogram(1, bins_per_sigma=1))):  # fmt: skip
        expected = pattern("histogram-bins-too-wide", bins_per_sigma=bins, minimum=3, default=50)
        with pytest.raises(BumphuntError, match=expected):
            call()
    edges = histogram_edges(model.resolution, SQRT_S)
    expected = pattern("histogram-every-candidate-outside", n=100, low=f"{edges[0]:g}", high=f"{edges[-1]:.4f}")
    with pytest.raises(BumphuntError, match=expected):
        spectrum_from(np.full(100, 1500.0), edges=edges)
    with pytest.raises(BumphuntError, match="unknown data binning 'histogram'"):
        histogram_wanted("histogram", 1)
