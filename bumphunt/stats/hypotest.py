"""Hypothesis tests at one mass: discovery significance and CLs upper limits (asymptotic).

q0 for discovery and q~_mu for upper limits (Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011)
1554) on the likelihood of :mod:`bumphunt.stats.likelihood`; sigma(mu) comes from the
Asimov data set at each mu, as CMS Combine does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .asymptotic import BANDS, cls_from_q, expected_limits, gaussian_limit, solve_increasing
from .likelihood import HypothesisData, HypothesisFit, HypothesisLikelihood


@dataclass(frozen=True)
class HypothesisResult:
    """Signal yield, local significance and CLs upper limits at one mass hypothesis.

    Upper limits are on the number of signal events (candidates in the window).
    ``expected`` maps the band (-2, -1, 0, 1, 2 standard deviations) to the expected limit.
    """

    mass: float
    n_events: float
    n_sig: float
    n_sig_error: float
    q0: float
    z_local: float
    p0_local: float
    upper_limit: float
    expected: dict[int, float]
    confidence_level: float
    status: str

    def to_dict(self) -> dict:
        return {
            "mass": self.mass,
            "n_events": self.n_events,
            "n_sig": self.n_sig,
            "n_sig_err": self.n_sig_error,
            "q0": self.q0,
            "z_local": self.z_local,
            "p0_local": self.p0_local,
            "ul_obs": self.upper_limit,
            "ul_exp_m2": self.expected[-2],
            "ul_exp_m1": self.expected[-1],
            "ul_exp": self.expected[0],
            "ul_exp_p1": self.expected[1],
            "ul_exp_p2": self.expected[2],
            "fit_status": self.status,
        }


def _discovery_fits(likelihood: HypothesisLikelihood) -> tuple[HypothesisFit, HypothesisFit, float, str]:
    """The free fit, the fit with n_sig = 0, q0 (one-sided) and the status: ``"ok"``, or which
    fit failed and how."""
    free = likelihood.fit(errors=True)
    null = likelihood.fit(n_sig=0.0, start=free.values, steps=free.errors)
    q0 = max(2.0 * (null.nll - free.nll), 0.0) if free.n_sig > 0 else 0.0
    if not free.valid:
        return free, null, q0, f"fit failed: signal + background, {free.problem}"
    if not null.valid:
        return free, null, q0, f"fit failed: background only, {null.problem}"
    return free, null, q0, "ok"


def fit_discovery(data: HypothesisData) -> dict:
    """Signal yield and local significance only (no limits): the look-elsewhere toys."""
    free, _, q0, status = _discovery_fits(HypothesisLikelihood(data))
    if status != "ok":
        nan = float("nan")
        return {"n_sig": nan, "n_sig_err": nan, "q0": nan, "z_local": nan, "p0_local": nan, "fit_status": status}
    return {
        "n_sig": free.n_sig,
        "n_sig_err": float(free.errors[0]),
        "q0": q0,
        "z_local": math.sqrt(q0),
        "p0_local": float(stats.norm.sf(math.sqrt(q0))),
        "fit_status": "ok",
    }


def evaluate_hypothesis(data: HypothesisData, *, confidence_level: float = 0.95) -> HypothesisResult:
    """Fit signal + background, compute q0 and the observed and expected CLs upper limits.

    The observed limit solves CLs(mu) = 1 - CL by root finding; each expected band N solves
    sqrt(q~_mu,A(mu)) = Phi^-1(1 - alpha Phi(N)) + N on the background-only Asimov data set
    (nuisance parameters from the fit with n_sig = 0), evaluating the Asimov likelihood at
    each band's own mu.
    """
    alpha = 1.0 - confidence_level
    likelihood = HypothesisLikelihood(data)
    free, null, q0, status = _discovery_fits(likelihood)
    mass = data.mass
    if status != "ok":
        nan = float("nan")
        return HypothesisResult(mass, data.n_events, nan, nan, nan, nan, nan, nan, dict.fromkeys(BANDS, nan),
                                confidence_level, status)  # fmt: skip
    z_local = math.sqrt(q0)

    asimov = likelihood.asimov(null)
    # the Asimov data are the expectation of the null fit: its minimum is at null.values
    asimov_best_nll = asimov.nll(null.values)

    def q_asimov(mu: float) -> float:
        return max(2.0 * (asimov.fit(n_sig=mu, start=null.values, steps=free.errors).nll - asimov_best_nll), 0.0)

    reference = free if free.n_sig >= 0 else null

    def q_tilde(mu: float) -> float:
        if free.n_sig > mu:
            return 0.0
        return max(2.0 * (likelihood.fit(n_sig=mu, start=free.values, steps=free.errors).nll - reference.nll), 0.0)

    def cls(mu: float) -> float:
        return cls_from_q(q_tilde(mu), q_asimov(mu))

    sigma = max(free.errors[0], 1e-3)
    expected = expected_limits(q_asimov, alpha, sigma)
    guess = gaussian_limit(free.n_sig, sigma, alpha)  # the closed form with sigma from the fit
    upper_limit = solve_increasing(lambda mu: alpha - cls(mu), sigma, start=max(free.n_sig, 0.0), guess=guess)
    status = "ok" if all(np.isfinite([upper_limit, *expected.values()])) else "limit not found"
    return HypothesisResult(
        mass, data.n_events, free.n_sig, float(free.errors[0]), q0, z_local, float(stats.norm.sf(z_local)),
        upper_limit, expected, confidence_level, status,
    )  # fmt: skip
