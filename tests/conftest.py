"""Shared fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest

from bumphunt.simulation import run_simulation

from .helpers import small_config


@pytest.fixture
def config(tmp_path):
    return small_config(tmp_path)


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """One small simulation of every sample, shared by the read-only tests."""
    tmp_path = tmp_path_factory.mktemp("simulated")
    cfg = small_config(tmp_path)
    summaries = run_simulation(cfg, progress=False)
    return cfg, {summary.sample: summary for summary in summaries}
