"""The one place where Numba compile options live.

``cache=True`` keeps compiled kernels on disk, so a new process pays ~10 ms per kernel
instead of seconds. ``error_model="numpy"`` removes Numba's per-division zero check, which
otherwise stops LLVM from vectorising loops (and gives IEEE inf/nan instead of raising,
which is what the engine wants: divergence is data, kernels never raise).
No ``fastmath``: results must stay bit-reproducible and equal to the NumPy references.
"""
import numba

_OPTS = dict(cache=True, nogil=True, error_model="numpy")


def njit(fn):
    """Compile ``fn`` with dynclip's options."""
    return numba.njit(**_OPTS)(fn)


def pjit(fn):
    """Compile ``fn`` with dynclip's options and ``parallel=True`` (for ``prange``)."""
    return numba.njit(parallel=True, **_OPTS)(fn)
