"""Shared fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import logging

import pytest

from bumphunt.config import load_config
from bumphunt.kinfit import run_kinfit
from bumphunt.select import run_select
from bumphunt.shapes import run_shapes
from bumphunt.simulation import run_simulation

from .helpers import collect_logs, small_config


@pytest.fixture
def config(tmp_path):
    return small_config(tmp_path)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """One ``bumphunt run --quick`` (about 30 s), shared by the tests of the chain (tests that
    change it work on a copy): the folder and what the command printed."""
    from click.testing import CliRunner

    from bumphunt import cli

    folder = tmp_path_factory.mktemp("quick") / "run"
    result = CliRunner().invoke(cli.main, ["run", "--quick", "-q", "--set", f"output_dir={folder}"])
    assert result.exit_code == 0, result.output
    return folder, result.output


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """One small simulation of every sample, shared by the read-only tests."""
    tmp_path = tmp_path_factory.mktemp("simulated")
    cfg = small_config(tmp_path)
    summaries = run_simulation(cfg, progress=False)
    return cfg, {summary.sample: summary for summary in summaries}


@pytest.fixture(scope="session")
def default_analysis(tmp_path_factory):
    """The default analysis simulated and kinematically fitted once (every sample at its default
    size; about a minute on 2 cores), for the slow tests of the shapes and the selection."""
    tmp_path = tmp_path_factory.mktemp("default")
    config = load_config(None, {"output_dir": str(tmp_path / "out"), "simulation.workers": 2})
    run_simulation(config, progress=False)
    run_kinfit(config, progress=False)
    return config


@pytest.fixture(scope="session")
def default_selected(default_analysis):
    """The Punzi-net trained with the default settings on the default analysis (a few minutes)."""
    return default_analysis, run_select(default_analysis, progress=False)


@pytest.fixture(scope="session")
def default_shapes(default_selected):
    """The signal shapes of the default analysis on the Punzi-net-selected events (the default
    ``shapes.selection``), with the warnings they logged."""
    config, _ = default_selected
    with collect_logs("bumphunt") as records:
        summary = run_shapes(config, progress=False)
    return config, summary, [r.getMessage() for r in records if r.levelno >= logging.WARNING]
