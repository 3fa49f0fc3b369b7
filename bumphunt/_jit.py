"""The package's one numba compilation policy.

Every compiled kernel is decorated with :data:`jit` (scalar and serial loops) or
:data:`jit_parallel` (``prange`` loops over events): cached on disk, numpy's error model
(a division by zero gives inf/NaN instead of raising), no fast-math (results must not depend
on the instruction set). Shape and dtype checks belong in the Python wrappers, never in the
kernels.
"""

from __future__ import annotations

import os

# idle OpenMP threads of the parallel kernels sleep instead of spinning: spinning threads
# starve the next small kernel (the shape fits call one tens of thousands of times) whenever
# anything else runs on the cores, up to 100 times slower; read when the runtime starts
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False}

#: Decorator of serial kernels.
jit = numba.njit(**_OPTIONS)

#: Decorator of kernels with ``numba.prange`` loops.
jit_parallel = numba.njit(parallel=True, **_OPTIONS)

prange = numba.prange
