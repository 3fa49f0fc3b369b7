"""Benchmark of the counting experiment's toys: pseudo-experiments per second for a single-bin
model with a Poisson-constrained background (on/off).

The model: n = 55 observed, b = 50 +- 7 (tau = 1.02, off count m = 51), the pyhf
``shapesys`` example of the tests. Timed, best of K runs:

* ``ToyCalculator.pvalues(mu)``: draw (n, m) for every toy of the signal + background and of
  the background-only hypothesis, q~_mu for each by the closed-form profile, p-values by
  counting; 2^20 toys per hypothesis (2^21 pseudo-experiments per call);
* a whole toy CLs upper limit with the default 4096 toys (root finding, every evaluation);
* as a reference measured in the same run, a plain Python loop over a few hundred toys that
  draws each with numpy and profiles b numerically with scipy (``minimize_scalar``), as one
  would first write it.

Usage: python bench/bench_counting.py [--toys N] [--repeat K] [--reference-toys N]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from scipy import optimize, special

from bumphunt.stats.counting import DEFAULT_TOYS, CountingModel, ToyCalculator, counting_upper_limit

MODEL = CountingModel.with_uncertainty(55, 50.0, 7.0 / 50.0)
MU = 20.0


def best_time(function, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _nll(mu, b, n, m, tau):
    expected = mu + b
    return -(special.xlogy(n, expected) - expected + special.xlogy(m, tau * b) - tau * b)


def _q_tilde_scipy(mu, n, m, tau):
    """q~_mu of one toy with b profiled by scipy (bounded scalar minimisation)."""

    def profiled(signal):
        fit = optimize.minimize_scalar(lambda b: _nll(signal, b, n, m, tau), bounds=(1e-9, 10 * (n + m + 1)),
                                       method="bounded", options={"xatol": 1e-9})  # fmt: skip
        return fit.fun

    s_hat = n - m / tau
    if s_hat > mu:
        return 0.0
    best = _nll(max(s_hat, 0.0), m / tau, n, m, tau) if s_hat >= 0 else profiled(0.0)
    return max(2.0 * (profiled(mu) - best), 0.0)


def reference_pvalues(model: CountingModel, mu: float, toys: int, seed: int = 1) -> tuple[float, float]:
    """The same p-values, one toy at a time: numpy draws, scipy profile."""
    rng = np.random.default_rng(seed)
    n, m, tau = model.n_observed, model.tau * model.background, model.tau
    observed = _q_tilde_scipy(mu, n, m, tau)
    b_mu, b_0 = (float(model.profile(signal)[0]) for signal in (mu, 0.0))
    at_least = [0, 0]
    for _ in range(toys):
        for index, (signal, b) in enumerate(((mu, b_mu), (0.0, b_0))):
            q = _q_tilde_scipy(mu, rng.poisson(signal + b), rng.poisson(tau * b), tau)
            at_least[index] += q >= observed - 1e-9
    return at_least[0] / toys, at_least[1] / toys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", type=int, default=2**20, help="toys per hypothesis of one p-value call")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reference-toys", type=int, default=200)
    args = parser.parse_args()

    setup = best_time(lambda: ToyCalculator(MODEL, args.toys, seed=1), args.repeat)
    calculator = ToyCalculator(MODEL, args.toys, seed=1)
    pvalues = calculator.pvalues(MU)
    call = best_time(lambda: calculator.pvalues(MU), args.repeat)
    pseudo_experiments = 2 * args.toys

    evaluations = []
    original = ToyCalculator.pvalues

    def counted(self, mu):
        evaluations.append(mu)
        return original(self, mu)

    ToyCalculator.pvalues = counted
    limit = counting_upper_limit(MODEL, seed=1)
    per_limit = len(evaluations)
    ToyCalculator.pvalues = original
    limit_time = best_time(lambda: counting_upper_limit(MODEL, seed=1), args.repeat)

    start = time.perf_counter()
    reference = reference_pvalues(MODEL, MU, args.reference_toys)
    reference_time = time.perf_counter() - start

    figures = {
        "model": {"n": MODEL.n_observed, "background": MODEL.background, "tau": MODEL.tau, "mu": MU},
        "toys_per_hypothesis": args.toys,
        "pvalue_call_seconds": call,
        "toys_per_second": pseudo_experiments / call,
        "toys_per_second_with_setup": pseudo_experiments / (call + setup),
        "pvalues": {"clsb": pvalues[0], "clb": pvalues[1]},
        "limit_default_toys": DEFAULT_TOYS,
        "limit_seconds": limit_time,
        "limit_evaluations": per_limit,
        "limit_toys_per_second": per_limit * 2 * DEFAULT_TOYS / limit_time,
        "upper_limit": limit,
        "reference_toys": 2 * args.reference_toys,
        "reference_toys_per_second": 2 * args.reference_toys / reference_time,
        "reference_pvalues": {"clsb": reference[0], "clb": reference[1]},
        "speedup": (pseudo_experiments / call) / (2 * args.reference_toys / reference_time),
    }
    print(
        f"{figures['toys_per_second']:.3g} toys/s (vectorised, {args.toys} per hypothesis), "
        f"{figures['reference_toys_per_second']:.3g} toys/s (Python + scipy loop); one toy limit "
        f"{limit_time * 1e3:.1f} ms ({per_limit} p-value evaluations of 2 x {DEFAULT_TOYS} toys)",
        flush=True,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
