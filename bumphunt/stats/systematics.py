"""Systematic uncertainties as constrained nuisance parameters of the hypothesis likelihood.

A :class:`Systematics` is the list of sources of the configuration's ``systematics`` section;
:func:`nuisances_at` turns it into the :class:`~bumphunt.stats.likelihood.Nuisances` of one
mass hypothesis:

* ``normalisation`` (luminosity, efficiency, trigger, selection): the signal yield scales by
  (1 + size)^theta (``constraint: lognormal``, the default) or 1 + size theta (``gaussian``);
* ``peak_position``: the peak's mean scales by 1 +- size at theta = +-1 (photon energy scale);
* ``peak_width``: the peak's widths (both DSCB sides and the Gaussian) scale by 1 +- size
  (resolution);
* ``shape_interpolation``: two sources, position and width, of the sizes the signal-shape
  interpolation's covariance gives at the mass (stored by the shape stage), times ``size``.

A size is a number (relative) or a table of ``[mass, size]`` rows, interpolated linearly in
mass and constant beyond its ends. Sources of size zero add no parameter, so that a
configuration whose sizes are all zero gives the statistics-only likelihood exactly.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..errors import ConfigError
from ..systematics import Source, Systematics
from .likelihood import GAUSSIAN, LOGNORMAL, NO_NUISANCES, Nuisances

__all__ = ["Source", "Systematics", "model_nuisances", "nuisances_at", "scaled_peak"]

CONSTRAINT_KINDS = {"lognormal": LOGNORMAL, "gaussian": GAUSSIAN}


def scaled_peak(shape, *, position: float = 0.0, width: float = 0.0):
    """``shape`` with its peak's mean scaled by 1 + ``position`` and its widths by 1 + ``width``
    (the window and the wrong pairings unchanged)."""
    scale = 1.0 + width
    gauss_sigma = shape.gauss_sigma * scale if math.isfinite(shape.gauss_sigma) else shape.gauss_sigma
    return replace(shape, mu=shape.mu * (1.0 + position), sigma_l=shape.sigma_l * scale,
                   sigma_r=shape.sigma_r * scale, gauss_sigma=gauss_sigma)  # fmt: skip


def nuisances_at(systematics: Systematics, shape, mass: float, interpolation_errors=None) -> Nuisances:
    """The nuisance parameters of ``systematics`` at one mass hypothesis whose signal shape
    (in its window) is ``shape``.

    ``interpolation_errors(mass) -> (relative error of the peak position, of the width)``
    is needed by a ``shape_interpolation`` source (:meth:`bumphunt.models.ShapeModel.interpolation_errors`).
    """
    names, kinds, sizes = [], [], []
    shape_names, shape_templates = [], []
    for source in systematics.sources:
        size = source.size_at(mass)
        if size <= 0.0:
            continue
        if source.kind == "normalisation":
            names.append(source.name)
            kinds.append(CONSTRAINT_KINDS[source.constraint])
            sizes.append(size)
            continue
        if source.kind == "shape_interpolation":
            if interpolation_errors is None:
                raise ConfigError(
                    f"config error at 'systematics.sources' ({source.name!r}): the signal-shape file has no "
                    "interpolation errors (made before they were stored): rerun `bumphunt shapes`"
                )
            position, width = interpolation_errors(mass)
            pieces = [(f"{source.name}_position", {"position": size * position}),
                      (f"{source.name}_width", {"width": size * width})]  # fmt: skip
        elif source.kind == "peak_position":
            pieces = [(source.name, {"position": size})]
        else:
            pieces = [(source.name, {"width": size})]
        for name, change in pieces:
            ((key, value),) = change.items()
            if value <= 0.0:
                continue
            shape_names.append(name)
            shape_templates.append((scaled_peak(shape, **{key: -value}), scaled_peak(shape, **{key: value})))
    if not names and not shape_names:
        return NO_NUISANCES
    return Nuisances(tuple(names + shape_names), np.array(kinds, dtype=np.int64), np.array(sizes),
                     tuple(shape_templates))  # fmt: skip


def model_nuisances(model, shape, mass: float, systematics) -> Nuisances:
    """:func:`nuisances_at` for a signal model (:class:`bumphunt.models.ShapeModel`, whose
    interpolation errors the ``shape_interpolation`` sources use); ``systematics`` a
    :class:`Systematics`, the ``systematics.sources`` list of a configuration, or None."""
    if not isinstance(systematics, Systematics):
        systematics = Systematics.from_config({"sources": systematics or []})
    if not systematics:
        return NO_NUISANCES
    errors = model.interpolation_errors if model.interpolation_table else None
    return nuisances_at(systematics, shape, mass, errors)
