"""The event format: ROOT ntuples, their branch schema, sample and photon-origin codes, pairs.

Every stage reads and writes events through this module (uproot), so the codes stored in
the branches are defined here and nowhere else: the sample of an event (:data:`SAMPLE_IDS`),
the origin of each photon (``ORIGIN_*``), and the order of the three diphoton pairs
(:data:`PAIRS`) with their truth matching (:func:`truth_matched_pairs`).

An ntuple is a ROOT file with a TTree ``events`` (one entry per event, the branches of
:data:`BRANCHES`) and a TObjString ``metadata`` holding JSON (sample, cross-section,
luminosity, generated events, configuration). Files are written to a temporary name and
renamed when complete, so a crash never leaves a half-written ntuple behind. Baskets are
ZSTD-compressed with zstd's frame checksum, so damaged bytes are caught when read: every
reader raises :class:`~bumphunt.errors.NtupleError` for a truncated or corrupted file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import writing
from .cuts import branches_used, evaluate_cut
from .errors import NtupleError
from .kinematics import invariant_mass, photon_four_vectors

#: Sample codes (branch ``sample_id``): the ALP signal on a mass grid, the QED gamma gamma
#: gamma continuum, e+e- -> P gamma with P -> gamma gamma, e+e- -> gamma gamma (a third
#: photon from beam background or merging), radiative Bhabha e+e- -> e+e- gamma (tracks
#: lost), and e+e- -> P gamma gamma.
SAMPLE_IDS = {
    "alp": 0,
    "ggg": 1,
    "pi0_gamma": 2,
    "eta_gamma": 3,
    "etaprime_gamma": 4,
    "gg": 5,
    "eeg": 6,
    "pi0_gamma_gamma": 7,
    "eta_gamma_gamma": 8,
    "etaprime_gamma_gamma": 9,
    "alp_long_lived": 10,
}
SAMPLES = tuple(SAMPLE_IDS)
#: The ALP samples: the signal, and long-lived ALPs that only extend the reach of the
#: efficiency's lifetime reweighting (:mod:`bumphunt.models.lifetime`).
SIGNAL_SAMPLES = ("alp", "alp_long_lived")
#: The samples that make up the background of the diphoton spectrum.
BACKGROUND_SAMPLES = tuple(sample for sample in SAMPLES if sample not in SIGNAL_SAMPLES)

#: Origin codes of a reconstructed photon (branch ``photon_origin``).
ORIGIN_BEAM_BACKGROUND = 0
ORIGIN_PROMPT = 1  # recoil photon of e+e- -> gamma P, or a gamma gamma gamma photon
ORIGIN_DAUGHTER = 2  # one photon of P -> gamma gamma
ORIGIN_MERGED = 3  # a cluster holding both P -> gamma gamma photons
ORIGIN_OTHER_MERGED = 4  # any other cluster made of several photons
ORIGIN_ELECTRON = 5  # the cluster of an electron or positron whose track was not found

#: The three photon pairs of an event, in the column order of every per-pair branch
#: (``m_gg``, ``m_gg_fit``): photons (1, 2), (1, 3), (2, 3) by decreasing energy.
PAIRS = ((0, 1), (0, 2), (1, 2))

TREE_NAME = "events"
METADATA_NAME = "metadata"
#: Metadata key of an ntuple that holds only its own branches of another ntuple's events:
#: the path of that base ntuple, relative to the folder of the extending one.
BASE_KEY = "base"
NTUPLE_VERSION = 1
#: ZSTD level of the baskets: level 1 is as small as higher levels on these events (floats
#: whose mantissas do not compress) and the fastest.
COMPRESSION_LEVEL = 1


@dataclass(frozen=True)
class Branch:
    """One branch of the ntuple schema."""

    dtype: str
    shape: tuple[int, ...]
    unit: str
    description: str


#: The branches of a simulated ntuple. Per-photon branches hold the three most energetic
#: photon candidates, ordered by decreasing measured energy.
BRANCHES: dict[str, Branch] = {
    "event_id": Branch("int64", (), "", "index of the generated event within its sample"),
    "sample_id": Branch("int32", (), "", "sample code, see bumphunt.ntuple.SAMPLE_IDS"),
    "weight": Branch(
        "float64", (), "events", "expected events at the configured luminosity, trigger efficiency included"
    ),
    "trigger_efficiency": Branch(
        "float64", (), "", "L1 trigger efficiency of the event (ECL energy-sum turn-on), already folded into weight"
    ),
    "gen_mass": Branch("float64", (), "GeV", "generated mass of the resonance; NaN for gamma gamma gamma"),
    "sqrt_s_true": Branch(
        "float64",
        (),
        "GeV",
        "sqrt(s') of the collision: nominal sqrt(s) with the beam-energy spread, less the ISR photon "
        "(the kinematic fit constrains to the nominal beams)",
    ),
    "decay_vertex": Branch("float64", (3,), "cm", "(x, y, z) of the resonance decay; 0 when prompt or non-resonant"),
    "proper_decay_length": Branch(
        "float64", (), "cm", "c t of the resonance decay in its rest frame (exponential, mean c tau); 0 when prompt"
    ),
    "n_photons": Branch("int32", (), "", "photon candidates in the acceptance, before keeping three"),
    "m_ggg": Branch("float64", (), "GeV", "invariant mass of the three photons"),
    "photon_E": Branch("float64", (3,), "GeV", "measured energy"),
    "photon_theta": Branch("float64", (3,), "rad", "measured lab polar angle, seen from the interaction point"),
    "photon_phi": Branch("float64", (3,), "rad", "measured lab azimuth in (-pi, pi]"),
    "photon_time": Branch(
        "float64", (3,), "ns", "measured cluster time: 0 for the collision, beam background over the readout window"
    ),
    "photon_cov": Branch(
        "float32",
        (3, 6),
        "GeV^2, GeV rad, rad^2",
        "measurement covariance (float32), packed (EE, Etheta, Ephi, thetatheta, thetaphi, phiphi)",
    ),
    "photon_true_E": Branch("float64", (3,), "GeV", "true energy of the cluster"),
    "photon_true_theta": Branch("float64", (3,), "rad", "true polar angle of the cluster position seen from the IP"),
    "photon_true_phi": Branch("float64", (3,), "rad", "true azimuth of the cluster position seen from the IP"),
    "photon_origin": Branch(
        "int32",
        (3,),
        "",
        "0 beam background, 1 prompt photon, 2 resonance daughter, 3 both daughters merged, 4 other merged, "
        "5 electron or positron without a track",
    ),
}

#: Branches every downstream stage needs to reconstruct photons.
PHOTON_BRANCHES = ("photon_E", "photon_theta", "photon_phi", "photon_cov")


def diphoton_masses(energy: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The three diphoton masses of each event, columns in :data:`PAIRS` order, shape (n, 3)."""
    photons = photon_four_vectors(energy, theta, phi)
    return np.stack([invariant_mass(photons[:, i] + photons[:, j]) for i, j in PAIRS], axis=1)


