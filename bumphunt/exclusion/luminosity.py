"""How the expected g_agg limit improves with the integrated luminosity.

:func:`luminosity_table` takes the exclusion results of one analysis converted at several
luminosities (0.445, 36, 100, 362, 1000 fb^-1, say) and gives the median expected limit at
chosen masses (:data:`LUMINOSITY_MASSES`), interpolated between the scanned masses, as a
:class:`LuminosityStudy`: a table (:meth:`LuminosityStudy.write`, CSV and JSON) and a figure
(:func:`bumphunt.exclusion.plots.plot_luminosity_study`). With a background that grows with
L, a limit on the signal events grows as sqrt(L), the cross-section limit falls as L^(-1/2)
and g_agg, with sigma proportional to g^2, as L^(-1/4): the reference the table and the figure
compare with.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, strict_json
from ..errors import BumphuntError
from ..results import ExclusionResult, read_table, rows_csv

#: The default masses of the study (GeV): those of the report's exclusion table.
LUMINOSITY_MASSES = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 9.5)
#: pb^-1 per fb^-1: the exclusion's settings hold pb^-1, the study fb^-1.
PB_INV_PER_FB_INV = 1000.0
#: The exponent of the reference scaling g_exp proportional to L^(-1/4).
REFERENCE_EXPONENT = -0.25
#: The columns of the study's table, one row per mass and luminosity.
LUMINOSITY_COLUMNS = ("mass", "luminosity_fb_inv", "g_exp", "ratio_to_first", "ratio_l_quarter", "status")
#: The ``"table"`` key of its JSON file.
LUMINOSITY_TABLE = "luminosity_study"


@dataclass(frozen=True, eq=False)
class LuminosityStudy:
    """The median expected g_agg limit at chosen masses, per luminosity.

    Attributes
    ----------
    luminosities : array
        Integrated luminosities (fb^-1), increasing.
    masses : array
        The masses asked for (GeV), in the order given.
    expected : array, shape (luminosities, masses)
        Median expected limit on g_agg (GeV^-1), interpolated between the scanned masses
        (linear in log g versus log m); NaN where there is none.
    status : array of str, same shape
        "ok", or why the limit is NaN (a vetoed region, outside the scanned masses, a failed
        or unreached scan point next to the mass).
    """

    luminosities: np.ndarray
    masses: np.ndarray
    expected: np.ndarray
    status: np.ndarray

    def ratio_to_first(self) -> np.ndarray:
        """g_exp / g_exp at the lowest luminosity with a limit at that mass, shaped as ``expected``."""
        first = np.full(len(self.masses), np.nan)
        for k in range(len(self.masses)):
            finite = np.flatnonzero(np.isfinite(self.expected[:, k]))
            if len(finite):
                first[k] = self.expected[finite[0], k]
        return self.expected / first

    def reference_ratio(self) -> np.ndarray:
        """(L / L_first)^(-1/4), L_first the lowest luminosity with a limit at that mass; NaN without one."""
        ratio = np.full(self.expected.shape, np.nan)
        for k in range(len(self.masses)):
            finite = np.flatnonzero(np.isfinite(self.expected[:, k]))
            if len(finite):
                ratio[:, k] = (self.luminosities / self.luminosities[finite[0]]) ** REFERENCE_EXPONENT
        return ratio

    def rows(self) -> list[dict]:
        """One dict per mass and luminosity (:data:`LUMINOSITY_COLUMNS`), by mass then luminosity."""
        ratio, reference = self.ratio_to_first(), self.reference_ratio()
        return [
            {"mass": float(mass), "luminosity_fb_inv": float(luminosity), "g_exp": float(self.expected[i, k]),
             "ratio_to_first": float(ratio[i, k]), "ratio_l_quarter": float(reference[i, k]),
             "status": str(self.status[i, k])}
            for k, mass in enumerate(self.masses) for i, luminosity in enumerate(self.luminosities)
        ]  # fmt: skip

    def to_dict(self) -> dict:
        """The JSON document of :meth:`write` (non-finite numbers as None)."""
        return strict_json({"table": LUMINOSITY_TABLE, "columns": list(LUMINOSITY_COLUMNS),
                            "masses_gev": self.masses.tolist(), "luminosities_fb_inv": self.luminosities.tolist(),
                            "rows": self.rows()})  # fmt: skip

    def write(self, folder: str | Path, *, stem: str = LUMINOSITY_TABLE) -> tuple[Path, Path]:
        """Write ``<stem>.csv`` and ``<stem>.json`` into ``folder``, atomically."""
        folder = Path(folder)
        csv_path = atomic_write_text(folder / f"{stem}.csv", rows_csv(self.rows(), LUMINOSITY_COLUMNS))
        json_path = atomic_write_text(folder / f"{stem}.json",
                                      json.dumps(self.to_dict(), indent=1, allow_nan=False))  # fmt: skip
        return csv_path, json_path


def luminosity_table(results_by_luminosity, masses: Iterable[float] = LUMINOSITY_MASSES) -> LuminosityStudy:
    """The median expected g_agg limit at ``masses`` for each luminosity.

    Parameters
    ----------
    results_by_luminosity : mapping or iterable
        ``{luminosity in fb^-1: result}``, or results alone, whose luminosity is the one their
        settings say (``luminosity_pb_inv``, which a mapping's key must equal). A result is an
        :class:`~bumphunt.results.ExclusionResult`, an
        :class:`~bumphunt.exclusion.ExclusionSummary` or the path of an ``exclusion.json``.
    masses : iterable of float
        GeV; each is interpolated between the scanned masses around it.

    Returns
    -------
    LuminosityStudy

    Raises
    ------
    BumphuntError
        No results, a result that is none of these, a luminosity that is not positive or that
        disagrees with the result's settings, the same luminosity twice, a mass that is not a
        positive number.
    """
    pairs = _luminosities_and_results(results_by_luminosity)
    masses = list(masses) if isinstance(masses, Iterable) else [masses]
    if not masses or not all(_positive_number(m) for m in masses):
        raise BumphuntError(f"luminosity_table: masses must be positive numbers (GeV), got {masses!r}")
    masses = np.array(masses, dtype=np.float64)
    pairs.sort(key=lambda pair: pair[0])
    expected = np.full((len(pairs), len(masses)), np.nan)
    status = np.full(expected.shape, "", dtype=object)
    for i, (_, result) in enumerate(pairs):
        for k, mass in enumerate(masses):
            expected[i, k], status[i, k] = expected_limit_at(result, float(mass))
    luminosities = np.array([luminosity for luminosity, _ in pairs])
    return LuminosityStudy(luminosities, masses, expected, status.astype(str))


def expected_limit_at(result: ExclusionResult, mass: float, column: str = "g_exp") -> tuple[float, str]:
    """The expected limit ``column`` (GeV^-1) of ``result`` at ``mass`` (GeV), and "ok" or why it is NaN.

    A scanned mass gives its own value; between two scanned masses the value is interpolated
    linearly in log g versus log m. NaN inside a vetoed region, across one, outside the scanned
    masses, or next to a scanned mass without that limit (its status says why).
    """
    masses, values, statuses = result["mass"], result[column], result["status"]
    order = np.argsort(masses, kind="stable")
    masses, values, statuses = masses[order], values[order], statuses[order]
    for name, (low, high) in result.vetoed.items():
        if low <= mass <= high:
            return math.nan, f"in the vetoed {name} region ({low:.4g}-{high:.4g} GeV)"
    if not len(masses) or not masses[0] <= mass <= masses[-1]:
        scanned = f"{masses[0]:.4g}-{masses[-1]:.4g} GeV" if len(masses) else "none"
        return math.nan, f"outside the scanned masses ({scanned})"
    above = int(np.searchsorted(masses, mass, side="left"))
    if math.isclose(masses[above], mass, rel_tol=1e-12):
        neighbours = [above]
    else:
        neighbours = [above - 1, above]
        low_mass, high_mass = masses[above - 1], masses[above]
        for name, (low, high) in result.vetoed.items():
            if low_mass < high and low < high_mass:
                return math.nan, (f"between the scanned masses {low_mass:.4g} and {high_mass:.4g} GeV, across the "
                                  f"vetoed {name} region")  # fmt: skip
    for j in neighbours:
        if not (np.isfinite(values[j]) and values[j] > 0):
            return math.nan, f"no {column} at the scanned mass {masses[j]:.4g} GeV: {statuses[j]}"
    if len(neighbours) == 1:
        return float(values[above]), "ok"
    j, k = neighbours
    t = math.log(mass / masses[j]) / math.log(masses[k] / masses[j])
    return float(math.exp((1 - t) * math.log(values[j]) + t * math.log(values[k]))), "ok"


def _luminosities_and_results(given) -> list[tuple[float, ExclusionResult]]:
    """(luminosity in fb^-1, result) for each result given, checked."""
    if isinstance(given, Mapping):
        pairs = [(_luminosity_key(key), _exclusion_result(value, f"the result for {key!r} fb^-1"))
                 for key, value in given.items()]  # fmt: skip
        for luminosity, result in pairs:
            converted = _converted_luminosity(result)
            if converted is not None and not math.isclose(converted, luminosity, rel_tol=1e-9):
                raise BumphuntError(f"luminosity_table: the result given for {luminosity:g} fb^-1 was converted with "
                                    f"{converted:g} fb^-1 (luminosity_pb_inv in its settings)")  # fmt: skip
    elif isinstance(given, (str, os.PathLike)) or not isinstance(given, Iterable):
        raise BumphuntError(f"luminosity_table: give {{luminosity in fb^-1: result}} or a list of results, not a "
                            f"{type(given).__name__}")  # fmt: skip
    else:
        pairs = []
        for index, value in enumerate(given):
            result = _exclusion_result(value, f"result {index}")
            luminosity = _converted_luminosity(result)
            if luminosity is None:
                raise BumphuntError(f"luminosity_table: result {index} has no luminosity_pb_inv in its settings; give "
                                    "the results as {luminosity in fb^-1: result}")  # fmt: skip
            pairs.append((luminosity, result))
    if not pairs:
        raise BumphuntError("luminosity_table: no results given")
    seen = [luminosity for luminosity, _ in pairs]
    twice = sorted({x for x in seen if sum(math.isclose(x, y, rel_tol=1e-9) for y in seen) > 1})
    if twice:
        raise BumphuntError(f"luminosity_table: two results at {twice[0]:g} fb^-1")
    return pairs


def _luminosity_key(key) -> float:
    if not _positive_number(key):
        raise BumphuntError(f"luminosity_table: the luminosity {key!r} is not a positive number (fb^-1)")
    return float(key)


def _positive_number(value) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (bool, str)) and math.isfinite(number) and number > 0


def _converted_luminosity(result: ExclusionResult) -> float | None:
    """The luminosity (fb^-1) the result's settings say it was converted with, None when they do not."""
    value = result.settings.get("luminosity_pb_inv")
    return float(value) / PB_INV_PER_FB_INV if _positive_number(value) else None


def _exclusion_result(value, what: str) -> ExclusionResult:
    """An ExclusionResult from a result, a summary (its ``result``) or the path of an exclusion.json."""
    if isinstance(value, (str, os.PathLike)):
        table = read_table(value)  # a BumphuntError naming the file when it is no table
        if not isinstance(table, ExclusionResult):
            raise BumphuntError(f"{value}: a {table.kind} table, not the exclusion.json luminosity_table reads")
        return table
    value = getattr(value, "result", value)  # an ExclusionSummary
    if not isinstance(value, ExclusionResult):
        raise BumphuntError(f"luminosity_table: {what} is a {type(value).__name__}, not an exclusion result "
                            "(ExclusionResult, ExclusionSummary or the path of an exclusion.json)")  # fmt: skip
    return value
