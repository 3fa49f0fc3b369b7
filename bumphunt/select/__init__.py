"""The selection stage: the Punzi-net, one cut on a network output for every ALP mass.

Modules: :mod:`~bumphunt.select.fom` (the Punzi figure of merit for hard cuts, vectorised over
cuts and mass windows; numpy only), :mod:`~bumphunt.select.loss` (its differentiable version
in TensorFlow), :mod:`~bumphunt.select.features` (the network's inputs from the fitted
photons), :mod:`~bumphunt.select.network` (the Punzi-net: training, saving, scoring) and
:mod:`~bumphunt.select.stage` (:func:`run_select`). The stage and the network load
TensorFlow, so they are imported on first use.
"""

from __future__ import annotations

import importlib

_LAZY = {"run_select": "stage", "SelectSummary": "stage", "PunziNet": "network", "NetworkSettings": "network"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bumphunt.select' has no attribute {name!r}")