def truth_matched_pairs(origin: np.ndarray) -> np.ndarray:
    """(n, 3) mask of the pairs made of the two resonance daughters (:data:`ORIGIN_DAUGHTER`)."""
    daughter = origin == ORIGIN_DAUGHTER
    return np.stack([daughter[:, i] & daughter[:, j] for i, j in PAIRS], axis=1)


def branch_table_markdown(branches: Mapping[str, Branch] = BRANCHES) -> str:
    """A branch schema as a Markdown table (rendered into docs/ntuple.md)."""
    lines = ["| branch | type | unit | content |", "| --- | --- | --- | --- |"]
    for name, branch in branches.items():
        shape = "".join(f"[{n}]" for n in branch.shape)
        lines.append(f"| `{name}` | `{branch.dtype}{shape}` | {branch.unit} | {branch.description} |")
    return "\n".join(lines)


@functools.cache
def _compression():
    """ZSTD compression whose frames carry zstd's content checksum (XXH64).

    uproot's own ZSTD frames have none, and LZ4, whose ROOT blocks do, leaves the float
    branches uncompressed (and so unchecked): with this, a flipped byte in any compressed
    basket fails when read. ROOT and uproot read these frames as any ZSTD basket.
    """
    import uproot
    import zstandard

    class ChecksummedZSTD(uproot.ZSTD):
        def compress(self, data) -> bytes:
            return zstandard.ZstdCompressor(level=self.level, write_checksum=True).compress(data)

        @property
        def code_pair(self) -> tuple[int, int]:
            return uproot.const.kZSTD, self.level

    return ChecksummedZSTD(COMPRESSION_LEVEL)


