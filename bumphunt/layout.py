"""Where an analysis keeps its files: every folder and file name of the stages, in one place.

An analysis writes below its ``output_dir`` one folder per stage::

    <output_dir>/
      simulation/<sample>.root      simulated events (bumphunt.ntuple format)
      kinfit/<sample>.root          the same events with the kinematic-fit branches
      select/                       the selection stage (Punzi-net)
      shapes/signal_shapes.json     the interpolated signal model, with its plots
      scan/results.csv, results.json, points/m<mass>.json, plots
      count/results.csv, results.json, windows.csv, plots
      exclusion/exclusion.csv, exclusion.json, plots
      report/report.html            the run report (with resolution.png)

Stages find each other's files only through :class:`OutputLayout`; a stage whose output is
redirected (``--output``) gets a layout with that folder (:meth:`OutputLayout.with_stage_dir`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .errors import NtupleError
from .ntuple import SAMPLES

#: The stages' folders, in the order of the chain.
#: Branches the selection stage writes into its friend ntuples start with this.
SELECT_BRANCH_PREFIX = "punzi_"

STAGE_DIRS = ("simulation", "kinfit", "select", "shapes", "scan", "exclusion", "count", "report")
#: The figures of a scan (:meth:`OutputLayout.scan_plot`).
SCAN_PLOTS = ("upper_limits", "local_significance", "best_fit")
#: The figures of a counting experiment (:meth:`OutputLayout.count_plot`).
COUNT_PLOTS = ("upper_limits", "local_significance")


@dataclass(frozen=True)
class OutputLayout:
    """The folders and files of one analysis below ``root``.

    Parameters
    ----------
    root : path
        The analysis' ``output_dir``.
    stage_dirs : mapping, optional
        Stage name -> folder, for stages written somewhere else than ``root/<stage>``.
    """

    root: Path
    stage_dirs: Mapping[str, Path] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        unknown = set(self.stage_dirs) - set(STAGE_DIRS)
        if unknown:
            raise ValueError(f"unknown stage {sorted(unknown)[0]!r}; choose from {', '.join(STAGE_DIRS)}")
        object.__setattr__(self, "stage_dirs", MappingProxyType({k: Path(v) for k, v in self.stage_dirs.items()}))

    @classmethod
    def from_config(cls, config: Mapping) -> OutputLayout:
        """The layout of the analysis described by a configuration (its ``output_dir``)."""
        return cls(Path(config["output_dir"]))

    def with_stage_dir(self, stage: str, directory: str | Path | None) -> OutputLayout:
        """The same layout with ``stage`` written to ``directory`` (unchanged when None)."""
        if directory is None:
            return self
        return OutputLayout(self.root, {**self.stage_dirs, stage: Path(directory)})

    def stage_dir(self, stage: str) -> Path:
        """The folder of a stage."""
        if stage not in STAGE_DIRS:
            raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGE_DIRS)}")
        return self.stage_dirs.get(stage, self.root / stage)

    def ntuple(self, stage: str, sample: str) -> Path:
        """The ntuple of ``sample`` written by ``stage`` (``simulation``, ``kinfit``, ``select``)."""
        return self.stage_dir(stage) / f"{sample}.root"

    def existing_ntuples(self, stage: str, samples: Iterable[str] = SAMPLES) -> list[Path]:
        """The ntuples of ``samples`` that ``stage`` has written, in the order given."""
        return [path for path in (self.ntuple(stage, sample) for sample in samples) if path.is_file()]

    def friends(self, sample: str, needed: Iterable[str] = ()) -> list[Path]:
        """Friend ntuples of ``sample`` (the selection's score and decision), where written:
        readers look there for branches the kinematic-fit ntuple lacks.

        Raises NtupleError when ``needed`` (the branches a cut uses) holds a branch of the
        selection stage (``punzi_*``) and that stage has not written ``sample``.
        """
        found = self.existing_ntuples("select", [sample])
        wanted = sorted(b for b in needed if b.startswith(SELECT_BRANCH_PREFIX))
        if wanted and not found:
            raise NtupleError(
                f"{self.ntuple('select', sample)} does not exist, and the cut needs {', '.join(wanted)} from it: "
                "run `bumphunt select` first, or cut on the pre-selection alone (select.preselection)"
            )
        return found

    @property
    def simulation_dir(self) -> Path:
        return self.stage_dir("simulation")

    @property
    def studies_dir(self) -> Path:
        """Analyses run again with other settings (``bumphunt study``), each in a folder of its
        own below this one; not part of this analysis' report."""
        return self.root / "studies"

    def study_dir(self, name: str) -> Path:
        """The folder of the study ``name`` (``luminosity``)."""
        return self.studies_dir / name

    @property
    def composition_table(self) -> Path:
        """Expected background candidates per process in mass ranges (CSV), written by the simulation."""
        return self.simulation_dir / "composition.csv"

    @property
    def composition_plot(self) -> Path:
        """The background M_gg spectrum stacked by process."""
        return self.simulation_dir / "composition.png"

    @property
    def kinfit_dir(self) -> Path:
        return self.stage_dir("kinfit")

    @property
    def shapes_dir(self) -> Path:
        return self.stage_dir("shapes")

    @property
    def shapes_file(self) -> Path:
        """The signal model the shape stage writes and the scan reads."""
        return self.shapes_dir / "signal_shapes.json"

    @property
    def shape_parameters_plot(self) -> Path:
        return self.shapes_dir / "shape_parameters.png"

    @property
    def shape_fits_plot(self) -> Path:
        return self.shapes_dir / "shape_fits.pdf"

    @property
    def scan_dir(self) -> Path:
        return self.stage_dir("scan")

    @property
    def scan_table_csv(self) -> Path:
        return self.scan_dir / "results.csv"

    @property
    def scan_table_json(self) -> Path:
        return self.scan_dir / "results.json"

    @property
    def scan_impacts_csv(self) -> Path:
        """The limits without each systematic source (:class:`bumphunt.scan.impacts.ImpactTable`)."""
        return self.scan_dir / "impacts.csv"

    @property
    def scan_points_dir(self) -> Path:
        """One file per finished mass point: what an interrupted scan resumes from."""
        return self.scan_dir / "points"

    def scan_plot(self, name: str) -> Path:
        """A figure of the scan: ``upper_limits``, ``local_significance``, ``best_fit``."""
        return self.scan_dir / f"{name}.png"

    @property
    def scan_results(self) -> list[Path]:
        """The tables and figures of a finished scan (removed when a scan with other inputs starts)."""
        return [self.scan_table_csv, self.scan_table_json, *(self.scan_plot(name) for name in SCAN_PLOTS)]

    @property
    def scan_lock_file(self) -> Path:
        """Locked by a running scan, so that a second scan into the folder is refused."""
        return self.scan_dir / ".lock"

    @property
    def exclusion_dir(self) -> Path:
        return self.stage_dir("exclusion")

    @property
    def exclusion_table_csv(self) -> Path:
        """The coupling exclusion, one row per mass (:data:`bumphunt.exclusion.COLUMNS`)."""
        return self.exclusion_dir / "exclusion.csv"

    @property
    def exclusion_table_json(self) -> Path:
        return self.exclusion_dir / "exclusion.json"

    def exclusion_plot(self, name: str) -> Path:
        """A figure of the exclusion stage: ``cross_section_limits``, ``coupling_exclusion``,
        ``efficiency_map``."""
        return self.exclusion_dir / f"{name}.png"

    @property
    def count_dir(self) -> Path:
        return self.stage_dir("count")

    @property
    def count_table_csv(self) -> Path:
        """The counting experiment's results, one row per mass (the columns of the scan's table)."""
        return self.count_dir / "results.csv"

    @property
    def count_table_json(self) -> Path:
        return self.count_dir / "results.json"

    @property
    def count_windows_csv(self) -> Path:
        """The signal window, efficiency and background estimate of every mass."""
        return self.count_dir / "windows.csv"

    def count_plot(self, name: str) -> Path:
        """A figure of the counting experiment: ``upper_limits``, ``local_significance``."""
        return self.count_dir / f"{name}.png"

    @property
    def select_dir(self) -> Path:
        return self.stage_dir("select")

    @property
    def select_model_dir(self) -> Path:
        """The trained Punzi-net (weights and description)."""
        return self.select_dir / "punzinet"

    @property
    def select_table_csv(self) -> Path:
        """sigma_min per generated mass for the Punzi-net and the baselines."""
        return self.select_dir / "fom.csv"

    @property
    def select_table_json(self) -> Path:
        return self.select_dir / "fom.json"

    def select_plot(self, name: str) -> Path:
        """A figure of the selection: ``fom``, ``training``, ``scores``."""
        return self.select_dir / f"{name}.png"

    @property
    def report_dir(self) -> Path:
        return self.stage_dir("report")

    @property
    def report_html(self) -> Path:
        """The run report: one self-contained HTML page (:func:`bumphunt.report.write_report`)."""
        return self.report_dir / "report.html"

    @property
    def resolution_plot(self) -> Path:
        """The signal's mass resolution versus mass, drawn by the report."""
        return self.report_dir / "resolution.png"
