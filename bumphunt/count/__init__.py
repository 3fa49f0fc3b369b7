"""The counting experiment: events in a signal window at every generated ALP mass, limits from
a single-bin on/off likelihood with toys or asymptotic formulas.

:mod:`~bumphunt.count.windows` (signal windows, efficiencies, the background and the data in
them, bootstrapped pseudo-data), :mod:`~bumphunt.count.stage` (:func:`run_count`). The
statistics are :mod:`bumphunt.stats.counting`; the results table is the scan's
(:class:`bumphunt.results.ScanResult`).
"""

from .stage import CountSummary, Window, counting_model, run_count
from .windows import Events, SignalMass, background_events, bootstrap_counts, signal_masses, signal_window

__all__ = [
    "CountSummary",
    "Events",
    "SignalMass",
    "Window",
    "background_events",
    "bootstrap_counts",
    "counting_model",
    "run_count",
    "signal_masses",
    "signal_window",
]
