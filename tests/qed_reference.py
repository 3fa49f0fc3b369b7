"""Independent numerical reference for tree-level QED annihilation into photons.

This module evaluates the spin- and polarisation-summed squared matrix elements
of ``e+ e- -> gamma gamma`` and ``e+ e- -> gamma gamma gamma`` for massless
electrons directly from the Feynman diagrams, using explicit 4x4 Dirac gamma
matrices.  It is deliberately self-contained (numpy only) and shares no code
with :mod:`bumphunt`, so that it can serve as a reference for analytic
formulae.

Method
------
For a fermion line ``vbar(p_plus) Gamma u(p_minus)`` with photons attached in
all orderings, the spin sums give ``Tr[pslash_plus Gamma pslash_minus
Gammabar]`` with ``Gammabar = gamma^0 Gamma^dagger gamma^0`` (massless
electrons).  Each photon's polarisation sum is replaced by ``-g_{mu nu}``, which
is legal because the sum of all diagrams satisfies the Ward identity.  The
couplings ``-i e gamma^mu`` and propagators ``i qslash / q^2`` contribute only
an overall phase, so ``|M|^2 = e^(2N) |vbar Gamma u|^2`` with::

    Gamma = sum over orderings (A, B, ...) of
            gamma^{mu_A} S(q_1) gamma^{mu_B} S(q_2) ... ,   S(q) = qslash / q^2,

where the photon written rightmost is attached next to the incoming electron
``u(p_minus)``.

A second, fully explicit evaluation (massless Dirac spinors and two transverse
linear polarisation vectors per photon) is provided through
:func:`amplitude_eeggg` / :func:`me2_eeggg_explicit`; it is used by the tests to
cross-check the ``-g_{mu nu}`` trace evaluation and to test the Ward identity.

Conventions
-----------
Four-momenta are arrays of shape ``(n, 4)`` with components ``(E, px, py, pz)``
and metric ``diag(+1, -1, -1, -1)``.  Results are summed, not averaged, over
all initial spins and final polarisations; no identical-particle factor is
included.
"""

from __future__ import annotations

import itertools

import numpy as np

ALPHA_EM = 1.0 / 137.035999084
"""Fine-structure constant in the Thomson limit (CODATA 2018)."""

METRIC = np.diag([1.0, -1.0, -1.0, -1.0])
"""Minkowski metric ``g_{mu nu} = diag(+1, -1, -1, -1)``."""

_SIGMA = np.array(
    [
        [[0, 1], [1, 0]],
        [[0, -1j], [1j, 0]],
        [[1, 0], [0, -1]],
    ],
    dtype=complex,
)
_I2 = np.eye(2, dtype=complex)
_Z2 = np.zeros((2, 2), dtype=complex)


def _dirac_gamma_matrices():
    """Dirac gamma matrices ``gamma^mu`` (upper index) in the Dirac representation.

    Returns
    -------
    numpy.ndarray
        Complex array of shape ``(4, 4, 4)``; ``gammas[mu]`` is ``gamma^mu``.
    """
    gamma0 = np.block([[_I2, _Z2], [_Z2, -_I2]])
    spatial = [np.block([[_Z2, s], [-s, _Z2]]) for s in _SIGMA]
    return np.array([gamma0, *spatial])


GAMMA = _dirac_gamma_matrices()
"""``GAMMA[mu]`` is the Dirac matrix ``gamma^mu`` (upper index), shape (4, 4, 4)."""


