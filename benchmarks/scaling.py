"""dynclip throughput vs hidden width, batch size and replicas (the ``--scaling`` mode).

The engine draws its own minibatches here (seed=0, no ``indices``): the configuration users
run. Rates are net of the fixed per-call cost (measured with n_steps=1, reported separately),
so small-T points are not distorted; each point waits for idle CPUs and is flagged ``busy``
when another process was seen running.
"""
import time

import numpy as np

from benchmarks import machine, peers_dynclip, task

WIDTHS = (8, 16, 30, 32, 64, 128, 256)
BATCHES = (1, 4, 16, 32, 64, 256)
REPLICAS = (1, 4, 16, 64, 256, 1024)


def _min_time(run, repeats):
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def _rate(sizes, B, R, threads, target_s, repeats, t_min, t_max, wait_s):
    """Steps/s of dc.simulate per replica (x R for replica-steps/s), net of the fixed cost.

    Every call has a cost that does not depend on T (input checks, and the records at step 0
    and at the end, each a full-data loss per replica). It is measured with n_steps=1 and
    subtracted: rate = T / (t(T) - t(1)). Both times are the minimum over ``repeats`` calls
    (the estimator least hurt by other processes on a shared machine), and the point waits
    up to ``wait_s`` for idle CPUs first. T is chosen so t(T) - t(1) is about ``target_s``.
    Returns (rate, T, threads used, fixed seconds, busy flag).
    """
    X, Y = task.make_data(d=sizes[0])
    th0 = task.make_theta0(sizes)

    def make(T):
        return peers_dynclip.make(X, Y, None, th0, sizes=sizes, threads=threads, shape=(R, T, B))

    idle = machine.wait_idle(wait_s, need=2, poll_s=5.0, log=lambda *a: None) if wait_s > 0 else True
    r1 = make(1)
    r1()                                             # compile / warm caches
    fixed = _min_time(r1, repeats + 1)
    T = t_min
    rT = make(T)
    rT()
    per_step = max(_min_time(rT, 1) - fixed, 1e-6) / T
    # enough steps for the target time, and for the steps to outweigh the fixed cost 3:1
    T = int(np.clip(max(target_s, 3.0 * fixed) / per_step, t_min, t_max))
    rT = make(T)
    rT()
    t = _min_time(rT, repeats)
    busy = (not idle) or machine.idle_check("", interval=0.3, log=lambda *a: None)["warning"]
    if t - fixed < 0.25 * t:     # subtraction not trustworthy: report the plain (lower) rate
        return T / t, T, rT.threads, fixed, True
    return T / (t - fixed), T, rT.threads, fixed, busy


def run_scaling(quick=False, repeats=3, wait_s=120.0, log=print):
    """All three sweeps; returns a JSON-ready dict. ``wait_s``: per-point wait for idle CPUs."""
    target = 0.05 if quick else 0.3
    t_min, t_max = (50, 2000) if quick else (200, 200000)
    out = {"indices": "engine RNG (seed=0)", "method": "T/(t(T)-t(1)), min over repeats",
           "target_seconds_per_run": target, "repeats": repeats, "width": [], "batch": [], "replicas": []}

    def flag(busy):
        return "   BUSY" if busy else ""

    for w in WIDTHS:
        sizes = (task.SIZES[0], w, w, 1)
        r, T, _, fixed, busy = _rate(sizes, 1, 1, 1, target, repeats, t_min, t_max, wait_s)
        fl = task.flops_per_sample_step(sizes)
        out["width"].append({"width": w, "P": task.n_params(sizes), "T": T, "steps_per_s": r,
                             "flops_per_step": fl, "s_per_flop": 1.0 / (r * fl),
                             "fixed_s_per_call": fixed, "busy": busy})
        log(f"  width {w:4d}  P={task.n_params(sizes):6d}  T={T:7d}  {r:12.0f} steps/s"
            f"   fixed/call {1e3 * fixed:7.1f} ms{flag(busy)}")
    ref = next(x for x in out["width"] if x["width"] == 32)
    for x in out["width"]:
        x["time_per_flop_rel_w32"] = x["s_per_flop"] / ref["s_per_flop"]
    for B in BATCHES:
        r, T, _, fixed, busy = _rate(task.SIZES, B, 1, 1, target, repeats, t_min, t_max, wait_s)
        out["batch"].append({"batch": B, "T": T, "steps_per_s": r, "samples_per_s": r * B,
                             "fixed_s_per_call": fixed, "busy": busy})
        log(f"  batch {B:4d}  T={T:7d}  {r:12.0f} steps/s  {r * B:12.0f} samples/s"
            f"   fixed/call {1e3 * fixed:7.1f} ms{flag(busy)}")
    for thr in (1, 2):
        for R in REPLICAS:
            r, T, used, fixed, busy = _rate(task.SIZES, 1, R, thr, target, repeats, max(10, t_min // 10),
                                            t_max, wait_s)
            out["replicas"].append({"replicas": R, "threads": used, "requested_threads": thr, "T": T,
                                    "steps_per_s": r, "replica_steps_per_s": r * R,
                                    "fixed_s_per_call": fixed, "busy": busy})
            log(f"  replicas {R:5d}  threads {used}  T={T:7d}  {r * R:12.0f} replica-steps/s"
                f"   fixed/call {1e3 * fixed:7.1f} ms{flag(busy)}")
    w30 = next(x for x in out["width"] if x["width"] == 30)
    out["time_per_flop_w30_over_w32"] = w30["time_per_flop_rel_w32"]
    out["any_busy"] = any(x["busy"] for k in ("width", "batch", "replicas") for x in out[k])
    return out
