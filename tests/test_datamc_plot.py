"""The data/MC comparison figure: stacked MC, data with Poisson errors, ratio panel, and the
blinding that keeps every data value of the blinded region out of the figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.patches import StepPatch  # noqa: E402

from bumphunt.plotting import blind_mask, data_mc_histograms, plot_data_mc, save_figure  # noqa: E402

EDGES = np.linspace(0.0, 4.0, 41)  # 0.1 GeV bins
REGION = (1.03, 1.47)  # overlaps bins [1.0, 1.1) ... [1.4, 1.5)
MASKED = (EDGES[:-1] < REGION[1]) & (EDGES[1:] > REGION[0])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def mc():
    rng = np.random.default_rng(7)
    return {
        "ggg": (rng.uniform(0, 4, 4000), rng.uniform(0.5, 1.5, 4000)),
        "ee": (rng.exponential(1.0, 1500), np.full(1500, 2.0)),
        "mumu": (rng.uniform(0, 4, 300), None),
    }


@pytest.fixture
def data():
    rng = np.random.default_rng(8)
    return np.concatenate([rng.uniform(0, 4, 4000), rng.exponential(1.0, 3000)])


def _data_container(ax):
    found = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.get_label() == "data"]
    return found[0] if found else None


def _errorbar_x(ax):
    """x of every point and every error-bar segment of the error bars on ``ax``."""
    xs = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            xs.append(container.lines[0].get_xdata())
            for collection in container.lines[2]:
                xs.extend(np.asarray(segment)[:, 0] for segment in collection.get_segments())
    return np.concatenate(xs) if xs else np.empty(0)


def _texts(fig):
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_blind_mask():
    values = np.array([0.5, 1.0, 1.2, 1.5, 2.0, 2.2, 3.0, np.nan])
    assert blind_mask(values, (1.0, 1.5)).tolist() == [True, False, False, False, True, True, True, True]
    assert blind_mask(values, [(1.0, 1.1), (2.1, 2.5)]).tolist() == [True, False, True, True, True, False, True, True]
    regions = np.array([[1.0, 1.1], [2.1, 2.5]])
    np.testing.assert_array_equal(blind_mask(values, regions), blind_mask(values, [(1.0, 1.1), (2.1, 2.5)]))
    assert blind_mask(values, None).all() and blind_mask(values, []).all()
    assert blind_mask(values, (2.0, 2.0)).tolist() == [True, True, True, True, False, True, True, True]
    for bad in [(2.0, 1.0), (1.0, 2.0, 3.0), [(1.0,)], (np.nan, 1.0)]:
        with pytest.raises(ValueError, match="blinded region"):
            blind_mask(values, bad)


def test_histograms_stack_the_sum_of_weights(mc):
    h = data_mc_histograms(mc, bins=40, range=(0, 4))
    np.testing.assert_array_equal(h.edges, EDGES)
    total = np.zeros(40)
    variance = np.zeros(40)
    for name, (values, weights) in mc.items():
        weights = np.ones_like(values) if weights is None else weights
        inside = (values >= 0) & (values <= 4)
        per_bin = np.bincount(np.minimum((values[inside] / 0.1).astype(int), 39), weights[inside], 40)
        np.testing.assert_allclose(h.mc[name], per_bin, rtol=1e-12)
        total += per_bin
        variance += np.bincount(np.minimum((values[inside] / 0.1).astype(int), 39), weights[inside] ** 2, 40)
    np.testing.assert_allclose(h.mc_total, total, rtol=1e-12)
    np.testing.assert_allclose(h.mc_error, np.sqrt(variance), rtol=1e-12)
    assert h.processes == tuple(sorted(mc, key=lambda name: h.mc[name].sum()))  # smallest at the bottom
    assert h.data is None and not h.shown.any()


def test_the_drawn_stack_is_the_histograms(mc, data):
    h = data_mc_histograms(mc, data, bins=EDGES, blinded_region=REGION)
    fig = plot_data_mc(mc, data, bins=EDGES, label="M", blinded_region=REGION)
    top, bottom = fig.axes
    patches = {p.get_label(): p.get_data() for p in top.patches if isinstance(p, StepPatch)}
    below = np.zeros(40)
    for name in h.processes:  # bottom first: each layer starts where the one below ends
        np.testing.assert_allclose(patches[name].baseline, below, rtol=1e-12, atol=1e-12)
        below = below + h.mc[name]
        np.testing.assert_allclose(patches[name].values, below, rtol=1e-12)
    np.testing.assert_allclose(patches[h.processes[-1]].values, h.mc_total, rtol=1e-12)
    band = patches["MC stat. unc."]
    np.testing.assert_allclose(band.values, h.mc_total + h.mc_error, rtol=1e-12)
    np.testing.assert_allclose(band.baseline, h.mc_total - h.mc_error, rtol=1e-12)
    assert bottom.get_ylim() == (0.5, 1.5)


def test_blinded_no_data_in_the_region(mc, data):
    h = data_mc_histograms(mc, data, bins=EDGES, blinded_region=REGION)
    np.testing.assert_array_equal(h.masked, MASKED)
    assert np.isnan(h.data[MASKED]).all() and np.isnan(h.ratio[MASKED]).all()
    assert np.isfinite(h.data[~MASKED]).all()

    fig = plot_data_mc(mc, data, bins=EDGES, label="M", blinded_region=REGION)
    top, bottom = fig.axes
    low, high = EDGES[:-1][MASKED][0], EDGES[1:][MASKED][-1]  # the masked bins: [1.0, 1.5]
    for ax in (top, bottom):
        x = _errorbar_x(ax)
        assert len(x) and not ((x >= low) & (x <= high)).any()
    points = _data_container(top).lines[0]
    np.testing.assert_allclose(points.get_xdata(), h.centres[~MASKED])
    np.testing.assert_allclose(points.get_ydata(), h.data[~MASKED])
    texts = _texts(fig)
    assert "BLINDED" in texts and "blinded" in texts  # the label and the legend entry of the shading
    spans = [p for p in top.patches if p.get_gid() == "blinded"]
    assert len(spans) == 1
    assert (spans[0].get_x(), spans[0].get_width()) == pytest.approx((1.0, 0.5))  # the masked bins, shaded
    in_region = int((~blind_mask(data, REGION)).sum())
    assert in_region > 0 and not any(str(in_region) == t for t in texts)


def test_blinded_data_cannot_reach_the_figure(mc, data, tmp_path):
    """Data that differ only in the blinded region (and in the bins overlapping it) give the
    same histograms and the same image, pixel for pixel."""
    rng = np.random.default_rng(3)
    extra = np.r_[rng.uniform(*REGION, 50_000), np.full(1000, REGION[0]), np.full(1000, REGION[1]),
                  rng.uniform(1.0, 1.03, 500), rng.uniform(1.47, 1.5, 500)]  # fmt: skip
    a = data_mc_histograms(mc, data, bins=EDGES, blinded_region=REGION)
    b = data_mc_histograms(mc, np.r_[data, extra], bins=EDGES, blinded_region=REGION)
    np.testing.assert_array_equal(a.data, b.data)
    images = []
    for name, values in (("a", data), ("b", np.r_[data, extra])):
        fig = plot_data_mc(mc, values, bins=EDGES, label="M", blinded_region=REGION)
        images.append(matplotlib.image.imread(save_figure(fig, tmp_path / f"{name}.png")))
    np.testing.assert_array_equal(images[0], images[1])
    unblinded = []  # the comparison sees the extra events once they may be shown
    for name, values in (("c", data), ("d", np.r_[data, extra])):
        fig = plot_data_mc(mc, values, bins=EDGES, label="M", blinded_region=REGION, blinded=False)
        unblinded.append(matplotlib.image.imread(save_figure(fig, tmp_path / f"{name}.png")))
    assert unblinded[0].shape != unblinded[1].shape or (unblinded[0] != unblinded[1]).any()
    # unblinded, the same extra events show
    c = data_mc_histograms(mc, np.r_[data, extra], bins=EDGES, blinded_region=REGION, blinded=False)
    assert np.nansum(c.data) == len(data) - np.sum(data > 4) + len(extra)


def test_several_regions_and_points(mc, data):
    regions = [(1.0, 1.2), (2.25, 2.25)]  # a region of zero width masks the bin holding it
    h = data_mc_histograms(mc, data, bins=EDGES, blinded_region=regions)
    assert np.flatnonzero(h.masked).tolist() == [10, 11, 22]
    fig = plot_data_mc(mc, data, bins=EDGES, label="M", blinded_region=regions)
    assert len([p for p in fig.axes[0].patches if p.get_gid() == "blinded"]) == 2


def test_blinded_needs_a_region(mc, data):
    with pytest.raises(ValueError, match="blinded_region"):
        plot_data_mc(mc, data, bins=EDGES, label="M")
    # an empty list: the data were blinded upstream (sidebands only), all of it is drawn
    fig = plot_data_mc(mc, data, bins=EDGES, label="M", blinded_region=[])
    assert len(_data_container(fig.axes[0]).lines[0].get_xdata()) == 40
    assert "BLINDED" in _texts(fig)


def test_blinded_mc_only(mc):
    fig = plot_data_mc(mc, bins=EDGES, label="M", blinded_region=REGION)
    top, bottom = fig.axes
    assert _data_container(top) is None and not bottom.containers
    assert "BLINDED" in _texts(fig) and "data" not in _texts(fig)


def test_unblinded_data_everywhere_and_ratio(mc, data):
    h = data_mc_histograms(mc, data, bins=EDGES, blinded_region=REGION, blinded=False)
    counts = np.histogram(data, EDGES)[0]
    np.testing.assert_array_equal(h.data, counts)
    np.testing.assert_allclose(h.ratio, counts / h.mc_total, rtol=1e-12)
    low, high = h.ratio_errors()
    from mplhep.error_estimation import poisson_interval

    interval = poisson_interval(counts.astype(float), counts.astype(float))  # Garwood for unweighted counts
    np.testing.assert_allclose(low, (counts - interval[0]) / h.mc_total, rtol=1e-9)
    np.testing.assert_allclose(high, (interval[1] - counts) / h.mc_total, rtol=1e-9)

    fig = plot_data_mc(mc, data, bins=EDGES, label="M", blinded_region=REGION, blinded=False)
    top, bottom = fig.axes
    np.testing.assert_allclose(_data_container(top).lines[0].get_xdata(), h.centres)
    ratio = [c for c in bottom.containers if isinstance(c, ErrorbarContainer)][0].lines[0]
    np.testing.assert_allclose(ratio.get_xdata(), h.centres)
    np.testing.assert_allclose(ratio.get_ydata(), counts / h.mc_total, rtol=1e-12)
    assert "BLINDED" not in _texts(fig)
    assert not [p for p in top.patches if p.get_gid() == "blinded"]


def test_own_axes_and_log(mc, data):
    fig, ax = plt.subplots()
    assert plot_data_mc(mc, data, bins=EDGES, label="M", blinded_region=REGION, ax=ax, logy=True) is fig
    assert fig.axes == [ax] and ax.get_yscale() == "log" and ax.get_xlabel() == "M [GeV]"
    fig, pair = plt.subplots(2, 1)
    plot_data_mc(mc, data, bins=EDGES, label="p", unit="", blinded_region=REGION, ax=pair, ratio_range=(0, 2))
    assert pair[1].get_ylim() == (0, 2) and pair[1].get_xlabel() == "p"


def test_saves_a_png(mc, data, tmp_path):
    fig = plot_data_mc(mc, data, bins=40, range=(0, 4), label=r"$M_{\gamma\gamma}$", blinded_region=REGION)
    path = save_figure(fig, tmp_path / "plots" / "datamc.png")
    assert [p.name for p in path.parent.iterdir()] == ["datamc.png"]  # no temporary left behind
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not blank
    assert not plt.get_fignums()  # save_figure closed it


def test_bad_input(mc):
    with pytest.raises(ValueError, match="no MC"):
        data_mc_histograms({}, bins=EDGES)
    with pytest.raises(ValueError, match="weights"):
        data_mc_histograms({"x": (np.ones(3), np.ones(2))}, bins=EDGES)
    with pytest.raises(ValueError, match="bins"):
        data_mc_histograms(mc, bins=[1.0, 0.5])
