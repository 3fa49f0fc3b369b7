"""Helpers shared by the tests: small analysis configurations that simulate in a second or two."""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager

import numpy as np

from bumphunt.config import load_config

#: The default cut before the Punzi-net (select.preselection).
PRESELECTION = load_config()["select"]["preselection"]


def small_config(tmp_path, **overrides):
    """The default configuration scaled down, writing below ``tmp_path``; the shapes and the scan
    cut on the pre-selection, since these tests run no selection stage."""
    settings = {
        "output_dir": str(tmp_path / "out"),
        "shapes.selection": load_config()["select"]["preselection"],
        "simulation.chunk_size": 5000,
        "simulation.workers": 1,
        "simulation.signal.masses": {"start": 0.5, "stop": 6.5, "step": 3.0},
        "simulation.signal.events_per_mass": 4000,
        "simulation.backgrounds.ggg.events": 12000,
        "simulation.backgrounds.pi0_gamma.events": 3000,
        "simulation.backgrounds.eta_gamma.events": 3000,
        "simulation.backgrounds.etaprime_gamma.events": 3000,
        "simulation.backgrounds.gg.events": 20000,
        "simulation.backgrounds.eeg.events": 3000,
        "simulation.backgrounds.pi0_gamma_gamma.events": 2000,
        "simulation.backgrounds.eta_gamma_gamma.events": 2000,
        "simulation.backgrounds.etaprime_gamma_gamma.events": 2000,
    }
    settings.update(overrides)
    return load_config(None, settings)


@contextmanager
def collect_logs(name: str = "bumphunt", level: int = logging.INFO):
    """The log records of logger ``name`` emitted inside the block (for fixtures wider than
    a test, where pytest's ``caplog`` is not available)."""
    records: list[logging.LogRecord] = []

    class _Collector(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger(name)
    handler, previous = _Collector(level), logger.level
    logger.addHandler(handler)
    logger.setLevel(min(previous or level, level))
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def synthetic_shape_model(*, sqrt_s: float = 10.58, edge_width: float = 0.05):
    """A signal model whose every parameter changes with mass (0.3-9.5 GeV), with the second
    Gaussian and wrong pairings that meet their endpoint near 7.45 GeV: the interpolation the
    shape stage writes, without simulating (milliseconds)."""
    import math

    import numpy as np

    from bumphunt.models import MassFit, ParameterSpline, ShapeModel
    from bumphunt.models.splines import basis_matrix, forward, knot_vector

    low, high = 0.3, 9.5
    knots = knot_vector(low, high, 10, sqrt_s)
    masses = np.linspace(low, high, 60)
    design = basis_matrix(knots, masses)
    curves = {
        "mu_offset": ("none", -0.002 * masses),
        "sigma": ("log", 0.004 + 0.003 * masses),
        "alpha_l": ("log", 1.2 + 0.05 * masses),
        "alpha_r": ("log", 1.8 - 0.05 * masses),
        "gauss_fraction": ("logit", 0.2 + 0.02 * masses),
        "gauss_ratio": ("log_minus_one", 2.0 + 0.1 * masses),
        "combinatorial_density": ("none", 2.0 + 0.1 * masses),
        "c1": ("none", 0.3 - 0.05 * masses),
        "efficiency": ("none", 0.3 + 0.01 * masses),
    }
    splines = {}
    for name, (transform, values) in curves.items():
        coefficients = np.linalg.lstsq(design, forward(transform, values), rcond=None)[0]
        splines[name] = ParameterSpline(tuple(knots), tuple(coefficients), 3, (low, high), transform)
    settings = {"mass_variable": "m_gg_fit", "selection": "fit_status == 0", "peak": "doublecb", "n_l": 10.0,
                "n_r": 10.0, "second_gaussian": True, "window_sigmas": 20.0, "sqrt_s": sqrt_s, "edge_shift": 0.0,
                "edge_width": edge_width}  # fmt: skip
    fits = [MassFit(1.0, "ok", 100, 90, 80, 0.8, 1.2, {"efficiency": 0.31}, {"efficiency": 0.01}, edge=math.inf)]
    return ShapeModel(splines, settings, fits, [])


def assert_scan_rows_agree(new: dict, old: dict, columns) -> None:
    """``new`` is the scan row ``old`` computed again, possibly on another machine.

    What is exact must be equal: the status, and the event count where the mass is equal. The
    grid steps by the fitted resolution and rounds to 1e-7 GeV, so a resolution that differs
    by 1e-7 relative moves the 100th point by a rounding unit or two: masses agree to 1e-6 GeV
    (1e-4 of a step), and a window moved that way may gain or lose one event at an edge (it
    holds ~10^4 events per GeV). What is fitted agrees only to the
    fits' convergence, not bit for bit (other BLAS kernels and SIMD paths take MIGRAD another
    way to the same minimum): each fit stops within ``convergence_sigmas()`` of it, so two
    fits differ by at most twice that, and a limit by that plus its root finding's
    ``LIMIT_TOLERANCE``, all in units of the yield's error ``n_sig_err`` (0.0091 sigma).
    ``z_local`` is the yield over its error, so moves by the same fraction, and ``q0 = z^2``
    and ``p0_local = Phi(-z)`` follow from it.
    """
    from scipy import stats

    from bumphunt.stats.asymptotic import LIMIT_TOLERANCE
    from bumphunt.stats.likelihood import convergence_sigmas

    assert new["fit_status"] == old["fit_status"], "fit_status"
    assert abs(new["mass"] - old["mass"]) <= 1e-6, "mass"
    assert abs(new["n_events"] - old["n_events"]) <= (0 if new["mass"] == old["mass"] else 1), "n_events"
    sigmas = 2 * convergence_sigmas() + 2 * LIMIT_TOLERANCE
    z = abs(old["z_local"]) if math.isfinite(old["z_local"]) else 0.0
    in_events = sigmas * old["n_sig_err"] if math.isfinite(old["n_sig_err"]) else 0.0
    tolerances = {
        "n_sig": in_events,
        "n_sig_err": in_events,
        "z_local": sigmas,
        "q0": 2 * z * sigmas + sigmas**2,
        "p0_local": stats.norm.pdf(max(z - sigmas, 0.0)) * sigmas,
    }
    for column in columns:
        if column in tolerances:
            tolerance = tolerances[column]
        elif column.startswith("ul_"):
            tolerance = in_events
        else:
            continue
        np.testing.assert_allclose(new[column], old[column], rtol=0, atol=tolerance, err_msg=column)
