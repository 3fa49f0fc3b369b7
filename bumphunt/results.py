"""Limits mass by mass as numpy columns, and their CSV and JSON tables: the result of the
scan and of the counting experiment (:class:`ScanResult`), and of the exclusion stage
(:class:`ExclusionResult`).

Computing and writing are apart: :func:`~bumphunt.scan.stage.run_scan`,
:func:`~bumphunt.scan.stage.scan_spectrum` and :func:`~bumphunt.count.stage.run_count`
return a :class:`ScanResult`; :func:`write_table` writes it; :mod:`bumphunt.plotting` draws
it. :func:`read_table` reads back every JSON table bumphunt writes (the scan's and the
count's ``results.json``, the exclusion's ``exclusion.json``), recognised by its content.
``bumphunt.scan.results`` re-exports this module, its former place.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from ._io import atomic_write_text, strict_json
from .errors import BumphuntError
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

#: The limits the exclusion stage converts: the scan table's column -> the suffix of the
#: exclusion table's columns.
EXCLUSION_LIMITS = {"ul_obs": "obs", "ul_exp_m2": "exp_m2", "ul_exp_m1": "exp_m1", "ul_exp": "exp",
                    "ul_exp_p1": "exp_p1", "ul_exp_p2": "exp_p2"}  # fmt: skip
#: The columns of the exclusion table, in order: couplings (GeV^-1), cross-sections (pb), the
#: efficiency (with its statistical error) and c tau (cm) at the observed limit, the observed
#: limit converted with the generated ALPs' efficiency (prompt decays), every excluded
#: interval of g, status.
EXCLUSION_COLUMNS = (
    "mass", *(f"g_{s}" for s in EXCLUSION_LIMITS.values()), *(f"xsec_{s}_pb" for s in EXCLUSION_LIMITS.values()),
    "efficiency_at_limit", "efficiency_error_at_limit", "ctau_at_limit_cm", "g_obs_prompt", "excluded_obs", "status",
)  # fmt: skip
#: Every column of the exclusion table is float64 but these two.
EXCLUSION_STRING_COLUMNS = ("excluded_obs", "status")
#: The ``format`` and ``version`` keys of ``exclusion.json``.
EXCLUSION_FORMAT, EXCLUSION_VERSION = "bumphunt-exclusion", 1

#: The kinds of table :func:`read_table` reads, as the ``"table"`` key of their JSON file says.
TABLE_KINDS = ("scan", "count", "exclusion")


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
    kind : str
        ``"scan"`` or ``"count"``: the stage that computed it (the ``"table"`` key of its
        ``results.json``).
    """

    columns: dict[str, np.ndarray]
    global_significance: GlobalSignificance
    vetoed: dict[str, tuple[float, float]]
    settings: dict = field(default_factory=dict)
    fingerprint: str = ""
    resumed_points: int = 0
    dropped_candidates: int = 0
    kind: str = "scan"

    @classmethod
    def from_rows(cls, rows: list[dict], **fields) -> ScanResult:
        """Collect per-point rows (dicts with the :data:`COLUMNS`) into columns."""
        return cls(_columns_of_rows(rows, COLUMNS, STRING_COLUMNS), **fields)

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
                "table": self.kind,
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


def _columns_of_rows(rows: list[dict], names, string_names) -> dict[str, np.ndarray]:
    """Rows (dicts) as numpy columns: float64 (None and missing values NaN) but ``string_names``."""
    columns = {}
    for name in names:
        values = [row.get(name, np.nan if name not in string_names else "") for row in rows]
        dtype = str if name in string_names else np.float64
        columns[name] = np.array([np.nan if v is None else v for v in values], dtype=dtype)
    return columns


