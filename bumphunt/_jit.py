"""The package's one numba compilation policy.

Every compiled kernel is decorated with :data:`jit` (scalar and serial loops) or
:data:`jit_parallel` (``prange`` loops over events): cached on disk, numpy's error model
(a division by zero gives inf/NaN instead of raising), no fast-math (results must not depend
on the instruction set). Shape and dtype checks belong in the Python wrappers, never in the
kernels.
"""

from __future__ import annotations

import numba

_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False}

#: Decorator of serial kernels.
jit = numba.njit(**_OPTIONS)

#: Decorator of kernels with ``numba.prange`` loops.
jit_parallel = numba.njit(parallel=True, **_OPTIONS)

prange = numba.prange
