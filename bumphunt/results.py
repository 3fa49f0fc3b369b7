"""Limits mass by mass as numpy columns, and their CSV and JSON tables: the result of the
scan and of the counting experiment.

Computing and writing are apart: :func:`~bumphunt.scan.stage.run_scan`,
:func:`~bumphunt.scan.stage.scan_spectrum` and :func:`~bumphunt.count.stage.run_count`
return a :class:`ScanResult`; :func:`write_table` writes it; :mod:`bumphunt.plotting` draws
it. ``bumphunt.scan.results`` re-exports this module, its former place.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_write_text, strict_json
from .layout import OutputLayout
from .stats.lookelsewhere import GlobalSignificance

#: The columns of the results table, in order (DESIGN: upper limits in signal events,
#: cross-sections in pb, couplings in GeV^-1).
COLUMNS = (
    "mass", "n_sig", "n_sig_err", "p0_local", "z_local", "ul_obs", "ul_exp_m2", "ul_exp_m1", "ul_exp",
    "ul_exp_p1", "ul_exp_p2", "efficiency", "xsec_ul_pb", "g_ul_gev", "fit_status", "n_events", "q0",
    "background_order",
)  # fmt: skip
#: Every column is float64 but ``fit_status`` ("ok", or why the point has no numbers).
STRING_COLUMNS = ("fit_status",)


@dataclass(frozen=True)
class ScanResult:
    """One row per mass hypothesis, as numpy columns (a scan's or a counting experiment's).

    Attributes
    ----------
    columns : dict of str -> array
        :data:`COLUMNS`; float64 arrays but ``fit_status`` (str).
    global_significance : GlobalSignificance
        The largest local excess and its global significance.
    vetoed : dict of str -> (low, high)
        The mass ranges left out around the pi0, eta and eta' (GeV).
    settings : dict
        The settings the result was computed with (the ``scan`` or ``count`` section).
    fingerprint : str
        Hash of the inputs (settings, signal model, data, code).
    resumed_points : int
        Mass points taken from an interrupted scan with the same fingerprint.
    dropped_candidates : int
        Candidates of the data left out for a NaN or infinite mass.
    """

    columns: dict[str, np.ndarray]
    global_significance: GlobalSignificance
    vetoed: dict[str, tuple[float, float]]
    settings: dict = field(default_factory=dict)
    fingerprint: str = ""
    resumed_points: int = 0
    dropped_candidates: int = 0

    @classmethod
    def from_rows(cls, rows: list[dict], **fields) -> ScanResult:
        """Collect per-point rows (dicts with the :data:`COLUMNS`) into columns."""
        columns = {}
        for name in COLUMNS:
            values = [row.get(name, np.nan if name not in STRING_COLUMNS else "") for row in rows]
            dtype = str if name in STRING_COLUMNS else np.float64
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=dtype)
        return cls(columns, **fields)

    def __len__(self) -> int:
        return len(self.columns["mass"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def masses(self) -> np.ndarray:
        return self.columns["mass"]

    @property
    def ok(self) -> np.ndarray:
        """Mask of the mass points with a valid fit and limits."""
        return self.columns["fit_status"] == "ok"

    def rows(self) -> list[dict]:
        """One dict per mass point, python scalars."""
        names = list(self.columns)
        return [dict(zip(names, (c[i].item() for c in self.columns.values()))) for i in range(len(self))]

    def row(self, mass: float) -> dict:
        """The row of the mass hypothesis nearest ``mass``."""
        index = int(np.argmin(np.abs(self.masses - mass)))
        return {name: column[index].item() for name, column in self.columns.items()}

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (pandas is optional: imported here)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("ScanResult.to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame({name: self.columns[name] for name in COLUMNS})

    def to_dict(self) -> dict:
        """The JSON document of :func:`write_table` (non-finite numbers as None)."""
        return strict_json(
            {
                "columns": list(COLUMNS),
                "rows": [{name: row[name] for name in COLUMNS} for row in self.rows()],
                "global_significance": self.global_significance.to_dict(),
                "vetoed": {name: list(edges) for name, edges in self.vetoed.items()},
                "settings": self.settings,
                "fingerprint": self.fingerprint,
                "dropped_candidates": self.dropped_candidates,
            }
        )


def table_csv(result: ScanResult) -> str:
    """The results table as CSV text: floats to 8 significant digits, NaN as ``nan``."""
    return rows_csv(result.rows(), COLUMNS)


def rows_csv(rows, columns) -> str:
    """Rows (dicts) as CSV text with the header ``columns``: floats to 8 significant digits,
    NaN as ``nan``, other keys left out."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def write_table(result: ScanResult, directory: str | Path) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.json`` (strict JSON) into ``directory``, atomically.

    The file names are those :class:`~bumphunt.layout.OutputLayout` gives a scan folder.
    """
    files = OutputLayout(Path(directory).parent, {"scan": Path(directory)})
    csv_path = atomic_write_text(files.scan_table_csv, table_csv(result))
    json_path = atomic_write_text(files.scan_table_json, json.dumps(result.to_dict(), indent=1, allow_nan=False))
    return csv_path, json_path


def read_table(path: str | Path) -> ScanResult:
    """A :class:`ScanResult` from the ``results.json`` :func:`write_table` wrote."""
    document = json.loads(Path(path).read_text())
    significance = dict(document["global_significance"])
    significance["upcrossings_per_toy"] = tuple(significance.get("upcrossings_per_toy", ()))
    significance = {k: (np.nan if v is None else v) for k, v in significance.items()}
    return ScanResult.from_rows(
        document["rows"],
        global_significance=GlobalSignificance(**significance),
        vetoed={name: tuple(edges) for name, edges in document["vetoed"].items()},
        settings=document.get("settings", {}),
        fingerprint=document.get("fingerprint", ""),
        dropped_candidates=document.get("dropped_candidates", 0),
    )
