"""The example notebooks run from top to bottom on the samples they make, end with a figure,
and print the numbers they teach, right (docs/notebooks.md)."""

import os
import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
NOTEBOOKS = (
    "01_fit_one_hypothesis.ipynb",
    "02_signal_shape_interpolation.ipynb",
    "03_scan_your_own_data.ipynb",
    "04_limits_with_hepstats.ipynb",
    "05_punzi_net.ipynb",
    "06_limits_to_coupling.ipynb",
)
NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"

pytestmark = pytest.mark.slow  # every notebook simulates and fits a small analysis: 6-20 s each
nbformat = pytest.importorskip("nbformat")


def numbers(pattern: str, text: str) -> list[tuple[float, ...]]:
    """Every match of ``pattern`` (``{}`` where a number stands) in the printed ``text``, as floats."""
    regex = re.escape(pattern).replace(r"\{\}", NUMBER)
    return [tuple(float(value) for value in match.groups()) for match in re.finditer(regex, text)]


def one(pattern: str, text: str) -> tuple[float, ...]:
    found = numbers(pattern, text)
    assert len(found) == 1, f"expected one line {pattern!r} in the output, found {len(found)}:\n{text}"
    return found[0]


def check_fit_one_hypothesis(text: str) -> None:
    n_sig_zfit, n_sig_scan, error = one("n_sig zfit {} scan {} error {}", text)
    error_zfit, error_scan = one("n_sig error zfit {} scan {}", text)
    assert n_sig_scan > 2 * error  # the injected signal is there
    assert abs(n_sig_zfit - n_sig_scan) < 1e-3 * error
    assert error_zfit == pytest.approx(error_scan, rel=1e-2)


def check_signal_shape_interpolation(text: str) -> None:
    held_out = numbers("held-out {} GeV: mu {} errors, width {} errors, chi2 p-value {}", text)
    assert len(held_out) == 3
    n_checked, *shares = one(
        "held-out masses {}: mu within 2 errors {}, width within 2 errors {}, p-value above 0.01 {}", text
    )
    assert n_checked == 3 and all(0.0 <= share <= 1.0 for share in shares)
    mass, mu, resolution, efficiency, integral = one(
        "shape at {} GeV (not generated): mu {} GeV, resolution {} MeV, efficiency {}, integral over the window {}",
        text,
    )
    # an interpolated peak sits on its mass to a fraction of the resolution, normalised in its window
    assert abs(1e3 * (mu - mass)) < 0.5 * resolution and 5 < resolution < 25
    assert 0.3 < efficiency < 1.0 and integral == pytest.approx(1.0, abs=1e-4)


def check_scan_your_own_data(text: str) -> None:
    mass, z_local, n_sig, error, injected = one(
        "largest excess at {} GeV: Z_local {}, n_sig {} +- {} (injected {} candidates in its window)", text
    )
    z_global, p_global, level, upcrossings = one(
        "global significance: Z_global {}, p_global {}, upcrossings of {} {}", text
    )
    assert mass == pytest.approx(2.5, abs=0.03) and z_local > 3.0
    assert abs(n_sig - injected) < 3 * error
    assert 0 <= z_global < z_local and upcrossings >= 1


def check_limits_with_hepstats(text: str) -> None:
    crossing, limit = one("crossing hepstats {} bumphunt {}", text)
    (deviation,) = one("max |CLs hepstats / bumphunt - 1| {} where CLs > 0.01", text)
    hepstats_seconds, bumphunt_seconds = one("time per mass point hepstats {} s bumphunt {} s", text)
    assert crossing == pytest.approx(limit, rel=0.02)
    assert deviation < 0.02
    assert bumphunt_seconds < hepstats_seconds


def check_punzi_net(text: str) -> None:
    (working_point,) = one("working point {}", text)
    assert 0.0 < working_point < 1.0
    sigma_min = {
        column: one(f"mean {column} training {{}} pb held-out {{}} pb", text)
        for column in ("sigma_min_preselection", "sigma_min_punzi")
    }
    # one cut on the network beats the pre-selection alone, at the training and the held-out masses
    for punzi, preselection in zip(sigma_min["sigma_min_punzi"], sigma_min["sigma_min_preselection"]):
        assert punzi < preselection


def check_limits_to_coupling(text: str) -> None:
    rows = numbers("m {} GeV: g_obs {} g_exp {} published {} expected/published {} status ok", text)
    assert len(rows) == 3
    for _, g_obs, g_exp, published, ratio in rows:
        assert 1e-4 < g_obs < 1e-1 and 1e-4 < g_exp < 1e-1
        assert ratio == pytest.approx(g_exp / published, rel=0.01) and 0.1 < ratio < 10
    mass, g_by_hand, g_stage = one("by hand at {} GeV: g {} GeV^-1 (run_exclusion {})", text)
    assert g_by_hand == pytest.approx(g_stage, rel=1e-5)
    signal, events_limit, _ = one("N(g_obs) {} N_UL {} at {} GeV", text)
    assert signal == pytest.approx(events_limit, rel=1e-5)
    efficiencies = {
        row[0]: row[2:] for row in numbers("efficiency at {} GeV: generated c tau {} cm {}, c tau 3 cm {}", text)
    }
    assert len(efficiencies) == 4 and all(0.2 < generated < 1.0 for generated, _ in efficiencies.values())
    # an ALP of 0.5 GeV with c tau = 3 cm flies ~30 cm before it decays: the kinematic fit fails many
    generated, displaced = efficiencies[0.5]
    assert displaced < 0.8 * generated


CHECKS = {
    "01_fit_one_hypothesis.ipynb": check_fit_one_hypothesis,
    "02_signal_shape_interpolation.ipynb": check_signal_shape_interpolation,
    "03_scan_your_own_data.ipynb": check_scan_your_own_data,
    "04_limits_with_hepstats.ipynb": check_limits_with_hepstats,
    "05_punzi_net.ipynb": check_punzi_net,
    "06_limits_to_coupling.ipynb": check_limits_to_coupling,
}


def test_every_numbered_notebook_is_tested():
    assert sorted(path.name for path in EXAMPLES.glob("0*.ipynb")) == sorted(NOTEBOOKS) == sorted(CHECKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs(name):
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    assert notebook.nbformat == 4
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs not stripped"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    if name == "04_limits_with_hepstats.ipynb":
        pytest.importorskip("hepstats", reason="hepstats is optional: pip install 'bumphunt[hepstats]'")
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    # the notebook's temporary analysis folder lands below tmp_path, which pytest cleans up
    client.execute(env={**os.environ, "TMPDIR": str(tmp_path)})
    assert notebook.cells[0].cell_type == "markdown"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert any("image/png" in output.get("data", {}) for output in code_cells[-1].outputs), f"{name}: no figure last"
    printed = "".join(
        output.get("text", "") for cell in code_cells for output in cell.outputs if output.output_type == "stream"
    )
    CHECKS[name](printed)
