"""The one place where Numba compile options live.

``cache=True`` keeps compiled kernels on disk, so a new process pays ~10 ms per kernel
instead of seconds. ``error_model="numpy"`` removes Numba's per-division zero check, which
otherwise stops LLVM from vectorising loops (and gives IEEE inf/nan instead of raising,
which is what the engine wants: divergence is data, kernels never raise).
No ``fastmath``: results must stay bit-reproducible and equal to the NumPy references.

Numba invalidates a cached function only when *its own* source file changes, yet a cached
kernel embeds the machine code of the functions it calls from other files. A kernel cached
before an upgrade of dynclip could then run stale (or, if a data layout changed, crash).
So the cache lives in a folder keyed by a hash of the sources of dynclip's kernel modules:
``$NUMBA_CACHE_DIR/dynclip-<hash>`` (default base ``~/.cache/dynclip``). This sets
``numba.config.CACHE_DIR`` for the process.
"""
import glob
import hashlib
import os

import numba

_OPTS = dict(cache=True, nogil=True, error_model="numpy")


def _cache_dir():
    h = hashlib.sha1(numba.__version__.encode())
    for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*.py"))):
        with open(path, "rb") as f:
            src = f.read()
        if any(tag in src for tag in (b"@njit", b"@pjit", b"@hot", b"@intrinsic")):   # only modules with kernels
            h.update(os.path.basename(path).encode() + src)
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dynclip")
    return os.path.join(base, "dynclip-" + h.hexdigest()[:16])


try:
    CACHE_DIR = _cache_dir()
    os.makedirs(CACHE_DIR, exist_ok=True)
    numba.config.CACHE_DIR = CACHE_DIR
except OSError:  # read-only home: fall back to Numba's own choice
    CACHE_DIR = numba.config.CACHE_DIR


_announced = False


def announce_compile(what="dynclip"):
    """Tell the user, once per process, when the engine's kernels are not in the disk cache yet: the
    first run then spends one to three minutes compiling (once per machine and dynclip version;
    ``dynclip warmup`` does it up front)."""
    global _announced
    if _announced:
        return
    _announced = True
    if glob.glob(os.path.join(glob.escape(numba.config.CACHE_DIR or ""), "**", "*run_chunk*.nbi"), recursive=True):
        return
    from ._console import say
    say(f"{what}: compiling the kernels (once per machine and dynclip version, about 1-3 minutes; "
        "'dynclip warmup' does it up front) ...")


def njit(fn):
    """Compile ``fn`` with dynclip's options."""
    return numba.njit(**_OPTS)(fn)


def hot(fn):
    """Compile ``fn`` without Numba's reference counting (NRT).

    For functions that receive arrays but never allocate: with NRT, every array argument,
    attribute read and view costs an atomic increment/decrement pair (measured: half of
    the time of a step on small networks). Such a function cannot create arrays (Numba
    refuses to compile it), and the arrays it receives must outlive the call, which holds
    for every caller in dynclip (workspaces are owned by the calling kernel).
    """
    return numba.njit(_nrt=False, **_OPTS)(fn)


def pjit(fn):
    """Compile ``fn`` with dynclip's options and ``parallel=True`` (for ``prange``)."""
    return numba.njit(parallel=True, **_OPTS)(fn)


def hot_inline(fn):
    """:func:`hot`, and inlined into every caller by Numba (``inline="always"``).

    For the small glue functions called once or twice per step with many array arguments
    (a Workspace alone is nine arrays, passed as ~60 machine words): inlining them saved 9 %
    of a B=1 step (0.99 -> 0.91 us, interleaved A/B runs), for ~10 s more one-off compilation.
    Not for the large kernels (forward, backward): inlining those was slower and doubled the
    compile time.
    """
    return numba.njit(_nrt=False, inline="always", **_OPTS)(fn)
