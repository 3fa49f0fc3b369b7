"""Shared fixtures: small analysis configurations that simulate in a second or two."""

from __future__ import annotations

import pytest

from bumphunt.config import load_config


def small_config(tmp_path, **overrides):
    """The default configuration scaled down, writing below ``tmp_path``."""
    settings = {
        "output_dir": str(tmp_path / "out"),
        "simulation.chunk_size": 5000,
        "simulation.workers": 1,
        "simulation.signal.masses": {"start": 0.5, "stop": 6.5, "step": 3.0},
        "simulation.signal.events_per_mass": 4000,
        "simulation.backgrounds.ggg.events": 12000,
        "simulation.backgrounds.pi0_gamma.events": 3000,
        "simulation.backgrounds.eta_gamma.events": 3000,
        "simulation.backgrounds.etaprime_gamma.events": 3000,
    }
    settings.update(overrides)
    return load_config(None, settings)


@pytest.fixture
def config(tmp_path):
    return small_config(tmp_path)


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """One small simulation of every sample, shared by the read-only tests."""
    from bumphunt.simulate import simulate

    tmp_path = tmp_path_factory.mktemp("simulated")
    cfg = small_config(tmp_path)
    summaries = simulate(cfg, progress=False)
    return cfg, {summary.sample: summary for summary in summaries}