#: What every ntuple bumphunt writes says of itself: its tree's title, near the file's start.
_OWN_TITLE = b"bumphunt ntuple v"


def written_by_bumphunt(path: str | Path) -> bool:
    """Whether the ROOT file at ``path`` is an ntuple bumphunt wrote (its tree's title, stored
    uncompressed in the file's first kilobytes, even where the rest is damaged)."""
    with open(path, "rb") as handle:
        return _OWN_TITLE in handle.read(1 << 16)


def refuse_foreign_file(path: str | Path) -> None:
    """Raise NtupleError when a file that bumphunt did not write stands at ``path``: a stage
    never overwrites or deletes the analyst's own files."""
    path = Path(path)
    if path.is_file() and not written_by_bumphunt(path):
        raise NtupleError(
            f"{path}: a file bumphunt did not write is in the way (a stage never overwrites one); "
            "move it, or point the analysis at it as a sample"
        )


class NtupleWriter:
    """Write events chunk by chunk to a ROOT file, atomically.

    Use as a context manager: the file appears at ``path`` only when the block ends without
    an exception; set :attr:`metadata` (a JSON-serialisable dict) before it ends. Baskets are
    ZSTD-compressed with a checksum (a basket that does not shrink is stored as it is, as
    ROOT does, and so unchecked; the branches of bumphunt's samples all shrink).

    A full disk, an exceeded quota, a denied permission or a read-only disk while writing
    raises :class:`~bumphunt.errors.BumphuntError` naming ``path``
    (:func:`bumphunt._io.write_error`); the temporary file is removed and ``path`` is left as
    it was.

    Parameters
    ----------
    path : str or Path
    branches : mapping of str to Branch
        The schema; every chunk must provide exactly these branches.
    """

    def __init__(self, path: str | Path, branches: Mapping[str, Branch] = BRANCHES):
        self.path = Path(path)
        self.branches = dict(branches)
        self.metadata: dict = {}
        self.entries = 0
        self._tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._file = None

    def __enter__(self) -> NtupleWriter:
        import uproot

        refuse_foreign_file(self.path)
        with self._writing():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = uproot.recreate(self._tmp_path, compression=_compression())
            self._file.mktree(
                TREE_NAME,
                {name: (b.dtype, b.shape) if b.shape else b.dtype for name, b in self.branches.items()},
                title=f"bumphunt ntuple v{NTUPLE_VERSION}",
            )
        return self

    def extend(self, chunk: Mapping[str, np.ndarray]) -> None:
        """Append a chunk of events: a mapping of branch name to array."""
        missing = set(self.branches) - set(chunk)
        extra = set(chunk) - set(self.branches)
        if missing or extra:
            raise ValueError(f"chunk branches differ from the schema: missing {sorted(missing)}, extra {sorted(extra)}")
        arrays = {}
        lengths = set()
        for name, branch in self.branches.items():
            array = np.ascontiguousarray(chunk[name], dtype=branch.dtype)
            if array.shape[1:] != branch.shape:
                raise ValueError(f"branch {name}: shape {array.shape[1:]} per event, expected {branch.shape}")
            arrays[name] = array
            lengths.add(len(array))
        if len(lengths) != 1:
            raise ValueError(f"branches of one chunk have different lengths {sorted(lengths)}")
        n_events = lengths.pop()
        if n_events == 0:
            return
        with self._writing():
            self._file[TREE_NAME].extend(arrays)
        self.entries += n_events

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._file is None:  # a write failed, and the temporary file is gone already
            return
        if exc_type is not None:
            self._abandon()
            return
        with self._writing():
            try:
                self._file[METADATA_NAME] = json.dumps({"ntuple_version": NTUPLE_VERSION, **self.metadata})
            finally:
                file, self._file = self._file, None
                file.close()
            os.replace(self._tmp_path, self.path)

    @contextmanager
    def _writing(self):
        """A block that writes the file: any exception abandons it (:func:`bumphunt._io.writing`)."""
        try:
            with writing(self.path, self._tmp_path):
                yield
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Close the temporary file, whatever state it is in, and remove it."""
        file, self._file = self._file, None
        with suppress(Exception):  # a full disk fails the close too; the file goes anyway
            if file is not None:
                file.close()
        with suppress(OSError):
            self._tmp_path.unlink(missing_ok=True)


#: What to do about a damaged file, the end of its message.
_REMEDY = "copy it again or rerun the stage that wrote it"


def _root_file_end(path: Path) -> int | None:
    """The file size a ROOT file's header records (``fEND``), None if it has no ROOT header."""
    with open(path, "rb") as file:
        header = file.read(20)
    if len(header) < 16 or header[:4] != b"root":
        return None
    version = struct.unpack(">i", header[4:8])[0]
    if version >= 1_000_000:  # files above 2 GB: 64-bit pointers
        return struct.unpack(">q", header[12:20])[0] if len(header) == 20 else None
    return struct.unpack(">i", header[12:16])[0]


