"""The scan stage: signal + background fits at every mass hypothesis, limits, significance.

:mod:`~bumphunt.scan.grid` (mass hypotheses and vetoes), :mod:`~bumphunt.scan.data` (what is
fitted: ntuples, pseudo-data, arrays, histograms), :mod:`~bumphunt.scan.runner` (fan-out
and resume), :mod:`bumphunt.results` (:class:`ScanResult` and its tables, shared with the counting experiment),
:mod:`~bumphunt.scan.stage` (:func:`run_scan` for an analysis, :func:`scan_spectrum` for a
spectrum of one's own). The statistics are :mod:`bumphunt.stats`.
"""

from ..results import COLUMNS, ScanResult, read_table, table_csv, write_table
from .data import (
    BackgroundModel,
    SmoothBackground,
    Spectrum,
    candidates_histogram,
    histogram_edges,
    pseudo_data,
    smooth_background,
    spectrum_from,
)
from .grid import VETOES, scan_grid
from .runner import window_shape
from .stage import ScanSummary, run_scan, scan_spectrum

__all__ = [
    "BackgroundModel",
    "COLUMNS",
    "VETOES",
    "ScanResult",
    "ScanSummary",
    "SmoothBackground",
    "Spectrum",
    "candidates_histogram",
    "histogram_edges",
    "pseudo_data",
    "read_table",
    "run_scan",
    "scan_grid",
    "scan_spectrum",
    "smooth_background",
    "spectrum_from",
    "table_csv",
    "window_shape",
    "write_table",
]
