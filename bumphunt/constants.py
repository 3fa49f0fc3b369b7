"""Physical constants and particle properties used throughout bumphunt.

Units: GeV, cm, pb unless a name says otherwise.
"""

from __future__ import annotations

#: Fine-structure constant at zero momentum transfer, alpha(0) (CODATA 2018). bumphunt uses
#: alpha(0) for every real-photon vertex (ALP production and QED gamma gamma gamma).
ALPHA_EM = 1.0 / 137.035999084

#: hbar * c in GeV cm (CODATA 2018: 197.3269804 MeV fm).
HBAR_C_GEV_CM = 1.973269804e-14

#: Conversion of a cross-section from GeV^-2 to pb: (hbar c)^2 = 0.3893794e9 pb GeV^2.
GEV2_TO_PB = 0.3893793721e9

#: Electron mass (PDG 2024), GeV.
ELECTRON_MASS = 0.51099895e-3

#: Neutral pseudoscalar meson masses (PDG 2024), GeV.
PI0_MASS = 0.1349768
ETA_MASS = 0.547862
ETAPRIME_MASS = 0.95778

#: Branching fractions P -> gamma gamma (PDG 2024).
PI0_TO_GG = 0.98823
ETA_TO_GG = 0.3936
ETAPRIME_TO_GG = 0.0222