def _open_file(path: Path):
    """The open ROOT file; NtupleError when it is missing, not ROOT, or shorter than written."""
    import uproot

    if not path.is_file():
        raise NtupleError(f"{path}: no such file")
    end, size = _root_file_end(path), path.stat().st_size
    if end is not None and size < end:
        raise NtupleError(f"{path}: truncated ROOT file ({size} of {end} bytes); {_REMEDY}")
    try:
        return uproot.open(path)
    except Exception as error:  # uproot raises several types for a file that is not ROOT
        raise NtupleError(f"{path}: not a readable ROOT file ({type(error).__name__})") from None


@contextmanager
def _decoding(path: Path, tree: str = TREE_NAME, branches: Sequence[str] = ()):
    """Whatever uproot or a decompressor raises on damaged bytes, as an NtupleError naming the
    file and, when one of ``branches`` has a basket that does not decode, the branch.

    Damaged bytes can make uproot raise almost anything (a checksum ValueError, a
    decompressor's error, OSError, struct or index errors on garbled headers), so every
    exception but MemoryError is taken for damage; the original stays chained.
    """
    try:
        yield
    except (NtupleError, MemoryError):
        raise
    except Exception as error:
        branch = _damaged_branch(path, tree, branches)
        if branch is not None:
            reason = f"in branch '{branch}' (a compressed block fails its checksum or does not decompress)"
        else:
            first_line = (str(error).strip().splitlines() or [""])[0]
            reason = f"({type(error).__name__}{': ' + first_line if first_line else ''})"
        raise NtupleError(f"{path}: corrupted data {reason}; {_REMEDY}") from error


def _damaged_branch(path: Path, tree: str, branches: Sequence[str]) -> str | None:
    """The first of ``branches`` with a basket that fails to read, decompressed one at a time."""
    import uproot

    try:
        with uproot.open(path) as file:
            ttree = file[tree]
            for name in branches:
                branch = ttree[name]
                for index in range(branch.num_baskets):
                    try:
                        branch.basket(index)
                    except Exception:
                        return name
    except Exception:
        return None
    return None


