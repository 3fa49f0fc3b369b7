"""The same hypothesis test in RooFit/RooStats, for cross-checks (needs the optional `root` package).

Builds the model of :mod:`bumphunt.stats.likelihood` in a RooWorkspace (:func:`roofit_signal_pdf`
for the fixed signal, RooChebychev for the background, extended RooAddPdf),
then runs RooStats' AsymptoticCalculator (one-sided q~_mu) with the HypoTestInverter (CLs)
for the upper limits and the one-sided discovery test for p0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RooStatsResult:
    """RooStats' answers: observed and expected limits on n_sig, p0 and the fitted n_sig (>= 0)."""

    upper_limit: float
    expected: dict[int, float]
    p0: float
    n_sig: float


def roofit_signal_pdf(shape, mass):
    """The signal model of a :class:`bumphunt.models.SignalShape` in RooFit, fixed parameters.

    RooCrystalBall (plus a RooGaussian of the same mean when the shape has one) for the peak;
    RooChebychev for the wrong pairings, or with an endpoint a RooGenericPdf
    (1 + c1 x') erfc((m - edge) / (sqrt(2) width)) / 2, normalised numerically by RooFit.

    Returns
    -------
    the RooAbsPdf, and the RooFit objects it uses (keep them alive while it is used).
    """
    import ROOT

    def constant(name, value):
        return ROOT.RooRealVar(name, name, value)

    names = ("mu", "sigma_l", "sigma_r", "alpha_l", "n_l", "alpha_r", "n_r")
    mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r = (constant(n, v) for n, v in zip(names, shape.peak_parameters))
    keep = [mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r]
    peak = ROOT.RooCrystalBall("dscb", "dscb", mass, mu, sigma_l, sigma_r, alpha_l, n_l, alpha_r, n_r)
    keep.append(peak)
    if shape.gauss_fraction > 0.0:
        gauss_sigma, gauss_fraction = constant("gauss_sigma", shape.gauss_sigma), constant("g", shape.gauss_fraction)
        gauss = ROOT.RooGaussian("gauss", "gauss", mass, mu, gauss_sigma)
        peak = ROOT.RooAddPdf("peak", "peak", ROOT.RooArgList(gauss, peak), ROOT.RooArgList(gauss_fraction))
        keep += [gauss_sigma, gauss_fraction, gauss, peak]
    c_comb = constant("c_comb", shape.c1)
    keep.append(c_comb)
    if np.isfinite(shape.edge):
        x, lower, span = mass.GetName(), float(shape.lower), float(shape.upper - shape.lower)
        formula = (
            f"(1 + c_comb * (2 * ({x} - {lower!r}) / {span!r} - 1))"
            f" * 0.5 * TMath::Erfc(({x} - {float(shape.edge)!r}) / {math.sqrt(2.0) * shape.edge_width!r})"
        )
        combinatorial = ROOT.RooGenericPdf("comb", "comb", formula, ROOT.RooArgList(mass, c_comb))
    else:
        combinatorial = ROOT.RooChebychev("comb", "comb", mass, ROOT.RooArgList(c_comb))
    fraction = constant("fraction", shape.fraction)
    signal = ROOT.RooAddPdf("signal", "signal", ROOT.RooArgList(peak, combinatorial), ROOT.RooArgList(fraction))
    keep += [combinatorial, fraction]
    return signal, keep


