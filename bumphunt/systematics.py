"""The systematic sources of an analysis: the configuration's ``systematics`` section as
:class:`Systematics` (light: the configuration checks it; the likelihood's nuisance parameters
are made from it by :mod:`bumphunt.stats.systematics`).

Types: ``normalisation`` (the signal yield scales by (1 + size)^theta, ``constraint:
lognormal``, the default, or 1 + size theta, ``gaussian``), ``peak_position`` (the peak's mean
by 1 +- size at theta = +-1), ``peak_width`` (its widths by 1 +- size) and
``shape_interpolation`` (position and width by the interpolation's own errors times size). A
size is a number (relative) or a table of ``[mass, size]`` rows, interpolated linearly in mass
and constant beyond its ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from .errors import ConfigError

SOURCE_TYPES = ("normalisation", "peak_position", "peak_width", "shape_interpolation")
CONSTRAINTS = ("lognormal", "gaussian")


@dataclass(frozen=True)
class Source:
    """One systematic source: its name, type, relative size (a number or ``((mass, size), ...)``)
    and, for a normalisation, its constraint."""

    name: str
    kind: str
    size: float | tuple[tuple[float, float], ...]
    constraint: str = "lognormal"

    def __post_init__(self):
        where = f"config error at 'systematics.sources' ({self.name!r})"
        if self.kind not in SOURCE_TYPES:
            raise ConfigError(f"{where}: type must be one of {', '.join(SOURCE_TYPES)}, not {self.kind!r}")
        if self.constraint not in CONSTRAINTS:
            raise ConfigError(f"{where}: constraint must be lognormal or gaussian, not {self.constraint!r}")
        if isinstance(self.size, (int, float)):
            sizes = [float(self.size)]
        else:
            table = tuple((float(m), float(s)) for m, s in self.size)
            if not table or any(b[0] <= a[0] for a, b in zip(table, table[1:])):
                raise ConfigError(f"{where}: a size table needs [mass, size] rows in increasing mass")
            object.__setattr__(self, "size", table)
            sizes = [s for _, s in table]
        if not all(math.isfinite(s) and s >= 0.0 for s in sizes):
            raise ConfigError(f"{where}: sizes must be finite and >= 0")
        if self.kind == "normalisation" and self.constraint == "gaussian" and max(sizes) >= 1.0:
            raise ConfigError(f"{where}: a Gaussian normalisation needs a size below 1 (the yield turns negative)")

    def size_at(self, mass: float) -> float:
        if isinstance(self.size, float | int):
            return float(self.size)
        masses, sizes = zip(*self.size)
        return float(np.interp(mass, masses, sizes))


@dataclass(frozen=True)
class Systematics:
    """The systematic sources of an analysis (empty: statistics only)."""

    sources: tuple[Source, ...] = ()

    @classmethod
    def from_config(cls, section: Mapping | None) -> Systematics:
        """From the configuration's ``systematics`` section (or None: none)."""
        if not section:
            return cls()
        sources = []
        for entry in section.get("sources") or ():
            sources.append(Source(entry["name"], entry["type"], entry["size"], entry.get("constraint", "lognormal")))
        names = [s.name for s in sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError(f"config error at 'systematics.sources': source names repeat ({', '.join(duplicated)})")
        return cls(tuple(sources))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sources)

    def __bool__(self) -> bool:
        return bool(self.sources)

    def normalisation_size(self, mass: float) -> float:
        """The normalisation sources' relative sizes at ``mass`` in quadrature (the single
        efficiency scale of the counting experiment)."""
        return math.sqrt(sum(s.size_at(mass) ** 2 for s in self.sources if s.kind == "normalisation"))

    def without(self, names: Iterable[str]) -> Systematics:
        """These sources left out (for the impact of each)."""
        removed = set(names)
        return Systematics(tuple(s for s in self.sources if s.name not in removed))

    def scaled(self, factor: float) -> Systematics:
        """Every size multiplied by ``factor`` (0: the statistics-only likelihood)."""

        def times(size):
            return factor * size if isinstance(size, float | int) else tuple((m, factor * s) for m, s in size)

        return Systematics(tuple(replace(s, size=times(s.size)) for s in self.sources))