def _open_tree(path: str | Path, tree: str):
    path = Path(path)
    file = _open_file(path)
    if tree not in file:
        file.close()
        raise NtupleError(f"{path}: no tree '{tree}' (found: {', '.join(file.keys(cycle=False)) or 'nothing'})")
    try:
        with _decoding(path, tree):
            return file, file[tree]
    except NtupleError:
        file.close()
        raise


def _checked_branches(path, ttree, branches: Sequence[str] | None) -> list[str]:
    available = set(ttree.keys())
    wanted = list(ttree.keys()) if branches is None else list(branches)
    missing = [b for b in wanted if b not in available]
    if missing:
        raise NtupleError(f"{path}: tree '{ttree.name}' lacks branch(es) {', '.join(missing)}")
    return wanted


def read_ntuple(
    path: str | Path,
    branches: Sequence[str] | None = None,
    *,
    tree: str = TREE_NAME,
    friends: Sequence = (),
    luminosity: float | None = None,
) -> dict[str, np.ndarray]:
    """Read branches of a tree into numpy arrays.

    Parameters
    ----------
    path : str or Path
    branches : sequence of str, optional
        Branches to read; all of ``path`` and of the ntuple it extends when None.
    tree : str
        Tree name.
    friends : sequence of paths
        Friend ntuples (the same events, more branches, e.g. the selection's score): a branch
        that ``path`` lacks is read from the first friend holding it, then from the ntuple
        ``path`` extends (:func:`base_ntuple`: the kinematic fit's output extends the
        simulated events). A friend made from another version of ``path`` is an error.
    luminosity : float, optional
        Integrated luminosity (pb^-1) the ``weight`` branch is brought to
        (:func:`luminosity_scale`); as stored when None.

    Raises
    ------
    NtupleError
        The file, the tree or a requested branch does not exist, or the file is truncated
        or corrupted.
    """
    extends = _extends(path)
    if friends or extends[0] is not None:
        parts = _friend_parts(path, branches, friends, tree, extends)
        values = {name: array for part, names in parts for name, array in _read_own(part, names, tree).items()}
    else:
        values = _read_own(path, branches, tree)
    return _at_luminosity(values, path, luminosity)


def _read_own(path, branches, tree) -> dict[str, np.ndarray]:
    file, ttree = _open_tree(path, tree)
    with file:
        wanted = _checked_branches(path, ttree, branches)
        with _decoding(Path(path), tree, wanted):
            return ttree.arrays(wanted, library="np")


