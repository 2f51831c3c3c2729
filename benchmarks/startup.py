"""Cold and warm start: how long a user waits before the first result.

Each command runs in a new process twice: first with an empty Numba cache (cold: every kernel is
compiled, what a new machine or a new dynclip version pays once), then again with the cache
that run filled (warm). Wall time and the CPU time of the child process are reported; on a shared
machine the CPU time is the steadier number (wall time includes waiting for a core).
"""
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIRST_SIMULATE = ("import dynclip as dc; from dynclip import clipping, schedules; "
                  "X, Y = dc.data.d64('heavy'); "
                  "dc.simulate(dc.mlp([2, 8, 1]), X, Y, clipping.classic(1.0), schedules.inverse(1.0, 10.0), "
                  "n_steps=200, seed=0, n_replicas=4)")


def commands(out):
    """(label, argv): the README's first command (after the install) and a first simulate call."""
    return [("README: python -m studies run S3 --quick", [sys.executable, "-m", "studies", "run", "S3", "--quick",
                                                           "--out", os.path.join(out, "s03")]),
            ("first dc.simulate in a new process", [sys.executable, "-c", FIRST_SIMULATE])]


def _timed(argv, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, cpu


def measure(log=print):
    """[{label, cold_wall_s, cold_cpu_s, warm_wall_s, warm_cpu_s}], each command with its own empty cache."""
    rows = []
    tmp = tempfile.mkdtemp(prefix="dynclip-startup-")
    try:
        for label, argv in commands(tmp):
            env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "cache-" + str(len(rows))),
                       MPLBACKEND="Agg", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
            cold = _timed(argv, env)
            warm = _timed(argv, env)
            rows.append({"label": label, "cold_wall_s": cold[0], "cold_cpu_s": cold[1],
                         "warm_wall_s": warm[0], "warm_cpu_s": warm[1]})
            log(f"  {label:40s} cold {cold[0]:6.1f} s wall ({cold[1]:6.1f} s CPU)   "
                f"warm {warm[0]:5.1f} s wall ({warm[1]:5.1f} s CPU)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
