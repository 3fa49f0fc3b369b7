"""Helpers shared by the tests: small analysis configurations that simulate in a second or two."""

from __future__ import annotations

import logging
from contextlib import contextmanager

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
