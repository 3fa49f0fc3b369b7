"""Benchmark of the kinematic fit: events per second on all cores and on one core.

Fits 1,000,000 simulated three-photon events (gamma gamma gamma background, default
detector) with ``bumphunt.kinfit.fit_photons`` and, as a reference measured in the same run,
with a straightforward compiled implementation of the same algorithm (numba, per-event 9x9
matrices and numpy linear algebra, as one would first write it).

Usage: python bench/bench_kinfit.py [--events N] [--repeat K]
The last line of output is one JSON object with the figures (best of K runs each).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numba
import numpy as np


@numba.njit(cache=True)
def _straightforward_event(a0, v0, beam):
    a = a0.copy()
    previous = np.inf
    value = np.nan
    for _ in range(20):
        h = -beam.copy()
        d = np.zeros((4, 9))
        for p in range(3):
            e, t, f = a[3 * p], a[3 * p + 1], a[3 * p + 2]
            st, ct, sf, cf = np.sin(t), np.cos(t), np.sin(f), np.cos(f)
            h[0] += e
            h[1] += e * st * cf
            h[2] += e * st * sf
            h[3] += e * ct
            d[0, 3 * p], d[1, 3 * p], d[2, 3 * p], d[3, 3 * p] = 1.0, st * cf, st * sf, ct
            d[1, 3 * p + 1], d[2, 3 * p + 1], d[3, 3 * p + 1] = e * ct * cf, e * ct * sf, -e * st
            d[1, 3 * p + 2], d[2, 3 * p + 2] = -e * st * sf, e * st * cf
        vd = np.linalg.inv(d @ v0 @ d.T)
        r = d @ (a0 - a) + h
        lam = vd @ r
        value = lam @ r
        if abs(value - previous) < 1e-7 and np.max(np.abs(h)) < 1e-9:
            break
        a = a0 - v0 @ d.T @ lam
        previous = value
    covariance_fit = v0 - v0 @ d.T @ vd @ d @ v0
    return a, value, covariance_fit


@numba.njit(parallel=True, cache=True)
def straightforward_fit(measured, covariance, beam, fitted, chi2):
    """Reference: the textbook iteration with dense 9x9 algebra per event."""
    for event in numba.prange(measured.shape[0]):
        a, value, _ = _straightforward_event(measured[event], covariance[event], beam)
        fitted[event] = a
        chi2[event] = value


def best_rate(function, n_events: int, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return n_events / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()

    from bumphunt.config import load_config
    from bumphunt.kinematics import Beams
    from bumphunt.kinfit import FitStatus, fit_photons
    from bumphunt.ntuple import read_ntuple
    from bumphunt.simulation import run_simulation
    from bumphunt.simulation.detector import unpack_covariance

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(None, {"output_dir": tmp, "simulation.backgrounds.ggg.events": int(options.events * 1.4)})
        (summary,) = run_simulation(config, samples=["ggg"], progress=False)
        data = read_ntuple(summary.path, ["photon_E", "photon_theta", "photon_phi", "photon_cov"])
    n = options.events
    if len(data["photon_E"]) < n:
        raise SystemExit(f"simulated only {len(data['photon_E'])} events, fewer than {n}")
    energy, theta, phi, cov = (
        np.ascontiguousarray(data[k][:n]) for k in ("photon_E", "photon_theta", "photon_phi", "photon_cov")
    )
    beam = Beams.from_config(config).four_momentum

    measured = np.ascontiguousarray(np.stack([energy, theta, phi], axis=-1).reshape(n, 9))
    dense = np.zeros((n, 9, 9))
    blocks = unpack_covariance(cov.astype(np.float64))
    for p in range(3):
        dense[:, 3 * p : 3 * p + 3, 3 * p : 3 * p + 3] = blocks[:, p]
    reference_fitted, reference_chi2 = np.empty((n, 9)), np.empty(n)

    fit_photons(energy[:100], theta[:100], phi[:100], cov[:100], beam)  # compile or load from cache
    straightforward_fit(measured[:100], dense[:100], beam, reference_fitted[:100], reference_chi2[:100])

    figures = {"events": n, "cores": numba.config.NUMBA_NUM_THREADS}
    for label, threads in (("all_cores", numba.config.NUMBA_NUM_THREADS), ("one_core", 1)):
        numba.set_num_threads(threads)
        figures[f"events_per_second_{label}"] = best_rate(
            lambda: fit_photons(energy, theta, phi, cov, beam), n, options.repeat
        )
        figures[f"events_per_second_full_covariance_{label}"] = best_rate(
            lambda: fit_photons(energy, theta, phi, cov, beam, full_covariance=True), n, options.repeat
        )
        figures[f"reference_events_per_second_{label}"] = best_rate(
            lambda: straightforward_fit(measured, dense, beam, reference_fitted, reference_chi2), n, options.repeat
        )
        figures[f"speedup_over_reference_{label}"] = (
            figures[f"events_per_second_{label}"] / figures[f"reference_events_per_second_{label}"]
        )
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    result = fit_photons(energy, theta, phi, cov, beam)
    converged = result.status == FitStatus.CONVERGED
    figures["converged_fraction"] = float(converged.mean())
    figures["mean_iterations"] = float(result.iterations[converged].mean())
    agree = converged & np.isfinite(reference_chi2)
    figures["max_chi2_difference_to_reference"] = float(np.max(np.abs(result.chi2[agree] - reference_chi2[agree])))
    for key, value in figures.items():
        print(f"{key:45s} {value:,.4g}" if isinstance(value, float) else f"{key:45s} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
