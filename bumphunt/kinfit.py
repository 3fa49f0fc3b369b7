"""Kinematic fit of the photons to the beam four-momentum (4C, Lagrange multipliers).

Each photon is parameterised by alpha_i = (E_i, theta_i, phi_i) with measured values alpha0
and a 3x3 covariance; the constraints H(alpha) = sum_i p_i(alpha) - P_beam = 0 are
linearised at the current estimate alpha_A and the fit iterates [Avery, "Applied fitting
theory"]:

    D = dH/dalpha,  r = D (alpha0 - alpha_A) + H(alpha_A),  S = D V0 D^T,
    lambda = S^-1 r,  alpha = alpha0 - V0 D^T lambda,  chi2 = lambda . r,

until the constraints hold to ``constraint_tolerance`` and chi2 changes by less than
``chi2_tolerance``. Then V_alpha = V0 - V0 D^T S^-1 D V0 and the pulls are
(alpha0 - alpha)_i / sqrt((V0 - V_alpha)_ii); ndf = 4 and the p-value is that of chi2(4).

The core is a numba kernel, parallel over events; :func:`fit_photons` checks shapes and
dtypes. Events that cannot be fitted get a :class:`FitStatus` code and NaN outputs.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import writable_folder
from ._jit import jit, jit_parallel, prange
from ._parallel import call, check_worker_access, dask_scheduler, executor, ordered_map
from ._progress import progress_bar
from ._version import __version__
from .errors import NtupleError
from .kinematics import Beams
from .layout import OutputLayout
from .ntuple import (
    BASE_KEY,
    BRANCHES,
    NTUPLE_VERSION,
    PHOTON_BRANCHES,
    SAMPLES,
    Branch,
    NtupleWriter,
    diphoton_masses,
    friend_fingerprint,
    iterate_ntuple,
    num_entries,
    read_metadata,
)
from .samples import Sample, analysis_samples, generated_events, read_sample, signal_metadata, user_samples

NDF = 4
_N_PHOTONS = 3
_N_PARAMETERS = 3 * _N_PHOTONS
_BLOCK = 256  # events per scratch allocation in the parallel loop
_PACKED_INDEX = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # packed covariance order


class FitStatus(enum.IntEnum):
    """Outcome of the fit of one event (branch ``fit_status``)."""

    CONVERGED = 0
    NOT_CONVERGED = 1  #: no convergence within the allowed iterations
    INVALID_INPUT = 2  #: NaN or infinite measurement or covariance
    NON_POSITIVE_ENERGY = 3  #: a measured energy <= 0
    BAD_COVARIANCE = 4  #: a photon covariance that is not symmetric positive definite
    FAILED = 5  #: singular constraint matrix or a fitted energy <= 0 during the iterations


@dataclass(frozen=True)
class KinematicFitResult:
    """Fit results of n events (NaN where ``status`` is not CONVERGED).

    Attributes
    ----------
    energy, theta, phi : array (n, 3)
        Fitted photon parameters.
    photon_covariance : array (n, 3, 6)
        Covariance of each fitted photon's (E, theta, phi), packed like the input
        (:data:`bumphunt.simulation.detector.COVARIANCE_ELEMENTS`).
    covariance : array (n, 9, 9) or None
        Full covariance of the fitted parameters (E1, theta1, phi1, E2, ...), correlations
        between photons included; only when requested with ``full_covariance=True``.
    chi2, pvalue : array (n,)
    ndf : int
        4 constraints.
    iterations : array (n,) of int32
    status : array (n,) of int32
        :class:`FitStatus` codes.
    pulls : array (n, 9)
        (measured - fitted) / sqrt(V_measured - V_fitted), ordered like ``covariance``.
    """

    energy: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    photon_covariance: np.ndarray
    covariance: np.ndarray | None
    chi2: np.ndarray
    pvalue: np.ndarray
    ndf: int
    iterations: np.ndarray
    status: np.ndarray
    pulls: np.ndarray

    @property
    def converged(self) -> np.ndarray:
        """Mask of converged fits."""
        return self.status == FitStatus.CONVERGED


@jit
def _cholesky4_solve(s, rhs, chol):
    """Cholesky-factorise the 4x4 matrix ``s`` into ``chol`` and solve s x = rhs in place.

    Returns False when ``s`` is not positive definite.
    """
    for i in range(4):
        for j in range(i + 1):
            total = s[i, j]
            for k in range(j):
                total -= chol[i, k] * chol[j, k]
            if i == j:
                if total <= 0.0:
                    return False
                chol[i, i] = np.sqrt(total)
            else:
                chol[i, j] = total / chol[j, j]
    for col in range(rhs.shape[1]):
        for i in range(4):
            total = rhs[i, col]
            for k in range(i):
                total -= chol[i, k] * rhs[k, col]
            rhs[i, col] = total / chol[i, i]
        for i in range(3, -1, -1):
            total = rhs[i, col]
            for k in range(i + 1, 4):
                total -= chol[k, i] * rhs[k, col]
            rhs[i, col] = total / chol[i, i]
    return True


@jit
def _block_is_positive_definite(v):
    """3x3 symmetric positive definiteness by Sylvester's criterion."""
    if not (v[0, 1] == v[1, 0] and v[0, 2] == v[2, 0] and v[1, 2] == v[2, 1]):
        return False
    m1 = v[0, 0]
    m2 = v[0, 0] * v[1, 1] - v[0, 1] * v[1, 0]
    m3 = (
        v[0, 0] * (v[1, 1] * v[2, 2] - v[1, 2] * v[2, 1])
        - v[0, 1] * (v[1, 0] * v[2, 2] - v[1, 2] * v[2, 0])
        + v[0, 2] * (v[1, 0] * v[2, 1] - v[1, 1] * v[2, 0])
    )
    return m1 > 0.0 and m2 > 0.0 and m3 > 0.0


