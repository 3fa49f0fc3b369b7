"""The signal efficiency versus the ALP lifetime, by reweighting the simulated decays.

A simulated ALP decays after a proper length t drawn from (1/c tau0) exp(-t / c tau0), c tau0
the proper decay length of the generated coupling. The same events stand for another
lifetime c tau with the weight (the ratio of the two densities)

    w(t) = (tau0 / tau) exp(-t (1/tau - 1/tau0)),

whose mean over all generated events is exactly 1; so the efficiency at c tau is the sum of
the weights of the counted candidates over the generated events, and its ratio to the
generated efficiency is their mean weight R(c tau). The weights' variance is finite only
for tau < 2 tau0 (E[w^2] = 1 / (k (2 - k)), k = tau / tau0): R is measured for k in
[:data:`K_MIN`, :data:`K_MAX`]. Shorter lifetimes take R(K_MIN) -- decays within a fifth of
the generated decay length, prompt for the detector wherever the generated ALPs are (a
generated coupling near the limit) -- and longer ones are beyond the simulated reach (NaN).

Long-lived ALPs simulated at smaller couplings (sample ``alp_long_lived``) extend the reach:
the candidates of all samples are then reweighted from their mixture of exponentials
(:func:`mixture_weights`), up to K_MAX times the longest simulated lifetime. Their couplings
form a ladder (:func:`lifetime_ladder`) whose adjacent lifetimes differ by at most
:data:`MAX_LIFETIME_STEP`, so that every lifetime in between is reweighted as well as one
sample alone is at K_MIN or K_MAX, or better (:func:`mixture_effective_fraction`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad

#: Lifetimes, relative to the generated one, where the efficiency is measured by reweighting:
#: below K_MIN the effective sample is < 36 % of the events (n_eff / N = k (2 - k), ~2 k) and
#: the estimate turns noisy; above K_MAX the weights' variance grows without bound (at
#: k = 1.8, n_eff / N = 0.36 again).
K_MIN = 0.2
K_MAX = 1.8
#: The largest ratio of adjacent simulated lifetimes (c tau ~ 1/g^2), K_MAX / K_MIN = 9 (a factor
#: 3 in g): every lifetime between two samples is within [K_MIN, K_MAX] of one of them, where that
#: sample alone keeps n_eff / N = k (2 - k) >= 0.36. Their mixture does better: its weights'
#: second moment gives n_eff >= 1.31 N at the worst lifetime between two samples of N events 9
#: times apart (:func:`mixture_effective_fraction`; it falls to 0.36 N only ~130 times apart).
MAX_LIFETIME_STEP = K_MAX / K_MIN


def mixture_weights(proper_length, sources, ctau) -> np.ndarray:
    """Weights that turn decays simulated with several lifetimes into decays with ``ctau``.

    The simulated decay lengths follow the mixture q(t) = sum_j N_j p_j(t) / sum_j N_j of the
    exponentials p_j of the sources; w = p(t; ctau) / q(t) has mean 1 over all their generated
    events (the balance heuristic of multiple importance sampling: Veach & Guibas, SIGGRAPH
    1995). With one source it is :func:`lifetime_weights`.

    Parameters
    ----------
    proper_length : array_like (n,)
    sources : sequence of (ctau_cm, n_generated)
    ctau : array_like (k,)
        Target proper decay lengths (cm).

    Returns
    -------
    ndarray (n, k)
    """
    t = np.asarray(proper_length, dtype=np.float64)[:, None]
    target = np.atleast_1d(np.asarray(ctau, dtype=np.float64))[None, :]
    if not all(c > 0 for c, _ in sources) or not np.all(target > 0):
        raise ValueError("lifetimes must be positive (a prompt sample cannot be reweighted)")
    lifetimes = np.array([c for c, _ in sources], dtype=np.float64)
    shares = np.array([n for _, n in sources], dtype=np.float64)
    # in logarithms, to stay finite far in the tails: log q(t) once per decay, then one exp per target
    log_mixture = np.logaddexp.reduce(np.log(shares / shares.sum() / lifetimes) - t / lifetimes, axis=1)
    with np.errstate(over="ignore"):  # far beyond every source's lifetime: an infinite weight, as 1/q says
        return np.exp(-t / target - np.log(target) - log_mixture[:, None])


def lifetime_weights(proper_length, ctau_generated: float, ctau) -> np.ndarray:
    """Weights that turn decays simulated with ``ctau_generated`` into decays with ``ctau``.

    Parameters
    ----------
    proper_length : array_like (n,)
        c t of each simulated decay (cm).
    ctau_generated : float
        The simulated proper decay length c tau0 (cm, > 0).
    ctau : float or array_like (k,)
        Target proper decay length(s) (cm, > 0).

    Returns
    -------
    ndarray (n,) or (n, k)
        w = (tau0 / tau) exp(-t (1/tau - 1/tau0)).
    """
    t = np.asarray(proper_length, dtype=np.float64)
    target = np.asarray(ctau, dtype=np.float64)
    if not ctau_generated > 0.0 or not np.all(target > 0.0):
        raise ValueError("lifetimes must be positive (a prompt sample cannot be reweighted)")
    if np.any(t < 0.0) or not np.all(np.isfinite(t)):
        raise ValueError("proper decay lengths must be finite and >= 0")
    if target.ndim:
        t = t[:, None]
    return (ctau_generated / target) * np.exp(-t * (1.0 / target - 1.0 / ctau_generated))


def lifetime_ladder(signal_coupling: float, down_to: float) -> list[float]:
    """The couplings (GeV^-1, decreasing) of long-lived ALPs that carry the reach of the
    reweighting from the signal's coupling down to ``down_to``.

    The fewest couplings, evenly spaced in log g below ``signal_coupling``, whose adjacent
    lifetimes (c tau ~ 1/g^2, the signal's included) differ by at most
    :data:`MAX_LIFETIME_STEP`; the last is ``down_to`` sqrt(K_MAX), whose reach (K_MAX times its
    lifetime) ends at ``down_to``. Empty when the signal's own reach gets there.
    """
    if not (signal_coupling > 0.0 and down_to > 0.0):
        raise ValueError("couplings must be positive")
    last = down_to * math.sqrt(K_MAX)
    if last >= signal_coupling:
        return []
    lifetime_span = 2.0 * math.log(signal_coupling / last)
    steps = math.ceil(lifetime_span / math.log(MAX_LIFETIME_STEP) - 1e-9)
    return [signal_coupling * (last / signal_coupling) ** (j / steps) for j in range(1, steps)] + [last]


def mixture_effective_fraction(sources, ctau: float) -> float:
    """Kish's effective sample over all generated decays, n_eff / sum_j N_j = 1 / E_q[w^2], of
    the mixture weights (:func:`mixture_weights`) towards ``ctau`` (cm): the expectation over
    every generated decay, E_q[w^2] = integral of p(t; ctau)^2 / q(t) dt, integrated numerically.

    Parameters
    ----------
    sources : sequence of (ctau_cm, n_generated)
    ctau : float
        Target proper decay length (cm, > 0); 0 at and beyond twice the longest source's
        lifetime, where the second moment diverges.
    """
    lifetimes = np.array([c for c, _ in sources], dtype=np.float64)
    shares = np.array([n for _, n in sources], dtype=np.float64)
    if not (np.all(lifetimes > 0) and ctau > 0):
        raise ValueError("lifetimes must be positive (a prompt sample cannot be reweighted)")
    if ctau >= 2.0 * lifetimes.max():
        return 0.0
    log_shares = np.log(shares / shares.sum() / lifetimes)

    def integrand(u: float) -> float:  # t = u ctau
        t = u * ctau
        log_mixture = np.logaddexp.reduce(log_shares - t / lifetimes)
        return math.exp(-2.0 * u - math.log(ctau) - log_mixture)

    second_moment = quad(integrand, 0.0, math.inf, limit=400, epsrel=1e-8)[0]
    return 1.0 / second_moment


@dataclass(frozen=True)
class LifetimeResponse:
    """R(m, c tau) = efficiency(c tau) / efficiency(c tau0) at each generated mass.

    Attributes
    ----------
    masses : array (n_masses,)
        Generated masses (GeV), increasing.
    ctau_generated : array (n_masses,)
        The simulated proper decay length at each mass (cm).
    relative_lifetimes : array (n_k,)
        k = tau / tau0 of the grid (log-spaced from :data:`K_MIN`, 1 included).
    ratio, error : arrays (n_masses, n_k)
        R and its statistical standard error (the delta method for a ratio of weight sums over
        the same candidates); NaN beyond the mass's reach.
    effective_fraction : array (n_masses, n_k)
        Kish's effective sample size over the number of candidates, (sum w)^2 / (n sum w^2).
    """

    masses: np.ndarray
    ctau_generated: np.ndarray
    relative_lifetimes: np.ndarray
    ratio: np.ndarray
    error: np.ndarray
    effective_fraction: np.ndarray

    @classmethod
    def measure(cls, masses, sources, proper_lengths, *, k_max: float | None = None) -> LifetimeResponse:
        """Measure R from the counted candidates' proper decay lengths, mass by mass.

        Parameters
        ----------
        masses : array_like (n_masses,)
            Increasing.
        sources : sequence of sequences of (ctau_cm, n_generated)
            For each mass, the simulated lifetimes and their generated events; the first is the
            signal sample's (k = 1), the others long-lived ALPs that extend the reach.
        proper_lengths : sequence of arrays
            For each mass, c t of the event of every counted candidate of all its sources (an
            event with two candidates in the window appears twice, as in the efficiency).
        k_max : float, optional
            Top of the stored grid; default :data:`K_MAX` times the longest simulated lifetime
            over the signal's, at any mass.
        """
        masses = np.asarray(masses, dtype=np.float64)
        if len(proper_lengths) != len(masses) or len(sources) != len(masses):
            raise ValueError("one list of simulated lifetimes and one array of decay lengths per mass")
        if np.any(np.diff(masses) <= 0):
            raise ValueError("masses must increase")
        tau0 = np.array([float(s[0][0]) for s in sources])
        reach = np.array([K_MAX * max(c for c, _ in s) / s[0][0] if s[0][0] > 0 else np.nan for s in sources])
        top = k_max if k_max is not None else float(np.nanmax(reach, initial=K_MAX))
        top = max(top, K_MAX)
        grid = np.unique(np.r_[np.geomspace(K_MIN, top, 40 + int(10 * math.log10(top))), 1.0])
        shape = (len(masses), len(grid))
        ratio, error, effective = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
        for i, (mixture, lengths) in enumerate(zip(sources, proper_lengths)):
            lengths = np.asarray(lengths, dtype=np.float64)
            if not tau0[i] > 0.0 or len(lengths) < 2:
                continue
            w = mixture_weights(lengths, mixture, grid * tau0[i])
            w_generated = mixture_weights(lengths, mixture, np.array([tau0[i]]))[:, 0]
            total, reference = w.sum(axis=0), w_generated.sum()
            ratio[i] = total / reference
            # delta method for a ratio of sums over the same events
            error[i] = np.sqrt(np.sum((w - ratio[i] * w_generated[:, None]) ** 2, axis=0)) / reference
            effective[i] = total**2 / (len(lengths) * np.sum(w * w, axis=0))
            beyond = grid > reach[i] * (1 + 1e-12)
            ratio[i, beyond] = error[i, beyond] = effective[i, beyond] = np.nan
        return cls(masses, tau0, grid, ratio, error, effective)

    def __call__(self, mass, ctau) -> np.ndarray:
        """R at ``mass`` (GeV) and proper decay length(s) ``ctau`` (cm), broadcast.

        Linear in log k at the two neighbouring generated masses, then linear in mass
        (constant beyond the generated masses); R(K_MIN) below K_MIN; NaN beyond the reach of
        a neighbour that enters (K_MAX times its longest simulated lifetime).
        """
        return self._interpolate(self.ratio, mass, ctau)

    def ratio_error(self, mass, ctau) -> np.ndarray:
        """The statistical standard error of R at ``mass`` and ``ctau``, interpolated as R is."""
        return self._interpolate(self.error, mass, ctau)

    def _interpolate(self, table: np.ndarray, mass, ctau) -> np.ndarray:
        mass, ctau = np.broadcast_arrays(np.asarray(mass, dtype=np.float64), np.asarray(ctau, dtype=np.float64))
        out = np.full(mass.shape, np.nan)
        for value in np.unique(mass[np.isfinite(mass)]):
            at = mass == value
            out[at] = self._at_mass(table, float(value), ctau[at])
        return out

    def _at_mass(self, table: np.ndarray, mass: float, ctau: np.ndarray) -> np.ndarray:
        i = int(np.clip(np.searchsorted(self.masses, mass) - 1, 0, max(len(self.masses) - 2, 0)))
        neighbours = (i, min(i + 1, len(self.masses) - 1))
        low, high = self.masses[neighbours[0]], self.masses[neighbours[1]]
        fraction = 0.0 if high == low else min(max((mass - low) / (high - low), 0.0), 1.0)
        log_grid = np.log(self.relative_lifetimes)
        total = np.zeros(ctau.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            for n, share in zip(neighbours, (1.0 - fraction, fraction)):
                if share == 0.0:
                    continue
                generated = self.ctau_generated[n]
                log_k = np.log(ctau / generated) if generated > 0 else np.full(ctau.shape, np.inf)
                values = np.interp(np.maximum(log_k, log_grid[0]), log_grid, table[n])
                values[~(log_k <= log_grid[-1] + 1e-12) | ~(ctau > 0)] = np.nan
                total += share * values
        return total

    def to_dict(self) -> dict:
        return {
            "masses": self.masses.tolist(),
            "ctau_generated_cm": self.ctau_generated.tolist(),
            "relative_lifetimes": self.relative_lifetimes.tolist(),
            "ratio": _nan_to_none(self.ratio),
            "error": _nan_to_none(self.error),
            "effective_fraction": _nan_to_none(self.effective_fraction),
        }

    @classmethod
    def from_dict(cls, data: dict) -> LifetimeResponse:
        def array(key):
            return np.array(data[key], dtype=np.float64)  # None -> nan

        return cls(array("masses"), array("ctau_generated_cm"), array("relative_lifetimes"), array("ratio"),
                   array("error"), array("effective_fraction"))  # fmt: skip


def _nan_to_none(values: np.ndarray) -> list:
    return [[None if not math.isfinite(v) else float(v) for v in row] for row in values]
