"""The ``dynclip`` command line: the library's own commands.

Examples::

    dynclip info                     # versions, threads, Numba cache folder
    dynclip warmup                   # compile every kernel now (once per machine), e.g. before a class

The studies and the benchmark are not part of the installed package; they run from a clone of
the repository, at its root:

    python -m studies run S3 --quick # a study (list, run S1..S14 or all, report)
    python -m benchmarks.run --quick # dynclip vs torch / JAX

Exit codes: 0 done, 2 bad usage.
"""
import argparse
import sys

#: Commands that moved to the clone: name -> the module that runs them there.
MOVED = {"list": "studies", "run": "studies", "report": "studies", "bench": "benchmarks.run"}


def _parser():
    p = argparse.ArgumentParser(prog="dynclip", description="Gradient clipping as a dynamical system.",
                                epilog=__doc__.split("Examples::", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.add_parser("info", help="versions, threads and the Numba cache folder")
    sub.add_parser("warmup", help="compile every kernel now (once per machine; e.g. before a class)")
    return p


def _info():
    import numba
    import numpy
    import scipy
    from . import __version__
    from ._jit import CACHE_DIR
    print(f"dynclip {__version__}\nnumpy {numpy.__version__}\nscipy {scipy.__version__}\nnumba {numba.__version__}")
    print(f"threads {numba.get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})")
    print(f"numba cache {CACHE_DIR or '(next to the package sources, __pycache__)'}")
    print(f"python {sys.version.split()[0]} on {sys.platform}")
    return 0


def _warmup():
    """Compile every kernel of the library by calling each compiled public function once, at tiny sizes."""
    import time
    import numpy as np
    import dynclip as dc
    from dynclip import _jit, clipping, meanfield, ode, schedules, toys
    t0 = time.perf_counter()
    _jit._announced = True      # this message replaces the engine's own compile notice
    print("dynclip warmup: compiling the kernels (about a minute the first time; seconds once cached) ...",
          flush=True)
    X, Y = dc.data.d64("light")
    net = dc.mlp([2, 8, 1])
    rule, theta = clipping.classic(1.0), dc.init_params(net)
    dc.simulate(net, X, Y, rule, schedules.inverse(1.0, 10.0), n_steps=10, seed=0, track_noise=True,
                progress=False)
    dc.loss_and_grad(net, theta, X, Y)
    meanfield.H(net, X, Y, rule, theta)
    meanfield.H(net, X, Y, rule, theta, batch_size=4, n_batches=4)
    meanfield.grad_F(net, X, Y, theta)
    meanfield.per_sample_grad_norms(net, X, Y, theta)
    ode.rk4(net, X, Y, rule, theta, np.array([0.0, 0.1]), dt=0.05)
    for dtype in ("float64", "float32"):
        toys.value_and_grad(toys.cosh(), np.ones(2), dtype=dtype)
        toys.run(toys.cosh(), rule, schedules.inverse(1.0, 10.0), np.ones((2, 2)), 5, noise_sd=0.1, dtype=dtype)
    print(f"dynclip warmup: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def _moved(cmd, rest):
    where = "python -m " + MOVED[cmd] + (" " + cmd if MOVED[cmd] == "studies" else "")
    print(f"dynclip: '{cmd}' runs from a clone of the repository, at its root: "
          f"{' '.join([where] + rest)}", file=sys.stderr)
    return 2


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in MOVED:
        return _moved(argv[0], argv[1:])
    p = _parser()
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if a.cmd == "info":
            return _info()
        if a.cmd == "warmup":
            return _warmup()
        p.print_help()
        return 2
    except KeyboardInterrupt:
        print("dynclip: interrupted", file=sys.stderr)
        return 130