def iterate_ntuple(
    path: str | Path,
    branches: Sequence[str] | None = None,
    *,
    step_size: int | str = 200_000,
    tree: str = TREE_NAME,
    friends: Sequence = (),
    luminosity: float | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Read a tree in chunks of ``step_size`` entries (or bytes, e.g. ``"100 MB"``), bounded memory.

    Raises the same errors as :func:`read_ntuple`: when called for a missing or truncated
    file, tree or branch, when iterated for corrupted data. ``friends`` and ``luminosity`` as
    in :func:`read_ntuple` (``step_size`` then counts entries).
    """
    scale = 1.0 if luminosity is None else luminosity_scale(path, luminosity)
    extends = _extends(path)
    if friends or extends[0] is not None:
        if not isinstance(step_size, int):
            raise ValueError("reading with friend ntuples needs a step size in entries")
        parts = _friend_parts(path, branches, friends, tree, extends)
        chunks = _iterate_together(parts, tree, step_size)
    else:
        chunks = _iterate(path, tree, _own_branches(path, branches, tree), step_size)
    return chunks if scale == 1.0 else (_scaled(chunk, scale) for chunk in chunks)


def read_selected(
    path: str | Path,
    branches: Sequence[str],
    selection: str = "",
    *,
    friends: Sequence = (),
    step_size: int = 500_000,
    luminosity: float | None = None,
) -> dict[str, np.ndarray]:
    """``branches`` of the events passing the cut ``selection`` (:mod:`bumphunt.cuts`), read in
    chunks of ``step_size`` entries so that only the passing events are held in memory.

    Raises the errors of :func:`read_ntuple`; ``friends`` and ``luminosity`` as there. A tree
    without entries gives empty one-dimensional arrays.
    """
    needed = sorted(set(branches) | branches_used(selection))
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in branches}
    for chunk in iterate_ntuple(path, needed, step_size=step_size, friends=friends, luminosity=luminosity):
        keep = evaluate_cut(selection, chunk, len(chunk[needed[0]]))
        for name in branches:
            pieces[name].append(chunk[name][keep])
    return {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in pieces.items()}


def luminosity_scale(path: str | Path, luminosity: float) -> float:
    """The factor that brings the ``weight`` branch of ``path`` to ``luminosity`` (pb^-1).

    Weights are expected events at the luminosity the ntuple was written at (its metadata's
    ``luminosity_pb_inv``), so a luminosity change needs no new simulation; a data ntuple
    (``role: data``) keeps its weights.

    Raises
    ------
    NtupleError
        The ntuple records no luminosity (not written by bumphunt), or ``luminosity`` is not > 0.
    """
    if not luminosity > 0.0:
        raise NtupleError(f"{path}: weights cannot be brought to a luminosity of {luminosity} pb^-1 (must be > 0)")
    metadata = read_metadata(path)
    if metadata.get("role") == "data":
        return 1.0
    purpose = f"its weights cannot be brought to {luminosity} pb^-1"
    return float(luminosity) / written_luminosity(path, metadata, purpose=purpose)


def written_luminosity(path: str | Path, metadata: dict | None = None, *, purpose: str = "") -> float:
    """The luminosity (pb^-1) the weights of ``path`` were written at (metadata ``luminosity_pb_inv``).

    Raises
    ------
    NtupleError
        The metadata record none (naming ``purpose``, what needed it).
    """
    metadata = read_metadata(path) if metadata is None else metadata
    written = metadata.get("luminosity_pb_inv")
    if not isinstance(written, (int, float)) or not written > 0.0:
        raise NtupleError(f"{path}: its metadata give no luminosity_pb_inv" + (f", so {purpose}" if purpose else ""))
    return float(written)


def _at_luminosity(values: dict[str, np.ndarray], path, luminosity: float | None) -> dict[str, np.ndarray]:
    if luminosity is None or "weight" not in values:
        return values
    return _scaled(values, luminosity_scale(path, luminosity))


def _scaled(values: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    if scale == 1.0 or "weight" not in values:
        return values
    return {**values, "weight": values["weight"] * scale}


def _iterate_together(parts, tree, step_size):
    iterators = [_iterate(part, tree, names, step_size) for part, names in parts]
    for chunks in zip(*iterators, strict=True):
        if len({len(next(iter(c.values()))) for c in chunks if c}) > 1:
            raise NtupleError(f"{parts[0][0]}: a friend ntuple's chunks do not line up with it")
        yield {name: array for chunk in chunks for name, array in chunk.items()}


def friend_fingerprint(path: str | Path) -> dict:
    """What identifies an ntuple for the friends made from it: entries, size and a hash of its
    metadata (so an identical rerun keeps its friends, a changed input invalidates them)."""
    path = Path(path)
    with _open_file(path) as file:
        metadata = str(file[METADATA_NAME]) if METADATA_NAME in file else ""
    digest = hashlib.sha256(metadata.encode()).hexdigest()
    return {"file": path.name, "entries": num_entries(path), "size": path.stat().st_size, "metadata_sha256": digest}


def base_ntuple(path: str | Path) -> Path | None:
    """The ntuple whose events ``path`` extends with branches of its own (the kinematic fit's
    output extends the simulated ntuple), from its metadata's :data:`BASE_KEY` (relative to
    the real location of ``path``, links followed); None for a complete ntuple, or one that
    cannot be read (its readers say why)."""
    return _extends(path)[0]


def _extends(path) -> tuple[Path | None, dict | None]:
    """:func:`base_ntuple` and the base's fingerprint that ``path`` was made from, read at once."""
    try:
        metadata = read_metadata(path)
    except NtupleError:
        return None, None
    base = metadata.get(BASE_KEY)
    if not base:
        return None, None
    return Path(os.path.normpath(Path(path).resolve().parent / base)), metadata.get("friend_of")


