"""bumphunt: a dark-sector bump hunt from three-photon events to a coupling exclusion.

Stages (one module each): :mod:`bumphunt.simulate` (toy Belle II events),
:mod:`bumphunt.ntuple` (ROOT I/O), :mod:`bumphunt.config` (analysis configuration).
Heavy dependencies are imported by the stage that needs them, not here.
"""

from ._version import __version__
from .config import load_config
from .errors import BumphuntError, ConfigError, NtupleError

__all__ = ["BumphuntError", "ConfigError", "NtupleError", "__version__", "load_config"]
