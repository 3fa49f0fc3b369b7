"""The published g_agg limits an analysis is drawn against, read from the package's data folder.

Each file is a digitised 95% CL limit curve: ``#`` lines naming its source (the journal
reference and the arXiv number are read from them), then the columns ``mass_gev`` (GeV) and
``g_agg_gev_inv`` (GeV^-1), the lower edge of the excluded region in plot order, and, for a
curve with gaps, ``segment`` numbering its pieces. :func:`existing_limits` reads all of them
(:data:`EXISTING_LIMITS`), checked as :func:`read_existing_limit` says.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import BumphuntError

#: The published limits shipped in ``bumphunt/data``: name -> (file, legend label (matplotlib
#: mathtext), authors). The journal reference and the arXiv number are read from the files.
EXISTING_LIMITS = {
    "belle2_2020": ("belle2_2020_alp_gagg_limit.csv", r"Belle II 2020, $e^+e^- \to \gamma a$, 445 pb$^{-1}$",
                    "Belle II"),
    "besiii_2022": ("besiii_2022_jpsi_gamma_a.csv", r"BESIII 2022, $J/\psi \to \gamma a$", "BESIII"),
    "lep": ("lep_gammagammagamma.csv", r"LEP, $e^+e^- \to \gamma\gamma\gamma$ (reinterpreted)",
            "J. Jaeckel, M. Spannowsky"),
}  # fmt: skip
#: The columns of a limit file; ``segment`` is optional (one piece without it).
MASS_COLUMN, COUPLING_COLUMN, SEGMENT_COLUMN = "mass_gev", "g_agg_gev_inv", "segment"
#: Masses (GeV) and couplings (GeV^-1) a limit file may hold: beyond them it is in other units.
MASS_BOUNDS_GEV = (1e-6, 200.0)
COUPLING_BOUNDS_GEV_INV = (1e-12, 10.0)
#: A journal reference (``Phys. Lett. B 838 (2023) 137698``) and an arXiv number in a file's header.
_JOURNAL = re.compile(r"(?:[A-Z][A-Za-z]*\.\s)+(?:[A-Z]\s)?\d+\s\(\d{4}\)\s\d+")
_ARXIV = re.compile(r"arXiv:\d{4}\.\d{4,5}")


@dataclass(frozen=True, eq=False)
class ExistingLimit:
    """A published 95% CL upper limit on g_agg versus m_a.

    Attributes
    ----------
    name : str
        Its key in :data:`EXISTING_LIMITS` (or the file's stem).
    label : str
        What a legend calls it (matplotlib mathtext).
    authors, citation, arxiv : str
        The source: collaboration or authors, journal reference (from the file), arXiv number
        (from the file; empty when it gives none).
    mass, coupling : array
        The lower edge of the excluded region in plot order: m_a (GeV), g_agg (GeV^-1).
    segment : array of int
        The piece of the curve each point belongs to (0 for a curve without gaps).
    source : str
        The file's ``#`` lines.
    path : str
        Where it was read.
    """

    name: str
    label: str
    authors: str
    citation: str
    arxiv: str
    mass: np.ndarray
    coupling: np.ndarray
    segment: np.ndarray
    source: str
    path: str

    @property
    def reference(self) -> str:
        """Authors, journal reference and arXiv number in one line."""
        return ", ".join(part for part in (self.authors, self.citation, self.arxiv) if part)

    def pieces(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mass, coupling) of each piece of the curve, to be drawn apart."""
        return [(self.mass[self.segment == s], self.coupling[self.segment == s]) for s in np.unique(self.segment)]


def existing_limits(folder: str | Path | None = None) -> tuple[ExistingLimit, ...]:
    """Every published limit of :data:`EXISTING_LIMITS`: Belle II 2020, BESIII 2022, LEP.

    Parameters
    ----------
    folder : path, optional
        Where the files are; default the package's data folder (``bumphunt/data``).

    Raises
    ------
    BumphuntError
        One line naming the file and what is wrong with it (:func:`read_existing_limit`).
    """
    limits = []
    for name, (file, label, authors) in EXISTING_LIMITS.items():
        path = resources.files("bumphunt.data").joinpath(file) if folder is None else Path(folder) / file
        limits.append(read_existing_limit(path, name=name, label=label, authors=authors))
    return tuple(limits)


def read_existing_limit(path, *, name: str | None = None, label: str | None = None, authors: str = "") -> ExistingLimit:
    """Read and check one limit file (the format of the module docstring).

    Parameters
    ----------
    path : path or importlib Traversable
        The CSV file.
    name, label : str, optional
        Default the file's stem.
    authors : str
        Who published it (the file gives the journal reference and the arXiv number).

    Raises
    ------
    BumphuntError
        One line naming the file (and the line): missing or not text, no journal reference in
        its ``#`` lines, a missing column, a value that is no positive finite number, masses
        (GeV) or couplings (GeV^-1) outside :data:`MASS_BOUNDS_GEV` / :data:`COUPLING_BOUNDS_GEV_INV`
        (other units), masses going down within a piece, fewer than two points.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BumphuntError(f"{path}: no such file (a published limit bumphunt draws)") from None
    except UnicodeDecodeError:
        raise BumphuntError(f"{path}: not a text file, so not a limit curve (CSV)") from None
    except OSError as error:
        raise BumphuntError(f"{path}: cannot read it ({error.strerror or type(error).__name__})") from None
    stem = Path(str(path)).stem
    comments = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
    source = "\n".join(comments)
    citation, arxiv = _JOURNAL.search(source), _ARXIV.search(source)
    if citation is None:
        raise BumphuntError(f"{path}: no journal reference (such as 'Phys. Lett. B 838 (2023) 137698') in its # lines; "
                            "say where the curve was published")  # fmt: skip
    mass, coupling, segment = _columns(path, text)
    return ExistingLimit(name or stem, label or stem, authors, citation.group(0), arxiv.group(0) if arxiv else "",
                         mass, coupling, segment, source, str(path))  # fmt: skip


def _columns(path, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked mass, coupling and segment columns of a limit file's text."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.startswith("#")]  # fmt: skip
    if not lines:
        raise BumphuntError(f"{path}: no table after its # lines (expected the header {MASS_COLUMN},{COUPLING_COLUMN})")
    header = [cell.strip() for cell in lines[0][1].split(",")]
    for column in (MASS_COLUMN, COUPLING_COLUMN):
        if column not in header:
            raise BumphuntError(f"{path}, line {lines[0][0]}: no column {column!r} in the header {lines[0][1]!r} "
                                f"(expected {MASS_COLUMN},{COUPLING_COLUMN}[,{SEGMENT_COLUMN}])")  # fmt: skip
    points = []
    for number, line in lines[1:]:
        values = [cell.strip() for cell in line.split(",")]
        if len(values) != len(header):
            raise BumphuntError(f"{path}, line {number}: {len(values)} values for the {len(header)} columns "
                                f"{','.join(header)}")  # fmt: skip
        cells = dict(zip(header, values))
        point = [_positive(path, number, column, cells[column]) for column in (MASS_COLUMN, COUPLING_COLUMN)]
        points.append((*point, _segment(path, number, cells.get(SEGMENT_COLUMN, "0")), number))
    if len(points) < 2:
        raise BumphuntError(f"{path}: {len(points)} point(s); a limit curve needs at least two")
    for (mass, _, segment, _), (next_mass, _, next_segment, number) in zip(points, points[1:]):
        if next_segment < segment:
            raise BumphuntError(f"{path}, line {number}: segment {next_segment} after {segment}; the points of each "
                                "piece of the curve must be together, pieces in order")  # fmt: skip
        if next_segment == segment and next_mass < mass:
            raise BumphuntError(f"{path}, line {number}: mass {next_mass:g} GeV below the {mass:g} GeV before it; the "
                                "points of a piece go up in mass (plot order)")  # fmt: skip
    mass, coupling, segment, _ = (np.array(column) for column in zip(*points))
    for values, unit, (low, high), hint in (
        (mass, "GeV", MASS_BOUNDS_GEV, "masses in MeV or eV? convert them to GeV"),
        (coupling, "GeV^-1", COUPLING_BOUNDS_GEV_INV, "couplings in other units? convert them to GeV^-1"),
    ):
        outside = values[(values < low) | (values > high)]
        if len(outside):
            raise BumphuntError(f"{path}: {outside[0]:g} {unit} is outside {low:g}-{high:g} {unit} ({hint})")
    return mass.astype(np.float64), coupling.astype(np.float64), segment.astype(np.int64)


def _positive(path, number: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BumphuntError(f"{path}, line {number}: {column} = {cell!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise BumphuntError(f"{path}, line {number}: {column} = {cell} is not a positive finite number")
    return value


def _segment(path, number: int, cell: str) -> int:
    if not cell.isdigit():
        raise BumphuntError(f"{path}, line {number}: {SEGMENT_COLUMN} = {cell!r} is not a whole number >= 0")
    return int(cell)