def _friend_parts(path, branches, friends, tree, extends=None) -> list[tuple[Path, list[str]]]:
    """Which file each requested branch is read from: ``path`` first, then the friends in
    order, then the ntuple ``path`` extends (:func:`base_ntuple`) and its own base.

    A friend is an ntuple whose metadata ``friend_of`` holds :func:`friend_fingerprint` of
    ``path``: the same events in the same order, with more branches. An ntuple that extends
    a base holds the base's fingerprint in its own ``friend_of``. ``extends``: :func:`_extends`
    of ``path`` when the caller has it.
    """
    own = _own_branches(path, None, tree)
    base, origin = extends if extends is not None else _extends(path)
    base_parts = []
    if base is not None:
        if not base.is_file():
            raise NtupleError(f"{path} extends {base}, which does not exist: rerun the stage that wrote {path}")
        if origin != friend_fingerprint(base):
            raise NtupleError(f"{path} was made from another version of {base}: rerun the stage that wrote it")
        base_parts = _friend_parts(base, None, (), tree)
    base_branches = [name for _, names in base_parts for name in names]
    if branches is not None:
        wanted = list(branches)
    else:
        wanted = own + [b for b in base_branches if b not in own]
    parts = [(Path(path), [b for b in wanted if b in own])]
    missing = [b for b in wanted if b not in own]
    fingerprint = None
    for friend in friends:
        if not missing:
            break
        names = [b for b in missing if b in _own_branches(friend, None, tree)]
        if not names:
            continue
        fingerprint = fingerprint or friend_fingerprint(path)
        if read_metadata(friend).get("friend_of") != fingerprint:
            raise NtupleError(f"{friend} was made from another version of {path}: rerun the stage that wrote it")
        parts.append((Path(friend), names))
        missing = [b for b in missing if b not in names]
    for part, names in base_parts:
        parts.append((part, [b for b in missing if b in names]))
        missing = [b for b in missing if b not in names]
    if missing:
        searched = ", ".join(str(f) for f in (*friends, *([base] if base else [])))
        message = f"{path}: tree '{tree}' lacks branch(es) {', '.join(missing)}"
        raise NtupleError(f"{message} (nor do its friends {searched})" if searched else message)
    return [(part, names) for part, names in parts if names]


def _iterate(path, tree, branches, step_size):
    import uproot

    with _decoding(Path(path), tree, branches):
        yield from uproot.iterate({str(path): tree}, branches, step_size=step_size, library="np")


def check_branches(path: str | Path, branches: Sequence[str] | None, *, tree: str = TREE_NAME) -> list[str]:
    """The requested branches (all when None) after checking that the file has them.

    Raises
    ------
    NtupleError
        The file, the tree or a branch does not exist.
    """
    extends = _extends(path)
    if extends[0] is not None:
        found = [name for _, names in _friend_parts(path, branches, (), tree, extends) for name in names]
        return found if branches is None else list(branches)
    return _own_branches(path, branches, tree)


def _own_branches(path, branches, tree) -> list[str]:
    """The requested branches (all when None) of the file itself, checked."""
    file, ttree = _open_tree(path, tree)
    with file:
        return _checked_branches(path, ttree, branches)


def num_entries(path: str | Path, *, tree: str = TREE_NAME) -> int:
    """Number of events in a tree."""
    file, ttree = _open_tree(path, tree)
    with file:
        return int(ttree.num_entries)


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata written with an ntuple."""
    path = Path(path)
    with _open_file(path) as file:
        if METADATA_NAME not in file:
            raise NtupleError(f"{path}: no '{METADATA_NAME}' object (not written by bumphunt?)")
        with _decoding(path):
            return json.loads(str(file[METADATA_NAME]))
