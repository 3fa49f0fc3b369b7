"""The exclusion stage: the scan's limits on signal events as limits on sigma(e+e- -> gamma a)
and on g_agg, self-consistent with the ALP lifetime.

For every scanned mass and every limit (observed, expected -2..+2 sigma) it solves
N_UL = L sigma(m, g) eps(m, c tau(m, g)) (:func:`bumphunt.coupling.coupling_limit`) with the
efficiency of the signal model, reweighted to the lifetime of each coupling
(:mod:`bumphunt.models.lifetime`): the selection, kinematic fit and signal window are those
the shape stage counted. Writes ``exclusion.csv`` / ``.json`` and the figures (cross-section
limits with bands, the g_agg exclusion next to the published Belle II 2020 curve, the
sensitivity against every published limit (:func:`~bumphunt.exclusion.plots.plot_sensitivity`),
the efficiency map) where :class:`~bumphunt.layout.OutputLayout` says.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, writable_folder
from .._progress import progress_bar
from ..config import validate_settings
from ..coupling import QUOTED, coupling_limit, prompt_coupling_limit, published_limit
from ..errors import BumphuntError
from ..kinematics import Beams
from ..layout import OutputLayout
from ..models.signal import ShapeModel
from ..pipeline import refuse_disagreement
from ..plotting import plot_coupling_exclusion, plot_cross_section_limits, plot_efficiency_map, save_figure
from ..results import (
    EXCLUSION_COLUMNS,
    EXCLUSION_LIMITS,
    EXCLUSION_STRING_COLUMNS,
    ExclusionResult,
    ScanResult,
    read_table,
    rows_csv,
)
from ..samples import scan_data
from .existing import existing_limits
from .plots import save_sensitivity

#: The limits converted, by the scan table's column and the suffix of the exclusion's columns
#: (:data:`bumphunt.results.EXCLUSION_LIMITS`).
LIMITS = EXCLUSION_LIMITS
#: The columns of the exclusion table, in order (:data:`bumphunt.results.EXCLUSION_COLUMNS`):
#: couplings (GeV^-1), cross-sections (pb), the efficiency (with its statistical error) and
#: c tau (cm) at the observed limit, the observed limit converted with the generated ALPs'
#: efficiency (prompt decays), every excluded interval of g, status.
COLUMNS = EXCLUSION_COLUMNS
STRING_COLUMNS = EXCLUSION_STRING_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExclusionSummary:
    """What :func:`run_exclusion` produced."""

    result: ExclusionResult
    table_csv: Path
    table_json: Path
    plots: list[Path]
    seconds: float


def exclusion_row(row: dict, model: ShapeModel, luminosity: float, sqrt_s: float) -> dict:
    """The exclusion at one scanned mass from its row of the scan table; ``luminosity``
    (pb^-1) is checked as the configuration's is (:func:`bumphunt.config.validate_settings`)."""
    luminosity = validate_settings("", {"luminosity": luminosity})["luminosity"]
    mass = float(row["mass"])
    out = {"mass": mass, "excluded_obs": ""}
    nan = math.nan
    low, high = model.mass_range
    if row["fit_status"] != "ok" or not low <= mass <= high:
        reason = row["fit_status"] if row["fit_status"] != "ok" else "outside the signal model's mass range"
        return {column: nan for column in COLUMNS} | out | {"status": reason}
    efficiency = model.efficiency_of_lifetime(mass)
    prompt = not callable(efficiency)
    if prompt:
        constant = efficiency
        efficiency = lambda ctau: np.full(np.shape(ctau), constant)  # noqa: E731
    unquoted: dict[str, list[str]] = {}  # why a band has no limit -> the bands
    for column, suffix in LIMITS.items():
        limit = coupling_limit(float(row[column]), mass, luminosity, sqrt_s, efficiency)
        out[f"g_{suffix}"], out[f"xsec_{suffix}_pb"] = limit.coupling, limit.cross_section_pb
        if suffix == "obs":
            observed = limit
        elif limit.status not in QUOTED:
            unquoted.setdefault(limit.status, []).append(suffix)
    out["efficiency_at_limit"], out["ctau_at_limit_cm"] = observed.efficiency, observed.ctau_cm
    out["efficiency_error_at_limit"] = (
        float(model.efficiency_error(mass, observed.ctau_cm if not prompt else None)) if observed.ctau_cm > 0 else nan
    )
    out["g_obs_prompt"] = prompt_coupling_limit(float(row["ul_obs"]), mass, float(model.efficiency(mass)), luminosity,
                                                sqrt_s)  # fmt: skip
    out["excluded_obs"] = ";".join(f"{a:.6g}-{b:.6g}" for a, b in observed.excluded)
    out["status"] = observed.status + (" (prompt efficiency: no lifetime map)" if prompt else "")
    for reason, suffixes in unquoted.items():  # every band without a limit, with why
        out["status"] += f"; {', '.join(suffixes)} {reason}"
    return {column: out[column] for column in COLUMNS}


