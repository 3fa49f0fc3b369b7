"""Helpers shared by the tests: small analysis configurations that simulate in a second or two."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from bumphunt.config import load_config

#: The default cut before the Punzi-net (select.preselection).
PRESELECTION = load_config()["select"]["preselection"]


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
