"""bumphunt: a dark-sector bump hunt from three-photon events to a coupling exclusion.

The stages, each a function of an analysis configuration (:func:`load_config`) that reads
the files of the stage before it and writes its own (:class:`OutputLayout` names them):

    run_simulation -> run_kinfit -> run_select -> run_shapes -> run_scan -> run_exclusion
                                           -> run_count (events in signal windows, no fits)

and the pieces a user calls on data of their own: :func:`fit_photons` (kinematic fit),
:func:`load_shapes` (the signal model), :func:`scan_spectrum` (a scan of an array, a ROOT
ntuple or TTree or a ``hist.Hist``), :func:`read_ntuple`, :func:`read_table` (every table
a stage writes: the scan's, the count's, the exclusion's). Naming rule: ``run_<stage>``
runs a stage of an analysis; other functions are verbs on what they are given.

Attributes are imported on first use (PEP 562), so ``import bumphunt`` and ``bumphunt
--help`` stay fast.
"""

from __future__ import annotations

import importlib

from ._version import __version__

#: Public name -> the module that defines it.
_EXPORTS = {
    "BumphuntError": "errors",
    "ConfigError": "errors",
    "NtupleError": "errors",
    "load_config": "config",
    "OutputLayout": "layout",
    "read_ntuple": "ntuple",
    "iterate_ntuple": "ntuple",
    "run_simulation": "simulation",
    "run_kinfit": "kinfit",
    "fit_photons": "kinfit",
    "run_select": "select",
    "run_shapes": "shapes",
    "ShapeModel": "models",
    "SignalShape": "models",
    "run_scan": "scan",
    "scan_spectrum": "scan",
    "ScanResult": "results",
    "ExclusionResult": "results",
    "read_table": "results",
    "read_scan_table": "results",
    "run_count": "count",
    "run_exclusion": "exclusion",
}
_RENAMED = {"read_scan_table": "read_table"}

__all__ = ["__version__", "load_shapes", *sorted(_EXPORTS)]


def load_shapes(path):
    """The signal model written by the shape stage (``signal_shapes.json``)."""
    from .models import ShapeModel

    return ShapeModel.load(path)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, _RENAMED.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bumphunt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
