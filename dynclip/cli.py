"""The ``dynclip`` command line: run studies, write the report, benchmark, show versions.

Examples::

    dynclip list                     # the studies and what each tests
    dynclip run S2 --quick           # a small run in seconds, figures into figures/quick/s02_azuma/
    dynclip run S5 --out /tmp/s5     # full run into another folder
    dynclip run all                  # every study, then figures/REPORT.md
    dynclip report [DIR]             # rebuild REPORT.md from the numbers.json files in DIR (figures/)
    dynclip bench --quick            # dynclip vs torch / JAX (from a clone of the repository)
    dynclip info                     # versions, threads, Numba cache folder
    dynclip warmup                   # compile every kernel now (once per machine), e.g. before a class

Exit codes: 0 every study ran (whatever its verdicts: a paper's claim that fails is a result),
1 a study or the benchmark could not run, 2 bad usage.
"""
import argparse
import os
import sys


class _UsageError(Exception):
    pass


def _parser():
    p = argparse.ArgumentParser(prog="dynclip", description="Gradient clipping as a dynamical system.",
                                epilog=__doc__.split("Examples::", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.add_parser("list", help="list the studies")
    r = sub.add_parser("run", help="run a study (S1..S12) or all", description="Run a study and write its figures "
                       "and numbers.json. Example: dynclip run S2 --quick")
    r.add_argument("study", help="S1 .. S12, or all")
    r.add_argument("--quick", action="store_true",
                   help="small sizes: seconds instead of minutes; written to figures/quick/ unless --out is given")
    r.add_argument("--out", default=None, help="output folder (default figures/<study>; 'all' writes DIR/REPORT.md)")
    rep = sub.add_parser("report", help="write REPORT.md from the studies' numbers.json in a folder (default figures/)")
    rep.add_argument("folder", nargs="?", default=None)
    b = sub.add_parser("bench", help="speed against torch and JAX (needs a clone of the repository)")
    b.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the benchmark (e.g. --quick)")
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


def _studies_main(argv):
    try:
        from studies.__main__ import main as smain
    except ImportError:
        raise _UsageError("the studies package is not installed: install dynclip from its repository "
                          "(pip install -e .)") from None
    return smain(argv)


def _warmup():
    """Compile the engine's kernels and every study's (a quick run of each into a temporary folder)."""
    import tempfile
    import time
    import warnings
    t0 = time.perf_counter()
    print("dynclip warmup: compiling the kernels by running every study in quick mode (a few minutes the "
          "first time; about a minute once cached, the time of the quick runs themselves) ...", flush=True)
    try:
        from studies import _harness as h
    except ImportError:
        h = None
    if h is None:               # the library alone
        import numpy as np
        import dynclip as dc
        X, Y = dc.data.d64("light")
        net = dc.mlp([2, 8, 1])
        dc.simulate(net, X, Y, dc.clipping.classic(1.0), dc.schedules.inverse(1.0, 10.0), n_steps=10, seed=0,
                    track_noise=True, progress=False)
        dc.meanfield.H(net, X, Y, dc.clipping.classic(1.0), dc.init_params(net))
        dc.ode.rk4(net, X, Y, dc.clipping.classic(1.0), dc.init_params(net), np.array([0.0, 0.1]), dt=0.05)
    else:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in h.available():
                t1 = time.perf_counter()
                h.run_study(s, quick=True, outdir=os.path.join(tmp, s))
                print(f"  {s}: {time.perf_counter() - t1:.0f} s", flush=True)
    print(f"dynclip warmup: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def _bench(args):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(here, "benchmarks")):
        raise _UsageError("the benchmarks are not installed with the package: run 'dynclip bench' from a clone "
                          "of the repository (pip install -e '.[bench]')")
    sys.path.insert(0, here)
    from benchmarks.run import main as bmain
    return bmain(args) or 0


def main(argv=None):
    p = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:                   # every option after 'bench' is the benchmark's own
        try:
            return _bench(argv[1:])
        except _UsageError as e:
            print(f"dynclip: error: {e}", file=sys.stderr)
            return 2
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if a.cmd is None:
            p.print_help()
            return 2
        if a.cmd == "info":
            return _info()
        if a.cmd == "warmup":
            return _warmup()
        if a.cmd == "bench":
            return _bench(a.args)
        if a.cmd == "run":
            return _studies_main(["run", a.study] + (["--quick"] if a.quick else []) +
                                 (["--out", a.out] if a.out else []))
        if a.cmd == "report":
            return _studies_main(["report"] + ([a.folder] if a.folder else []))
        return _studies_main([a.cmd])
    except _UsageError as e:
        print(f"dynclip: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"dynclip: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dynclip: interrupted", file=sys.stderr)
        return 130