def roostats_hypothesis_test(
    x: np.ndarray, shape, *, order: int = 3, confidence_level: float = 0.95, scan_points: int = 60,
    scan_max: float | None = None, normalisation: tuple[float, str] | None = None,
) -> RooStatsResult:  # fmt: skip
    """Run RooStats on candidate masses ``x`` in the window of ``shape``.

    Parameters
    ----------
    x : array
        Candidate masses; those outside the window are dropped.
    shape : SignalShape
        Fixed signal shape at the hypothesis.
    order : int
        Chebyshev background order.
    scan_points, scan_max :
        HypoTestInverter's fixed scan of n_sig in [0, scan_max] (default: 6 x the fitted error
        above the fitted yield); the limits are interpolated between its points.
    normalisation : (size, constraint), optional
        A systematic on the signal yield: n_sig (1 + size)^theta ("lognormal") or
        n_sig (1 + size theta) ("gaussian"), theta constrained by a unit Gaussian around the
        global observable theta_0 = 0.
    """
    import ROOT

    ROOT.RooMsgService.instance().setGlobalKillBelow(ROOT.RooFit.ERROR)
    ROOT.RooStats.UseNLLOffset(True)
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x) & (x >= shape.lower) & (x <= shape.upper)]
    n = float(len(x))
    workspace = ROOT.RooWorkspace("w")
    mass = ROOT.RooRealVar("m_gg", "m_gg", shape.lower, shape.upper)
    signal, keep_alive = roofit_signal_pdf(shape, mass)
    coefficients = [ROOT.RooRealVar(f"c{k}", f"c{k}", 0.0, -2.0, 2.0) for k in range(1, order + 1)]
    background = ROOT.RooChebychev("background", "background", mass, ROOT.RooArgList(*coefficients))
    # the POI bounded at zero, as for upper limits in RooStats and Combine: the reference fit of
    # q~_mu then sits at n_sig = 0 when the data fluctuate low (Cowan et al. 2011, eq. 16)
    n_sig = ROOT.RooRealVar("n_sig", "n_sig", 0.0, 0.0, n)
    n_bkg = ROOT.RooRealVar("n_bkg", "n_bkg", n, 0.0, 3.0 * n + 10.0)
    yield_sig, constraint = n_sig, None
    if normalisation is not None:
        size, kind = normalisation
        theta = ROOT.RooRealVar("theta", "theta", 0.0, -5.0, 5.0)
        theta_0 = ROOT.RooRealVar("theta_0", "theta_0", 0.0, -10.0, 10.0)
        theta_0.setConstant(True)
        width = ROOT.RooRealVar("theta_width", "theta_width", 1.0)
        width.setConstant(True)
        formula = f"n_sig * pow({1.0 + size!r}, theta)" if kind == "lognormal" else f"n_sig * (1 + {size!r} * theta)"
        yield_sig = ROOT.RooFormulaVar("n_sig_scaled", formula, ROOT.RooArgList(n_sig, theta))
        constraint = ROOT.RooGaussian("constraint", "constraint", theta_0, theta, width)
        keep_alive += [theta, theta_0, width, yield_sig]
    extended = ROOT.RooAddPdf("model", "model", ROOT.RooArgList(signal, background), ROOT.RooArgList(yield_sig, n_bkg))
    model = extended
    if constraint is not None:
        model = ROOT.RooProdPdf("constrained", "constrained", ROOT.RooArgList(extended, constraint))
    data = ROOT.RooDataSet.from_numpy({"m_gg": x}, ROOT.RooArgSet(mass))
    workspace.Import(model)
    workspace.Import(data)
    model = workspace.pdf(model.GetName())
    n_sig, data = workspace.var("n_sig"), workspace.data(data.GetName())

    config = ROOT.RooStats.ModelConfig("config", workspace)
    config.SetPdf(model)
    config.SetParametersOfInterest(ROOT.RooArgSet(n_sig))
    config.SetObservables(ROOT.RooArgSet(workspace.var("m_gg")))
    nuisances = [workspace.var("n_bkg")] + [workspace.var(f"c{k}") for k in range(1, order + 1)]
    if normalisation is not None:
        nuisances.append(workspace.var("theta"))
        config.SetGlobalObservables(ROOT.RooArgSet(workspace.var("theta_0")))
    config.SetNuisanceParameters(ROOT.RooArgSet(*nuisances))

    model.fitTo(data, ROOT.RooFit.Extended(True), ROOT.RooFit.PrintLevel(-1), ROOT.RooFit.Save(False))
    fitted, error = n_sig.getVal(), n_sig.getError()

    signal_plus_background = config.Clone("sb")
    n_sig.setVal(max(fitted, error))
    signal_plus_background.SetSnapshot(ROOT.RooArgSet(n_sig))
    background_only = config.Clone("b")
    n_sig.setVal(0.0)
    background_only.SetSnapshot(ROOT.RooArgSet(n_sig))

    discovery = ROOT.RooStats.AsymptoticCalculator(data, signal_plus_background, background_only)
    discovery.SetOneSidedDiscovery(True)
    discovery.SetPrintLevel(-1)
    p0 = discovery.GetHypoTest().NullPValue()

    calculator = ROOT.RooStats.AsymptoticCalculator(data, background_only, signal_plus_background)
    calculator.SetOneSided(True)
    calculator.SetQTilde(True)
    calculator.SetPrintLevel(-1)
    inverter = ROOT.RooStats.HypoTestInverter(calculator)
    inverter.SetConfidenceLevel(confidence_level)
    inverter.UseCLs(True)
    inverter.SetVerbose(False)
    high = scan_max if scan_max is not None else max(fitted, 0.0) + 6.0 * error
    inverter.SetFixedScan(scan_points, 0.0, high)
    interval = inverter.GetInterval()
    expected = {band: float(interval.GetExpectedUpperLimit(band)) for band in (-2, -1, 0, 1, 2)}
    return RooStatsResult(float(interval.UpperLimit()), expected, float(p0), float(fitted))