@jit
def _shifted_sin_cos(sin_x, cos_x, delta, x_new):
    """sin and cos of x + delta from those of x: a Taylor series for the small steps of the
    fit (error < 1e-17 below |delta| = 0.01), the library functions otherwise."""
    if abs(delta) > 0.01:
        return np.sin(x_new), np.cos(x_new)
    d2 = delta * delta
    sin_d = delta * (1.0 - d2 / 6.0 * (1.0 - d2 / 20.0 * (1.0 - d2 / 42.0)))
    cos_d = 1.0 - d2 / 2.0 * (1.0 - d2 / 12.0 * (1.0 - d2 / 30.0))
    return sin_x * cos_d + cos_x * sin_d, cos_x * cos_d - sin_x * sin_d


@jit
def _fit_one(
    measured, cov, beam, max_iterations, constraint_tolerance, chi2_tolerance,
    fitted, fitted_cov, pulls, d, b, s, chol, rhs, trig,
):  # fmt: skip
    """Fit one event; returns (status, chi2, iterations). Scratch: d (4, 9), b (4, 9),
    s (4, 4), chol (4, 4), rhs (4, 10), trig (4, 3). ``cov`` is (3, 3, 3): one block per photon."""
    for m in range(_N_PARAMETERS):
        if not np.isfinite(measured[m]):
            return FitStatus.INVALID_INPUT, np.nan, 0
    for p in range(_N_PHOTONS):
        for i in range(3):
            for j in range(3):
                if not np.isfinite(cov[p, i, j]):
                    return FitStatus.INVALID_INPUT, np.nan, 0
    for p in range(_N_PHOTONS):
        if measured[3 * p] <= 0.0:
            return FitStatus.NON_POSITIVE_ENERGY, np.nan, 0
        if not _block_is_positive_definite(cov[p]):
            return FitStatus.BAD_COVARIANCE, np.nan, 0

    for m in range(_N_PARAMETERS):
        fitted[m] = measured[m]
    for p in range(_N_PHOTONS):
        trig[0, p] = np.sin(fitted[3 * p + 1])
        trig[1, p] = np.cos(fitted[3 * p + 1])
        trig[2, p] = np.sin(fitted[3 * p + 2])
        trig[3, p] = np.cos(fitted[3 * p + 2])
    chi2_previous = np.inf
    chi2 = np.nan
    for iteration in range(max_iterations + 1):
        # constraints H and their derivatives D at the current estimate; H[0] is the energy
        h0 = -beam[0]
        h1 = -beam[1]
        h2 = -beam[2]
        h3 = -beam[3]
        for p in range(_N_PHOTONS):
            energy = fitted[3 * p]
            sin_t = trig[0, p]
            cos_t = trig[1, p]
            sin_p = trig[2, p]
            cos_p = trig[3, p]
            h0 += energy
            h1 += energy * sin_t * cos_p
            h2 += energy * sin_t * sin_p
            h3 += energy * cos_t
            c = 3 * p
            d[0, c] = 1.0
            d[1, c] = sin_t * cos_p
            d[2, c] = sin_t * sin_p
            d[3, c] = cos_t
            d[0, c + 1] = 0.0
            d[1, c + 1] = energy * cos_t * cos_p
            d[2, c + 1] = energy * cos_t * sin_p
            d[3, c + 1] = -energy * sin_t
            d[0, c + 2] = 0.0
            d[1, c + 2] = -energy * sin_t * sin_p
            d[2, c + 2] = energy * sin_t * cos_p
            d[3, c + 2] = 0.0
        # b = D V0 (block diagonal V0), s = D V0 D^T, rhs[:, 0] = r = D (alpha0 - alpha) + H
        for k in range(4):
            for p in range(_N_PHOTONS):
                for j in range(3):
                    total = 0.0
                    for i in range(3):
                        total += d[k, 3 * p + i] * cov[p, i, j]
                    b[k, 3 * p + j] = total
        for k in range(4):
            for l in range(k + 1):  # noqa: E741
                total = 0.0
                for m in range(_N_PARAMETERS):
                    total += b[k, m] * d[l, m]
                s[k, l] = total
                s[l, k] = total
        rhs[0, 0] = h0
        rhs[1, 0] = h1
        rhs[2, 0] = h2
        rhs[3, 0] = h3
        for k in range(4):
            total = rhs[k, 0]
            for m in range(_N_PARAMETERS):
                total += d[k, m] * (measured[m] - fitted[m])
            rhs[k, 0] = total
        r0, r1, r2, r3 = rhs[0, 0], rhs[1, 0], rhs[2, 0], rhs[3, 0]
        for k in range(4):
            for m in range(_N_PARAMETERS):
                rhs[k, m + 1] = b[k, m]
        if not _cholesky4_solve(s, rhs[:, :1], chol):
            return FitStatus.FAILED, np.nan, iteration
        chi2 = rhs[0, 0] * r0 + rhs[1, 0] * r1 + rhs[2, 0] * r2 + rhs[3, 0] * r3
        max_h = max(abs(h0), abs(h1), abs(h2), abs(h3))
        if iteration > 0 and max_h < constraint_tolerance and abs(chi2 - chi2_previous) < chi2_tolerance:
            # converged: take the last (tiny) step, then covariance V0 - B^T S^-1 B
            for m in range(_N_PARAMETERS):
                total = 0.0
                for k in range(4):
                    total += b[k, m] * rhs[k, 0]
                fitted[m] = measured[m] - total
            _cholesky4_solve(s, rhs[:, 1:], chol)
            for m in range(_N_PARAMETERS):
                for n in range(m + 1):
                    total = 0.0
                    for k in range(4):
                        total += b[k, m] * rhs[k, n + 1]
                    pm, pn = m // 3, n // 3
                    v0 = cov[pm, m % 3, n % 3] if pm == pn else 0.0
                    fitted_cov[m, n] = v0 - total
                    fitted_cov[n, m] = v0 - total
                    if m == n:
                        pulls[m] = (measured[m] - fitted[m]) / np.sqrt(total) if total > 0.0 else np.nan
            return FitStatus.CONVERGED, chi2, iteration
        if iteration == max_iterations:
            break
        for m in range(_N_PARAMETERS):
            total = 0.0
            for k in range(4):
                total += b[k, m] * rhs[k, 0]
            updated = measured[m] - total
            if m % 3 != 0:  # angles: move sin and cos along with the update
                row = 2 * (m % 3) - 2
                trig[row, m // 3], trig[row + 1, m // 3] = _shifted_sin_cos(
                    trig[row, m // 3], trig[row + 1, m // 3], updated - fitted[m], updated
                )
            fitted[m] = updated
        for p in range(_N_PHOTONS):
            if not fitted[3 * p] > 0.0:
                return FitStatus.FAILED, np.nan, iteration + 1
        chi2_previous = chi2
    return FitStatus.NOT_CONVERGED, chi2, max_iterations


@jit_parallel
def _fit_events(
    energy, theta, phi, packed_cov, beam, max_iterations, constraint_tolerance, chi2_tolerance, want_full_cov,
    fit_energy, fit_theta, fit_phi, photon_cov, full_cov, pulls, chi2, pvalue, iterations, status,
):  # fmt: skip
    n = energy.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for block in prange(n_blocks):
        measured = np.empty(_N_PARAMETERS)
        fitted = np.empty(_N_PARAMETERS)
        cov = np.empty((_N_PHOTONS, 3, 3))
        event_cov = np.empty((_N_PARAMETERS, _N_PARAMETERS))
        event_pulls = np.empty(_N_PARAMETERS)
        d = np.empty((4, _N_PARAMETERS))
        b = np.empty((4, _N_PARAMETERS))
        s = np.empty((4, 4))
        chol = np.zeros((4, 4))
        rhs = np.empty((4, _N_PARAMETERS + 1))
        trig = np.empty((4, _N_PHOTONS))
        for event in range(block * _BLOCK, min(n, (block + 1) * _BLOCK)):
            for p in range(_N_PHOTONS):
                measured[3 * p] = energy[event, p]
                measured[3 * p + 1] = theta[event, p]
                measured[3 * p + 2] = phi[event, p]
                for k in range(6):
                    i, j = _PACKED_INDEX[k]
                    cov[p, i, j] = packed_cov[event, p, k]
                    cov[p, j, i] = packed_cov[event, p, k]
            code, value, n_iter = _fit_one(
                measured, cov, beam[event], max_iterations, constraint_tolerance, chi2_tolerance,
                fitted, event_cov, event_pulls, d, b, s, chol, rhs, trig,
            )  # fmt: skip
            status[event] = code
            iterations[event] = n_iter
            ok = code == FitStatus.CONVERGED
            chi2[event] = value if ok else np.nan
            pvalue[event] = np.exp(-value / 2.0) * (1.0 + value / 2.0) if ok else np.nan
            for p in range(_N_PHOTONS):
                fit_energy[event, p] = fitted[3 * p] if ok else np.nan
                fit_theta[event, p] = fitted[3 * p + 1] if ok else np.nan
                fit_phi[event, p] = fitted[3 * p + 2] if ok else np.nan
                for k in range(6):
                    i, j = _PACKED_INDEX[k]
                    photon_cov[event, p, k] = event_cov[3 * p + i, 3 * p + j] if ok else np.nan
            for m in range(_N_PARAMETERS):
                pulls[event, m] = event_pulls[m] if ok else np.nan
            if want_full_cov:
                for m in range(_N_PARAMETERS):
                    for k in range(_N_PARAMETERS):
                        full_cov[event, m, k] = event_cov[m, k] if ok else np.nan


def fit_photons(
    energy: np.ndarray,
    theta: np.ndarray,
    phi: np.ndarray,
    covariance: np.ndarray,
    beam: np.ndarray,
    *,
    full_covariance: bool = False,
    max_iterations: int = 20,
    constraint_tolerance: float = 1e-9,
    chi2_tolerance: float = 1e-7,
) -> KinematicFitResult:
    """Fit three photons per event to the beam four-momentum.

    Parameters
    ----------
    energy, theta, phi : array (n, 3)
        Measured photon energies (GeV) and lab angles (rad).
    covariance : array (n, 3, 6)
        Per-photon covariance of (E, theta, phi), packed as in the ntuples
        (:data:`bumphunt.simulation.detector.COVARIANCE_ELEMENTS`); float32 or float64.
    beam : array (4,) or (n, 4)
        Beam four-momentum (E, px, py, pz) in GeV, e.g. ``Beams().four_momentum``, or one
        per event (runs at other beam energies).
    full_covariance : bool
        Also return the full 9x9 covariance of every event (648 bytes per event).
    max_iterations : int
        Iterations before an event is declared NOT_CONVERGED.
    constraint_tolerance : float
        Largest allowed |H| component at convergence (GeV).
    chi2_tolerance : float
        Largest change of chi2 between the last two iterations at convergence.

    Returns
    -------
    KinematicFitResult
    """
    energy, theta, phi = (np.ascontiguousarray(a, dtype=np.float64) for a in (energy, theta, phi))
    if energy.ndim != 2 or energy.shape[1] != _N_PHOTONS or not energy.shape == theta.shape == phi.shape:
        shapes = f"{energy.shape}, {theta.shape}, {phi.shape}"
        raise ValueError(f"energy, theta and phi must have shape (n, 3), got {shapes}")
    n = len(energy)
    covariance = np.asarray(covariance)
    if covariance.shape != (n, _N_PHOTONS, 6):
        raise ValueError(f"covariance must have the packed shape (n, 3, 6), got {covariance.shape}")
    if covariance.dtype not in (np.float32, np.float64):
        covariance = covariance.astype(np.float64)
    covariance = np.ascontiguousarray(covariance)
    beam = np.asarray(beam, dtype=np.float64)
    if beam.shape not in ((4,), (n, 4)):
        raise ValueError(f"beam must be a four-vector (E, px, py, pz) or one per event, (n, 4), got shape {beam.shape}")
    beam = np.ascontiguousarray(np.broadcast_to(beam, (n, 4)))
    if max_iterations < 1:
        raise ValueError("max_iterations must be at least 1")

    fit_energy, fit_theta, fit_phi = (np.empty((n, _N_PHOTONS)) for _ in range(3))
    photon_cov = np.empty((n, _N_PHOTONS, 6))
    full_cov = np.empty((n if full_covariance else 0, _N_PARAMETERS, _N_PARAMETERS))
    pulls = np.empty((n, _N_PARAMETERS))
    chi2, pvalue = np.empty(n), np.empty(n)
    iterations, status = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
    _fit_events(
        energy, theta, phi, covariance, beam, max_iterations, constraint_tolerance, chi2_tolerance, full_covariance,
        fit_energy, fit_theta, fit_phi, photon_cov, full_cov, pulls, chi2, pvalue, iterations, status,
    )  # fmt: skip
    return KinematicFitResult(
        energy=fit_energy,
        theta=fit_theta,
        phi=fit_phi,
        photon_covariance=photon_cov,
        covariance=full_cov if full_covariance else None,
        chi2=chi2,
        pvalue=pvalue,
        ndf=NDF,
        iterations=iterations,
        status=status,
        pulls=pulls,
    )


def chi2_pvalue_ndf4(chi2: np.ndarray) -> np.ndarray:
    """Survival function of chi2 with 4 degrees of freedom: exp(-x/2) (1 + x/2)."""
    half = np.asarray(chi2) / 2.0
    return np.exp(-half) * (1.0 + half)


#: Branches the kinematic fit adds to an ntuple (see docs/ntuple.md).
KINFIT_BRANCHES: dict[str, Branch] = {
    "fit_status": Branch("int32", (), "", "kinematic fit status: 0 converged, 1 not converged, 2 NaN/inf input, "
                         "3 energy <= 0, 4 covariance not positive definite, 5 numerical failure"),
    "fit_chi2": Branch("float64", (), "", "chi2 of the 4C fit (NaN unless converged)"),
    "fit_ndf": Branch("int32", (), "", "degrees of freedom of the fit (4)"),
    "fit_pvalue": Branch("float64", (), "", "chi2(4) p-value of the fit"),
    "fit_iterations": Branch("int32", (), "", "iterations of the fit"),
    "fit_photon_E": Branch("float64", (3,), "GeV", "fitted photon energy"),
    "fit_photon_theta": Branch("float64", (3,), "rad", "fitted photon polar angle"),
    "fit_photon_phi": Branch("float64", (3,), "rad", "fitted photon azimuth"),
    "fit_photon_cov": Branch("float32", (3, 6), "GeV^2, GeV rad, rad^2", "fitted covariance, packed like photon_cov"),
    "fit_pulls": Branch("float64", (9,), "", "pulls of (E, theta, phi) of photons 1-3"),
    "m_gg": Branch("float64", (3,), "GeV", "diphoton masses of the measured photons, pairs (1,2), (1,3), (2,3)"),
    "m_gg_fit": Branch("float64", (3,), "GeV", "diphoton masses of the fitted photons (NaN unless converged)"),
}  # fmt: skip


@dataclass(frozen=True)
class KinfitSummary:
    """What :func:`kinfit_ntuple` wrote."""

    input_path: Path
    output_path: Path
    n_events: int
    status_counts: dict[str, int]
    seconds: float

    def to_dict(self) -> dict:
        return {**self.__dict__, "input_path": str(self.input_path), "output_path": str(self.output_path)}


def fit_branches(chunk: dict[str, np.ndarray], beam: np.ndarray, **options) -> dict[str, np.ndarray]:
    """Fit the photons of a chunk of ntuple branches; returns the :data:`KINFIT_BRANCHES`."""
    photons = (chunk["photon_E"], chunk["photon_theta"], chunk["photon_phi"])
    result = fit_photons(*photons, chunk["photon_cov"], beam, **options)
    return {
        "fit_status": result.status,
        "fit_chi2": result.chi2,
        "fit_ndf": np.full(len(result.chi2), result.ndf, dtype=np.int32),
        "fit_pvalue": result.pvalue,
        "fit_iterations": result.iterations,
        "fit_photon_E": result.energy,
        "fit_photon_theta": result.theta,
        "fit_photon_phi": result.phi,
        "fit_photon_cov": result.photon_covariance,
        "fit_pulls": result.pulls,
        "m_gg": diphoton_masses(*photons),
        "m_gg_fit": diphoton_masses(result.energy, result.theta, result.phi),
    }


def kinfit_ntuple(
    input_path: str | Path,
    output_path: str | Path,
    beam: np.ndarray,
    *,
    step_size: int = 200_000,
    max_iterations: int = 20,
    progress: bool = True,
) -> KinfitSummary:
    """Fit every event of an ntuple and write the fit branches, :data:`KINFIT_BRANCHES`, as
    an ntuple that extends the input.

    The output holds the fit branches only, with the input's metadata, its path relative to
    the output (``base``) and its fingerprint (``friend_of``): the readers of
    :mod:`bumphunt.ntuple` read every other branch from the input (:func:`~bumphunt.ntuple.base_ntuple`),
    so nothing is stored twice. Fit branches already in the input are shadowed by the new
    ones. The input is read in chunks of ``step_size`` events; the output appears only when complete.

    Raises
    ------
    NtupleError
        The input is missing, unreadable or lacks one of the photon branches.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if input_path.resolve() == output_path.resolve():
        raise NtupleError(f"{input_path}: the kinematic fit cannot overwrite its input; choose another output")
    started = time.perf_counter()
    chunks = iterate_ntuple(input_path, PHOTON_BRANCHES, step_size=step_size)  # checks the branches now
    n_total = num_entries(input_path)
    try:
        metadata = read_metadata(input_path)
    except NtupleError:
        metadata = {}
    metadata[BASE_KEY] = os.path.relpath(input_path.resolve(), output_path.resolve().parent)
    metadata["friend_of"] = friend_fingerprint(input_path)
    counts = np.zeros(len(FitStatus), dtype=np.int64)
    with progress_bar(progress) as bar, NtupleWriter(output_path, KINFIT_BRANCHES) as writer:
        advance = bar.add(f"kinfit {input_path.stem}", n_total)
        for chunk in chunks:
            fitted = fit_branches(chunk, beam, max_iterations=max_iterations)
            writer.extend(fitted)
            counts += np.bincount(fitted["fit_status"], minlength=len(FitStatus))
            advance(len(fitted["fit_status"]))
        status_counts = {status.name.lower(): int(counts[status]) for status in FitStatus}
        metadata["kinfit"] = {
            "beam_four_momentum": [float(x) for x in beam],
            "max_iterations": max_iterations,
            "status_counts": status_counts,
        }
        writer.metadata = metadata
    return KinfitSummary(input_path, output_path, writer.entries, status_counts, time.perf_counter() - started)


#: The event branches of a candidate-row sample (:mod:`bumphunt.samples`), written with the
#: fit's: a complete ntuple, since the user's files are not in bumphunt's format.
SAMPLE_BRANCHES: dict[str, Branch] = {
    **{name: BRANCHES[name] for name in ("event_id", "sample_id", "weight", "trigger_efficiency", "gen_mass",
                                         "photon_E", "photon_theta", "photon_phi", "photon_time", "photon_cov",
                                         "photon_origin")},
    "user_score": Branch("float64", (), "", "the analyst's own selection score (NaN when not mapped)"),
    "experiment": Branch("int64", (), "", "experiment number (-1 when not in the file)"),
    "run": Branch("int64", (), "", "run number (-1 when not in the file)"),
    "event": Branch("int64", (), "", "event number (-1 when not in the file)"),
    "candidate": Branch("int64", (), "", "candidate index within its event (-1 when not in the file)"),
}  # fmt: skip


def kinfit_sample(
    sample: Sample,
    config: dict,
    output_path: str | Path,
    *,
    step_size: int = 200_000,
    max_iterations: int = 20,
    progress: bool = True,
) -> KinfitSummary:
    """Read a candidate-row sample (:func:`bumphunt.samples.read_sample`), fit every candidate
    to its event's beams and write one complete ntuple: :data:`SAMPLE_BRANCHES` and
    :data:`KINFIT_BRANCHES`, with the sample's description and input files in the metadata.
    """
    started = time.perf_counter()
    output_path = Path(output_path)
    paths = sample.paths()
    counts = np.zeros(len(FitStatus), dtype=np.int64)
    masses, expected, beams = set(), 0.0, set()
    schema = {**SAMPLE_BRANCHES, **KINFIT_BRANCHES}
    if "proper_decay_length" in sample.branches:
        schema["proper_decay_length"] = BRANCHES["proper_decay_length"]
    with progress_bar(progress) as bar, NtupleWriter(output_path, schema) as writer:
        advance = bar.add(f"kinfit {sample.name}", None)
        for _, chunk in read_sample(sample, config, step_size=step_size):
            beam = chunk.pop("beam")
            fitted = fit_branches(chunk, beam, max_iterations=max_iterations)
            writer.extend({**chunk, **fitted})
            counts += np.bincount(fitted["fit_status"], minlength=len(FitStatus))
            masses.update(np.unique(chunk["gen_mass"][np.isfinite(chunk["gen_mass"])]).tolist())
            expected += float(chunk["weight"].sum())
            beams.update(map(tuple, np.unique(np.round(beam, 6), axis=0).tolist()))
            advance(len(chunk["weight"]))
        status_counts = {status.name.lower(): int(counts[status]) for status in FitStatus}
        metadata = {
            "ntuple_version": NTUPLE_VERSION,
            "sample": sample.name,
            "sample_id": sample.sample_id,
            "role": sample.role,
            "bumphunt_version": __version__,
            "luminosity_pb_inv": config["luminosity"],
            "expected_events": expected,
            "inputs": [{"file": str(p.resolve()), "size": p.stat().st_size} for p in paths],
            "truth_matching": "photon_truth" in sample.branches,
            "isr_factor_assumed": sample.role == "signal" and sample.isr_factor is None,
            "kinfit": {"beam_four_momenta": sorted(beams)[:100], "max_iterations": max_iterations,
                       "status_counts": status_counts},
        }  # fmt: skip
        if sample.role == "signal":
            metadata["masses"] = signal_metadata(sample, config, masses)
        elif sample.role == "background" and sample.cross_section_pb is not None:
            metadata["cross_section_pb"] = sample.cross_section_pb
            metadata["n_generated"] = generated_events(sample)
        writer.metadata = metadata
    return KinfitSummary(paths[0], output_path, writer.entries, status_counts, time.perf_counter() - started)


def run_kinfit(
    config: dict,
    inputs: list[str | Path] | None = None,
    output: str | Path | None = None,
    *,
    scheduler: str | None = None,
    progress: bool = True,
) -> list[KinfitSummary]:
    """The kinematic-fit stage of an analysis.

    Parameters
    ----------
    config : dict
        Validated configuration: beams and the ``kinfit`` section.
    inputs : list of paths, optional
        Ntuples to fit; by default every ntuple of ``<output_dir>/simulation``.
    output : path, optional
        With one input, a ``.root`` file or a directory; with several, a directory.
        Default ``<output_dir>/kinfit``; outputs keep the input file names.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``), the configuration's ``dask.scheduler``
        by default: each file is then fitted by a worker of its cluster, which reads the input
        and writes the output, on a filesystem shared with this machine. Every way gives the
        same ntuples.

    Raises
    ------
    NtupleError
        No input found, or an input is unusable.
    BumphuntError
        The output folder cannot be written (checked before any fit), the scheduler cannot be
        reached, or a worker cannot read an input or write the output folder.
    """
    layout = OutputLayout.from_config(config)
    scheduler = dask_scheduler(config, scheduler)
    if inputs is None and user_samples(config):
        fits = _sample_fits(config, layout, output, absolute=scheduler is not None)
    else:
        fits = _ntuple_fits(config, layout, inputs, output, absolute=scheduler is not None)
    return _fit_files(fits, scheduler, progress)


@dataclass(frozen=True)
class _FileFit:
    """The fit of one output file, run here or by a Dask worker: ``fit(progress=...)`` writes it."""

    fit: functools.partial
    reads: tuple[Path, ...]
    output: Path


def _fit_files(fits: list[_FileFit], scheduler: str | None, progress: bool) -> list[KinfitSummary]:
    """Run the fits one after the other here (the fit's threads share the events of a file), or
    each by a worker of the Dask cluster at ``scheduler`` after checking that every worker can
    read the inputs and write the outputs."""
    if scheduler is None:
        return [file_fit.fit(progress=progress) for file_fit in fits]
    summaries = []
    with executor(1, scheduler) as pool:
        check_worker_access(pool, read=[path for file_fit in fits for path in file_fit.reads],
                            write=sorted({file_fit.output.parent for file_fit in fits}))  # fmt: skip
        tasks = [functools.partial(file_fit.fit, progress=False) for file_fit in fits]
        with progress_bar(progress) as bar:
            advance = bar.add("kinfit files on the cluster", len(tasks))
            for summary in ordered_map(pool, call, tasks, max_in_flight=max(len(tasks), 1)):
                summaries.append(summary)
                advance(1)
    return summaries


def _ntuple_fits(config: dict, layout: OutputLayout, inputs, output, *, absolute: bool) -> list[_FileFit]:
    """The fits of ntuples in bumphunt's format (the simulated ones by default); paths from the
    filesystem's root with ``absolute`` (for the workers of a cluster)."""
    if inputs is None:
        inputs = layout.existing_ntuples("simulation", SAMPLES)
        if not inputs:
            raise NtupleError(f"{layout.simulation_dir}: no simulated ntuples to fit (run `bumphunt simulate` first)")
    inputs = [Path(p) for p in inputs]
    output = Path(output) if output is not None else layout.kinfit_dir
    if output.suffix == ".root" and len(inputs) > 1:
        raise NtupleError(f"{output}: several inputs need an output directory, not a file")
    outputs = [output] if output.suffix == ".root" else [output / p.name for p in inputs]
    writable_folder(output.parent if output.suffix == ".root" else output)
    if absolute:
        inputs, outputs = [p.absolute() for p in inputs], [p.absolute() for p in outputs]
    beam = Beams.from_config(config).four_momentum
    settings = config["kinfit"]
    options = dict(step_size=settings["chunk_size"], max_iterations=settings["max_iterations"])
    return [
        _FileFit(functools.partial(kinfit_ntuple, source, target, beam, **options), (source,), target)
        for source, target in zip(inputs, outputs)
    ]


def _sample_fits(config: dict, layout: OutputLayout, output, *, absolute: bool) -> list[_FileFit]:
    """The fits of every sample of the configuration's ``samples`` section; with ``absolute``
    the samples' files from the filesystem's root (for the workers of a cluster)."""
    output = Path(output) if output is not None else layout.kinfit_dir
    if output.suffix == ".root":
        raise NtupleError(f"{output}: the samples of an analysis need an output directory, not a file")
    writable_folder(output)
    samples = analysis_samples(config)
    for sample in samples.values():
        sample.paths()  # every glob matches before any fit
    settings = config["kinfit"]
    options = dict(step_size=settings["chunk_size"], max_iterations=settings["max_iterations"])
    fits = []
    for sample in samples.values():
        target = output / f"{sample.name}.root"
        if absolute:
            sample, target = _from_root(sample), target.absolute()
        paths = sample.paths()
        reads = (*paths, *([Path(sample.beam_table)] if sample.beam_table else []))
        if sample.format == "candidates":
            fits.append(_FileFit(functools.partial(kinfit_sample, sample, config, target, **options), reads, target))
            continue
        if len(paths) != 1:
            raise NtupleError(f"{sample.key}.files: a sample in bumphunt's format is one ntuple, found {len(paths)}")
        beam = Beams.from_config(config).four_momentum
        fits.append(_FileFit(functools.partial(kinfit_ntuple, paths[0], target, beam, **options), reads, target))
    return fits


def _from_root(sample: Sample) -> Sample:
    """``sample`` with its files (globs expanded) and beam table named from the filesystem's root."""
    beam_table = str(Path(sample.beam_table).absolute()) if sample.beam_table else None
    return dataclasses.replace(sample, files=tuple(str(p.absolute()) for p in sample.paths()), beam_table=beam_table)