@dataclass(frozen=True)
class ExclusionResult:
    """The exclusion stage's limits on the cross-section and on g_agg: one row per scanned
    mass, as numpy columns (:data:`EXCLUSION_COLUMNS`), and the vetoed mass ranges.

    :func:`bumphunt.plotting.plot_coupling_exclusion` and
    :func:`~bumphunt.plotting.plot_cross_section_limits` draw it; :func:`read_table` reads it
    back from ``exclusion.json``. ``bumphunt.exclusion`` re-exports it.

    Attributes
    ----------
    columns : dict of str -> array
        :data:`EXCLUSION_COLUMNS`; float64 arrays but ``excluded_obs`` and ``status`` (str).
    vetoed : dict of str -> (low, high)
        The mass ranges left out around the pi0, eta and eta' (GeV).
    settings : dict
        What the limits were converted with: ``luminosity_pb_inv``, ``sqrt_s_gev``, ``alpha``,
        ``shapes`` and ``scan_table`` (the files read).
    """

    columns: dict[str, np.ndarray]
    vetoed: dict[str, tuple[float, float]]
    settings: dict = field(default_factory=dict)

    #: The ``"table"`` key of ``exclusion.json`` (a :class:`ScanResult` says "scan" or "count").
    kind: ClassVar[str] = "exclusion"

    @classmethod
    def from_rows(cls, rows: list[dict], **fields) -> ExclusionResult:
        """Collect per-mass rows (dicts with the :data:`EXCLUSION_COLUMNS`) into columns."""
        return cls(_columns_of_rows(rows, EXCLUSION_COLUMNS, EXCLUSION_STRING_COLUMNS), **fields)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __len__(self) -> int:
        return len(self.columns["mass"])

    @property
    def masses(self) -> np.ndarray:
        return self.columns["mass"]

    def rows(self) -> list[dict]:
        """One dict per mass, python scalars."""
        names = list(self.columns)
        return [dict(zip(names, (c[i].item() for c in self.columns.values()))) for i in range(len(self))]

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (pandas is optional: imported here)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("ExclusionResult.to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame({name: self.columns[name] for name in EXCLUSION_COLUMNS})

    def to_dict(self) -> dict:
        """The JSON document of ``exclusion.json`` (non-finite numbers as None)."""
        return strict_json(
            {
                "table": self.kind,
                "format": EXCLUSION_FORMAT,
                "version": EXCLUSION_VERSION,
                **self.settings,
                "vetoed": {name: list(edges) for name, edges in self.vetoed.items()},
                "rows": [{name: row[name] for name in EXCLUSION_COLUMNS} for row in self.rows()],
            }
        )


#: What :func:`read_table` reads, named in its messages.
_TABLES_READ = "a scan's or count's results.json, an exclusion.json"
#: What to do about a damaged table, the end of its message.
_REMEDY = "copy it again or rerun the stage that wrote it"


def read_table(path: str | Path) -> ScanResult | ExclusionResult:
    """Read back a JSON table bumphunt wrote, of whichever stage.

    The kind is recognised from the file's content: its ``"table"`` key (``"scan"``,
    ``"count"`` or ``"exclusion"``), or, in files written before that key, the keys the scan's
    and the count's ``results.json`` and the exclusion's ``exclusion.json`` hold.

    Parameters
    ----------
    path : str or Path
        A ``results.json`` of the scan (:func:`write_table`) or of the counting experiment,
        or an ``exclusion.json`` of the exclusion stage.

    Returns
    -------
    ScanResult or ExclusionResult
        A :class:`ScanResult` (``kind`` "scan" or "count") for a ``results.json``, which
        :func:`~bumphunt.plotting.plot_brazil` and
        :func:`~bumphunt.plotting.plot_local_significance` draw; an :class:`ExclusionResult`
        for an ``exclusion.json``, which :func:`~bumphunt.plotting.plot_coupling_exclusion`
        and :func:`~bumphunt.plotting.plot_cross_section_limits` draw.

    Raises
    ------
    BumphuntError
        One line naming the file: it is missing or unreadable, empty, a CSV table, not JSON
        or truncated JSON, JSON of another kind, or a table with a missing or malformed entry.
    """
    path = Path(path)
    document = _json_document(path)
    kind = table_kind(document)
    if kind is None:
        raise BumphuntError(f"{path}: not a table bumphunt writes ({_TABLES_READ}): {_json_description(document)}")
    try:
        if not isinstance(document.get("rows"), list) or not all(isinstance(r, dict) and "mass" in r
                                                                  for r in document["rows"]):  # fmt: skip
            raise ValueError("'rows' is not a list of rows with a 'mass'")
        vetoed = {str(name): (float(low), float(high)) for name, (low, high) in document.get("vetoed", {}).items()}
        if kind == "exclusion":
            ignored = {"table", "format", "version", "vetoed", "rows"}
            settings = {k: v for k, v in document.items() if k not in ignored}
            return ExclusionResult.from_rows(document["rows"], vetoed=vetoed, settings=settings)
        significance = dict(document["global_significance"])
        unknown = sorted(set(significance) - {f.name for f in dataclass_fields(GlobalSignificance)})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} in 'global_significance'")
        significance["upcrossings_per_toy"] = tuple(significance.get("upcrossings_per_toy", ()))
        significance = {k: (np.nan if v is None else v) for k, v in significance.items()}
        return ScanResult.from_rows(
            document["rows"],
            global_significance=GlobalSignificance(**significance),
            vetoed=vetoed,
            settings=document.get("settings", {}),
            fingerprint=document.get("fingerprint", ""),
            dropped_candidates=document.get("dropped_candidates", 0),
            kind=kind,
        )
    except KeyError as error:
        raise BumphuntError(f"{path}: broken {kind} table: missing key {error.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise BumphuntError(f"{path}: broken {kind} table: {reason}") from None


def table_kind(document) -> str | None:
    """The kind of table (one of :data:`TABLE_KINDS`) a parsed JSON document is, None when it
    is none bumphunt writes: its ``"table"`` key, or for files written before that key, the
    exclusion's ``"format"``, or the rows and global significance of a scan's or count's
    ``results.json`` (a count's settings hold ``signal_fraction``)."""
    if not isinstance(document, dict):
        return None
    if "table" in document:
        return document["table"] if document["table"] in TABLE_KINDS else None
    if document.get("format") == EXCLUSION_FORMAT:
        return "exclusion"
    if "rows" in document and "global_significance" in document:
        settings = document.get("settings")
        return "count" if isinstance(settings, dict) and "signal_fraction" in settings else "scan"
    return None


def _json_document(path: Path):
    """The parsed JSON of ``path``; a BumphuntError naming the file for anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BumphuntError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BumphuntError(f"{path}: a folder, not a table file") from None
    except UnicodeDecodeError:
        raise BumphuntError(f"{path}: not a table bumphunt writes ({_TABLES_READ}): a binary file") from None
    except OSError as error:
        raise BumphuntError(f"{path}: cannot read it ({error.strerror or type(error).__name__})") from None
    if not text.strip():
        raise BumphuntError(f"{path}: empty file; {_REMEDY}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        first_line = text.lstrip().splitlines()[0]
        if first_line[:1] not in "{[" and "," in first_line:
            raise BumphuntError(
                f"{path}: a CSV table; read_table reads the JSON table written beside it ({path.stem}.json)"
            ) from None
        opened = text.count("{") + text.count("[") - text.count("}") - text.count("]")
        if first_line[:1] in "{[" and opened > 0:  # cut before its brackets close
            lines = text.rstrip().count("\n") + 1
            raise BumphuntError(f"{path}: truncated JSON (it ends at line {lines}); {_REMEDY}") from None
        raise BumphuntError(
            f"{path}: not JSON ({error.msg} at line {error.lineno}, column {error.colno}), so not a table bumphunt "
            "writes"
        ) from None


def _json_description(document) -> str:
    """What a JSON document is, for a message: its type, and the first keys of an object."""
    if isinstance(document, dict):
        keys = list(document)
        shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
        return f"a JSON object with the keys {shown}" if keys else "an empty JSON object"
    if document is None:
        return "JSON null"
    return {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean"}.get(type(document), "a JSON number")