def minkowski_dot(a, b):
    """Minkowski product ``a.b = a^0 b^0 - a_vec . b_vec`` along the last axis.

    Parameters
    ----------
    a, b : array_like
        Four-vectors of shape ``(..., 4)``; broadcast against each other.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(...)``.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    return a[..., 0] * b[..., 0] - np.sum(a[..., 1:] * b[..., 1:], axis=-1)


def lower_index(v):
    """Lower the Lorentz index: ``v_mu = g_{mu nu} v^nu``.

    Parameters
    ----------
    v : array_like
        Contravariant four-vectors of shape ``(..., 4)``.

    Returns
    -------
    numpy.ndarray
        Covariant components, same shape.
    """
    v = np.array(v, copy=True)
    v[..., 1:] *= -1
    return v


def slash(p):
    """Feynman slash ``pslash = gamma^mu p_mu``.

    Parameters
    ----------
    p : array_like
        Four-vectors of shape ``(..., 4)`` (upper index, real or complex).

    Returns
    -------
    numpy.ndarray
        Complex array of shape ``(..., 4, 4)``.
    """
    return np.einsum("...m,mij->...ij", lower_index(np.asarray(p, dtype=complex)), GAMMA)


def dirac_bar(matrix):
    """Dirac adjoint of a matrix, ``gamma^0 M^dagger gamma^0``.

    Parameters
    ----------
    matrix : numpy.ndarray
        Array of shape ``(..., 4, 4)``.

    Returns
    -------
    numpy.ndarray
        Array of the same shape.
    """
    g0 = GAMMA[0]
    return g0 @ np.conj(np.swapaxes(matrix, -1, -2)) @ g0


def _as_momenta(*momenta):
    """Convert momenta to float arrays of shape ``(n, 4)`` and check shapes."""
    arrays = [np.atleast_2d(np.asarray(p, dtype=float)) for p in momenta]
    shape = arrays[0].shape
    if len(shape) != 2 or shape[1] != 4:
        raise ValueError(f"momenta must have shape (n, 4), got {shape}")
    for arr in arrays:
        if arr.shape != shape:
            raise ValueError("all momenta must have the same shape (n, 4)")
    return arrays


def _line_tensor(p_minus, photons):
    """Fermion-line tensor ``Gamma^{mu_1 ... mu_N}`` summed over attachment orders.

    Parameters
    ----------
    p_minus : numpy.ndarray
        Incoming electron momenta, shape ``(n, 4)``.
    photons : sequence of numpy.ndarray
        Outgoing photon momenta ``k_1 ... k_N`` (N = 2 or 3), each ``(n, 4)``.

    Returns
    -------
    numpy.ndarray
        Complex array of shape ``(n,) + (4,) * N + (4, 4)``.  Axis ``1 + j``
        carries the upper Lorentz index of photon ``j``; the last two axes are
        Dirac indices.  The sum over the ``N!`` diagrams of
        ``gamma^{mu_A} S(q_1) gamma^{mu_B} ... gamma^{mu_Z}`` with
        ``S(q) = qslash / q^2``, where the rightmost photon ``Z`` is attached
        next to ``u(p_minus)``.
    """
    n_photons = len(photons)
    n_events = p_minus.shape[0]
    letters = "abcdefgh"[:n_photons]  # Lorentz index letter of each photon
    tensor = np.zeros((n_events,) + (4,) * n_photons + (4, 4), dtype=complex)
    for order in itertools.permutations(range(n_photons)):
        # order[0] is next to vbar(p_plus), order[-1] next to u(p_minus).
        props = []
        q = p_minus.copy()
        for j in reversed(order[1:]):
            q = q - photons[j]
            props.append(slash(q) / minkowski_dot(q, q)[:, None, None])
        props.reverse()  # props[i] sits between vertices order[i] and order[i+1]
        # Build einsum: gamma^{A} S_1 gamma^{B} S_2 ... gamma^{Z}
        operands = []
        terms = []
        dirac = iter("ijklmnopqrstuvwxyz")
        left = next(dirac)
        first = left
        for pos, j in enumerate(order):
            right = next(dirac)
            operands.append(GAMMA)
            terms.append(f"{letters[j]}{left}{right}")
            left = right
            if pos < n_photons - 1:
                right = next(dirac)
                operands.append(props[pos])
                terms.append(f"Z{left}{right}")
                left = right
        out = "Z" + letters + first + left
        tensor += np.einsum(",".join(terms) + "->" + out, *operands, optimize=True)
    return tensor


def _trace_me2(p_minus, p_plus, photons, alpha):
    """Spin- and polarisation-summed ``|M|^2`` by the trace method.

    Parameters
    ----------
    p_minus, p_plus : numpy.ndarray
        Electron and positron momenta, shape ``(n, 4)``.
    photons : sequence of numpy.ndarray
        Photon momenta, each of shape ``(n, 4)``.
    alpha : float
        Fine-structure constant.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``.
    """
    n_photons = len(photons)
    n_events = p_minus.shape[0]
    # Flatten the N Lorentz indices into one axis of length 4**N.
    tensor = _line_tensor(p_minus, photons).reshape(n_events, 4**n_photons, 4, 4)
    tensor_bar = dirac_bar(tensor)
    # Tr[pslash_+ Gamma^{mu...} pslash_- Gammabar^{mu...}] for each index set.
    traces = np.einsum(
        "zij,zLjk,zkl,zLli->zL",
        slash(p_plus),
        tensor,
        slash(p_minus),
        tensor_bar,
        optimize=True,
    )
    # Polarisation sums -g_{mu mu'} for each photon; g is diagonal.
    weight = np.ones(1)
    for _ in range(n_photons):
        weight = np.multiply.outer(weight, -np.diag(METRIC)).ravel()
    summed = traces @ weight
    if np.max(np.abs(summed.imag)) > 1e-8 * max(np.max(np.abs(summed.real)), 1e-300):
        raise RuntimeError("trace has a non-negligible imaginary part")
    e_squared = 4.0 * np.pi * alpha
    return e_squared**n_photons * summed.real


def spin_summed_me2_eeggg(p_minus, p_plus, k1, k2, k3, alpha=ALPHA_EM):
    """Spin-summed tree-level ``|M|^2`` for ``e-(p_minus) e+(p_plus) -> 3 gamma``.

    The six Feynman diagrams (all orderings of the photon attachments along the
    fermion line) are evaluated with explicit Dirac matrices; the electron and
    positron spins are summed with ``Tr[pslash_+ Gamma pslash_- Gammabar]``
    and the photon polarisations with ``-g_{mu nu}``.

    Parameters
    ----------
    p_minus, p_plus : array_like
        Electron and positron four-momenta ``(E, px, py, pz)``, shape ``(n, 4)``.
        Electrons are massless.
    k1, k2, k3 : array_like
        Photon four-momenta, shape ``(n, 4)``, with
        ``p_minus + p_plus = k1 + k2 + k3``.
    alpha : float, optional
        Fine-structure constant; ``e = sqrt(4 pi alpha)``.

    Returns
    -------
    numpy.ndarray
        ``|M|^2`` summed (not averaged) over the 2 x 2 initial spins and the
        2 x 2 x 2 photon polarisations, shape ``(n,)``.  No 1/3! symmetry factor
        is included.
    """
    p_minus, p_plus, k1, k2, k3 = _as_momenta(p_minus, p_plus, k1, k2, k3)
    return _trace_me2(p_minus, p_plus, [k1, k2, k3], alpha)


def spin_summed_me2_eegg(p_minus, p_plus, k1, k2, alpha=ALPHA_EM):
    """Spin-summed tree-level ``|M|^2`` for ``e-(p_minus) e+(p_plus) -> 2 gamma``.

    Same machinery as :func:`spin_summed_me2_eeggg` with the two diagrams of
    pair annihilation.  For massless electrons this equals
    ``8 e^4 (u/t + t/u)`` with ``t = (p_minus - k1)^2``, ``u = (p_minus - k2)^2``.

    Parameters
    ----------
    p_minus, p_plus : array_like
        Electron and positron four-momenta, shape ``(n, 4)``; massless.
    k1, k2 : array_like
        Photon four-momenta, shape ``(n, 4)``.
    alpha : float, optional
        Fine-structure constant; ``e = sqrt(4 pi alpha)``.

    Returns
    -------
    numpy.ndarray
        ``|M|^2`` summed over all spins and polarisations, shape ``(n,)``.
    """
    p_minus, p_plus, k1, k2 = _as_momenta(p_minus, p_plus, k1, k2)
    return _trace_me2(p_minus, p_plus, [k1, k2], alpha)


# ---------------------------------------------------------------------------
# Explicit spinors and polarisation vectors (cross-check, Ward identity)
# ---------------------------------------------------------------------------


def _unit_directions(p):
    """Unit three-vectors along the spatial part of ``p`` (shape ``(n, 3)``)."""
    vec = p[:, 1:]
    return vec / np.linalg.norm(vec, axis=1)[:, None]


def massless_u_spinors(p):
    """Massless Dirac spinors ``u(p, s)`` in the Dirac representation.

    ``u_s = sqrt(E) (xi_s, sigma.phat xi_s)`` with ``xi_1 = (1, 0)``,
    ``xi_2 = (0, 1)``.  They satisfy ``pslash u = 0`` and
    ``sum_s u_s ubar_s = pslash``.

    Parameters
    ----------
    p : numpy.ndarray
        Massless four-momenta, shape ``(n, 4)``.

    Returns
    -------
    numpy.ndarray
        Complex array of shape ``(n, 2, 4)`` (event, spin, Dirac index).
    """
    sigma_n = np.einsum("na,aij->nij", _unit_directions(p), _SIGMA)
    xi = np.eye(2, dtype=complex)
    upper = np.broadcast_to(xi, (p.shape[0], 2, 2))
    lower = np.einsum("nij,sj->nsi", sigma_n, xi)
    return np.sqrt(p[:, 0])[:, None, None] * np.concatenate([upper, lower], axis=2)


def massless_v_spinors(p):
    """Massless Dirac spinors ``v(p, s)`` in the Dirac representation.

    ``v_s = sqrt(E) (sigma.phat eta_s, eta_s)``; they satisfy ``pslash v = 0``
    and ``sum_s v_s vbar_s = pslash`` (massless).

    Parameters
    ----------
    p : numpy.ndarray
        Massless four-momenta, shape ``(n, 4)``.

    Returns
    -------
    numpy.ndarray
        Complex array of shape ``(n, 2, 4)``.
    """
    sigma_n = np.einsum("na,aij->nij", _unit_directions(p), _SIGMA)
    eta = np.eye(2, dtype=complex)
    upper = np.einsum("nij,sj->nsi", sigma_n, eta)
    lower = np.broadcast_to(eta, (p.shape[0], 2, 2))
    return np.sqrt(p[:, 0])[:, None, None] * np.concatenate([upper, lower], axis=2)


def transverse_polarisations(k):
    """Two real, transverse, linear polarisation vectors per photon.

    Parameters
    ----------
    k : numpy.ndarray
        Photon momenta, shape ``(n, 4)``.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(n, 2, 4)`` of contravariant vectors
        ``(0, e_vec)`` with ``e_vec . k_vec = 0`` and ``|e_vec| = 1``.
    """
    n_hat = _unit_directions(k)
    # Reference axis least aligned with the photon direction.
    ref = np.eye(3)[np.argmin(np.abs(n_hat), axis=1)]
    e1 = np.cross(n_hat, ref)
    e1 /= np.linalg.norm(e1, axis=1)[:, None]
    e2 = np.cross(n_hat, e1)
    zeros = np.zeros((k.shape[0], 1))
    return np.stack([np.hstack([zeros, e1]), np.hstack([zeros, e2])], axis=1)


def amplitude_eeggg(p_minus, p_plus, k1, k2, k3, u, vbar, eps1, eps2, eps3, alpha=ALPHA_EM):
    """Reduced helicity amplitude ``e^3 vbar Gamma_{mu nu rho} u eps1^mu eps2^nu eps3^rho``.

    The overall phase ``(-i)^3 i^2`` of the Feynman rules is dropped; the
    modulus is the physical amplitude.  Polarisation vectors are taken as
    given (no complex conjugation), so passing a photon momentum in place of a
    polarisation vector tests the Ward identity.

    Parameters
    ----------
    p_minus, p_plus, k1, k2, k3 : numpy.ndarray
        Four-momenta, shape ``(n, 4)``.
    u : numpy.ndarray
        Electron spinors, shape ``(n, 4)``.
    vbar : numpy.ndarray
        Dirac-adjoint positron spinors ``v^dagger gamma^0``, shape ``(n, 4)``.
    eps1, eps2, eps3 : numpy.ndarray
        Contravariant polarisation four-vectors (possibly complex), ``(n, 4)``.
    alpha : float, optional
        Fine-structure constant.

    Returns
    -------
    numpy.ndarray
        Complex array of shape ``(n,)``.
    """
    p_minus, p_plus, k1, k2, k3 = _as_momenta(p_minus, p_plus, k1, k2, k3)
    tensor = _line_tensor(p_minus, [k1, k2, k3])
    value = np.einsum(
        "zi,zabcij,zj,za,zb,zc->z",
        vbar,
        tensor,
        u,
        lower_index(np.asarray(eps1, dtype=complex)),
        lower_index(np.asarray(eps2, dtype=complex)),
        lower_index(np.asarray(eps3, dtype=complex)),
        optimize=True,
    )
    return (4.0 * np.pi * alpha) ** 1.5 * value


def me2_eeggg_explicit(p_minus, p_plus, k1, k2, k3, alpha=ALPHA_EM):
    """``|M|^2`` for ``e+ e- -> 3 gamma`` by explicit sums over 2^5 helicity states.

    Uses :func:`massless_u_spinors`, :func:`massless_v_spinors` and two
    transverse linear polarisations per photon (no ``-g_{mu nu}`` trick).

    Parameters
    ----------
    p_minus, p_plus, k1, k2, k3 : array_like
        Four-momenta, shape ``(n, 4)``.
    alpha : float, optional
        Fine-structure constant.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``; equal to :func:`spin_summed_me2_eeggg`.
    """
    p_minus, p_plus, k1, k2, k3 = _as_momenta(p_minus, p_plus, k1, k2, k3)
    tensor = _line_tensor(p_minus, [k1, k2, k3])
    u = massless_u_spinors(p_minus)
    vbar = np.einsum("nsi,ij->nsj", np.conj(massless_v_spinors(p_plus)), GAMMA[0])
    eps = [lower_index(transverse_polarisations(k)) for k in (k1, k2, k3)]
    amps = np.einsum(
        "zri,zabcij,zsj,zxa,zyb,zwc->zrsxyw",
        vbar,
        tensor,
        u,
        eps[0],
        eps[1],
        eps[2],
        optimize=True,
    )
    return (4.0 * np.pi * alpha) ** 3 * np.sum(np.abs(amps) ** 2, axis=(1, 2, 3, 4, 5))
