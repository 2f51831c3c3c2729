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
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_OPTS = dict(cache=True, nogil=True, error_model="numpy")


def _cache_dir():
    h = hashlib.sha1(numba.__version__.encode())
    for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*.py"))):
        with open(path, "rb") as f:
            src = f.read()
        if any(tag in src for tag in (b"@njit", b"@hot", b"@intrinsic")):   # only modules with kernels
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
    say(f"{what}: compiling the kernels (once per machine and dynclip version, about a minute; "
        "'dynclip warmup' does it up front) ...")


def _one_specialisation(disp):
    """Make calls from other kernels compile ``disp`` for the plain argument types only.

    By default Numba compiles a separate copy of a kernel for every constant argument a caller
    passes (``norm(x, 0, n)`` and ``norm(x, i, n)`` become two compilations, ``backward(..., True)``
    a third), each with everything it inlines. Here a literal argument type is widened to its plain
    type before the kernel is compiled; the arithmetic is the same (only branches on the constant
    stay in the code instead of being pruned at compile time), so results do not change.
    """
    from numba.core import types
    base = disp.get_call_template

    def get_call_template(args, kws):
        return base(tuple(types.unliteral(a) for a in args), {k: types.unliteral(v) for k, v in kws.items()})

    disp.get_call_template = get_call_template
    return disp


def njit(fn):
    """Compile ``fn`` with dynclip's options."""
    return _one_specialisation(numba.njit(**_OPTS)(fn))


def hot(fn):
    """Compile ``fn`` without Numba's reference counting (NRT).

    For functions that receive arrays but never allocate: with NRT, every array argument,
    attribute read and view costs an atomic increment/decrement pair (measured: half of
    the time of a step on small networks). Such a function cannot create arrays (Numba
    refuses to compile it), and the arrays it receives must outlive the call, which holds
    for every caller in dynclip (workspaces are owned by the calling kernel).
    """
    return _one_specialisation(numba.njit(_nrt=False, **_OPTS)(fn))


_pool = None
_pool_lock = threading.Lock()


def _workers(n):
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="dynclip")
        return _pool


def run_rows(kernel, n_rows, *args, serial_below=2):
    """``kernel(lo, hi, *args)`` over rows ``0 .. n_rows-1`` (replicas, parameter points), in parallel.

    The one place where dynclip runs in parallel. Rows are independent, so the rows are cut into one
    contiguous block per thread (``numba.get_num_threads()``, set with ``numba.set_num_threads``);
    the calling thread runs the first block and a pool of Python threads the others: the kernels
    release the GIL (``nogil``), so the blocks run on separate cores. A result does not depend on
    the number of threads. Compared with ``parallel=True`` and ``prange``, the kernels compile as
    plain serial code (Numba's parallel transform and its thread-launch wrapper cost ~10 s of
    one-off compilation per kernel). On Ctrl-C every block is finished first, then
    KeyboardInterrupt is raised again: the kernels' outputs stay consistent.
    """
    T = max(1, min(numba.get_num_threads(), n_rows))
    if T == 1 or n_rows < serial_below:
        kernel(0, n_rows, *args)
        return
    cut = [n_rows * i // T for i in range(T + 1)]
    futures = [_workers(T - 1).submit(kernel, cut[i], cut[i + 1], *args) for i in range(1, T)]
    interrupted = False
    try:
        kernel(cut[0], cut[1], *args)
    except KeyboardInterrupt:
        interrupted = True
    for f in futures:
        while True:
            try:
                f.result()
                break
            except KeyboardInterrupt:
                interrupted = True
    if interrupted:
        raise KeyboardInterrupt


def hot_inline(fn):
    """:func:`hot`, and inlined into every caller by Numba (``inline="always"``).

    For the small glue functions called once or twice per step with many array arguments
    (a Workspace alone is nine arrays, passed as ~60 machine words): inlining them saved 9 %
    of a B=1 step (0.99 -> 0.91 us, interleaved A/B runs), for ~10 s more one-off compilation.
    Not for the large kernels (forward, backward): inlining those was slower and doubled the
    compile time.
    """
    return _one_specialisation(numba.njit(_nrt=False, inline="always", **_OPTS)(fn))
