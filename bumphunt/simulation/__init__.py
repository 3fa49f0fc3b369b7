"""The simulation stage: toy Belle II three-photon events written as ROOT ntuples.

:mod:`~bumphunt.simulation.stage` runs it (:func:`run_simulation`); the physics lives in
:mod:`~bumphunt.simulation.generators` (ALP and P gamma production and decay),
:mod:`~bumphunt.simulation.qed` (e+e- -> gamma gamma gamma),
:mod:`~bumphunt.simulation.beam` (beam-energy spread and initial-state radiation: each
collision's sqrt(s') and frame) and :mod:`~bumphunt.simulation.detector` (calorimeter
resolution, clusters, acceptance, cluster time, tracks, trigger).
"""

from .stage import Reconstruction, SampleSummary, plan_samples, run_simulation

__all__ = ["Reconstruction", "SampleSummary", "plan_samples", "run_simulation"]