def run_exclusion(
    config: dict, output_dir=None, *, scan_table=None, shapes=None, progress: bool = True
) -> ExclusionSummary:
    """The exclusion stage of an analysis.

    Parameters
    ----------
    config : dict
        Validated configuration (``luminosity``, the beams, ``scan.shapes``).
    output_dir : path, optional
        Default ``<output_dir>/exclusion``.
    scan_table : path, optional
        The scan's ``results.json``; default the analysis' scan folder.
    shapes : path, optional
        The signal model the scan used; default ``scan.shapes`` or the analysis' shape file.
    """
    started = time.perf_counter()
    layout = OutputLayout.from_config(config).with_stage_dir("exclusion", output_dir)
    if scan_table is None:
        refuse_disagreement("exclusion", config, layout)
    table_path = Path(scan_table) if scan_table else layout.scan_table_json
    if not table_path.is_file():
        raise BumphuntError(f"no scan results at {table_path}: run `bumphunt scan` first")
    scan = read_table(table_path)  # a BumphuntError naming the file when it is no table of bumphunt
    if not isinstance(scan, ScanResult):
        raise BumphuntError(f"{table_path}: an {scan.kind} table, not the scan's results.json the exclusion converts")
    model_path = Path(shapes or config["scan"]["shapes"] or layout.shapes_file)
    model = ShapeModel.load(model_path)
    luminosity, sqrt_s = float(config["luminosity"]), Beams.from_config(config).sqrt_s
    writable_folder(layout.exclusion_dir)
    rows = []
    with progress_bar(progress) as bar:
        advance = bar.add("coupling limits", len(scan))
        for row in scan.rows():
            rows.append(exclusion_row(row, model, luminosity, sqrt_s))
            advance(1)
    settings = {"luminosity_pb_inv": luminosity, "sqrt_s_gev": sqrt_s, "alpha": "alpha(0) = 1/137.036",
                "shapes": str(model_path.resolve()), "scan_table": str(table_path.resolve())}  # fmt: skip
    result = ExclusionResult.from_rows(rows, vetoed=scan.vetoed, settings=settings)
    table_csv = atomic_write_text(layout.exclusion_table_csv, rows_csv(rows, COLUMNS))
    table_json = atomic_write_text(layout.exclusion_table_json,
                                   json.dumps(result.to_dict(), indent=1, allow_nan=False))  # fmt: skip
    plots = []
    if config["exclusion"]["plots"] and not np.isfinite(result["g_exp"]).any():
        log.warning("no mass has a coupling limit: the exclusion figures are not drawn")
    elif config["exclusion"]["plots"]:
        published = published_limit()
        plots.append(save_figure(plot_cross_section_limits(result), layout.exclusion_plot("cross_section_limits")))
        exclusion_plot = plot_coupling_exclusion(result, published[:2])
        plots.append(save_figure(exclusion_plot, layout.exclusion_plot("coupling_exclusion")))
        # the observed limit only when the scan fitted data, not pseudo-data (blinded, or no data sample)
        observed = scan_data(config, layout) != "pseudo" and not scan.settings.get("blinded", False)
        sensitivity = save_sensitivity(result, layout.exclusion_plot("sensitivity"), existing=existing_limits(),
                                       observed=observed)  # fmt: skip
        plots += [sensitivity] if sensitivity is not None else []  # None: no mass has an expected limit
        if model.lifetime is not None:
            plots.append(save_figure(plot_efficiency_map(model), layout.exclusion_plot("efficiency_map")))
    return ExclusionSummary(result, table_csv, table_json, plots, time.perf_counter() - started)
