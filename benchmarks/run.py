"""dynclip vs torch vs JAX on the same clipped-SGD task, in one process.

    python -m benchmarks.run [--steps T] [--quick] [--only dynclip,torch,jax] [--scaling] [--startup]
    python benchmarks/run.py ...          (same thing)

Prints steps/s and ratios, verifies every peer's final parameters against dynclip's, writes
benchmarks/results/<YYYY-MM-DD>.json and a PNG bar chart (``_quick`` in the names for
--quick runs). ``--scaling`` measures dynclip alone vs hidden width, batch size and replicas;
``--startup`` the cold (empty Numba cache) and warm start of the README's first command and of a
first ``simulate`` in a new process (benchmarks/startup.py).
The task is defined in benchmarks/task.py.
"""
import argparse
import datetime
import json
import os
import sys
import time

if __package__ in (None, ""):          # python benchmarks/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import machine, peers_dynclip, peers_jax, peers_torch, task  # noqa: E402

PEERS = {"dynclip": peers_dynclip, "torch": peers_torch, "jax": peers_jax}
R_REP = 64
TOL_EXACT = 1e-12     # float64 peers doing the same arithmetic in another order
TOL_TORCH = 1e-5      # torch clip_grad_norm_ divides by (||g|| + 1e-6)
TORCH_NOTE = ("torch.nn.utils.clip_grad_norm_ scales by lam/(||g||+1e-6), not lam/||g||: "
              "~1e-6 relative per clipped step, hence tolerance 1e-5")
TASK_TEXT = (f"MLP {'-'.join(map(str, task.SIZES))} tanh (P={task.n_params()}), float64, N={task.N}, "
             f"loss (f-y)^2 minibatch mean, classic clipping lam={task.LAM} on the minibatch-mean "
             f"gradient, a(t)={task.A0}/(t+{task.T0:g})^{task.KAPPA}, indices shared (benchmarks/task.py)")
NOTES = [
    "JAX clips by hand with g*min(1, lam/||g||); optax.clip_by_global_norm (where(n<lam, g, g/n*lam)) "
    "agrees to ~1e-15",
    TORCH_NOTE,
    "timings: warm-up call, then the median of the repeats of one whole call (dynclip: dc.simulate "
    "including its fixed per-call cost; JAX: compiled call, compile time excluded)",
]
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def timed(fn, repeats):
    """Warm-up call, then ``repeats`` timed calls; returns (output, median seconds, times,
    process CPU seconds / wall seconds over the timed calls = cores kept busy)."""
    out = fn()
    times = []
    c0 = time.process_time()
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    cores = (time.process_time() - c0) / max(sum(times), 1e-12)
    return out, float(np.median(times)), times, cores


def _row(impl, label, B, R, T, threads, out, med, times, cores, compile_s=None):
    final = np.asarray(out).reshape(R, -1)
    return {"impl": impl, "label": label, "group": f"B={B}, R={R}", "B": B, "R": R, "T": T,
            "threads": threads, "seconds_median": med, "seconds_all": times,
            "steps_per_s": T / med, "replica_steps_per_s": R * T / med,
            "rate": (R * T / med), "compile_s": compile_s, "cpu_cores_used": cores, "_final": final}


def _dynclip_rows(X, Y, idx_R, th0, B, T, R, repeats, log, extra, with_torch):
    rows = []
    run = peers_dynclip.make(X, Y, idx_R[:1], th0, threads=1)
    rows.append(_row("dynclip", "dynclip", B, 1, T, 1, *timed(run, repeats)))
    log(f"  dynclip            B={B:<3d} R=1   {rows[-1]['steps_per_s']:12.0f} steps/s")
    for thr in (1, 2):
        run = peers_dynclip.make(X, Y, idx_R, th0, threads=thr)
        rows.append(_row("dynclip", f"dynclip {run.threads} thr", B, R, T, run.threads, *timed(run, repeats)))
        log(f"  dynclip {run.threads} thr      B={B:<3d} R={R} {rows[-1]['rate']:12.0f} replica-steps/s")
    if with_torch:   # untimed: dynclip with torch's tie-break, for a tight check of torch eager
        extra["torch_conv"] = peers_dynclip.make(X, Y, idx_R[:1], th0, convention="torch")()[0]
    return rows


def _torch_rows(X, Y, idx_R, th0, B, T, R, repeats, log):
    rows = [_row("torch", "torch eager", B, 1, T, 1,
                 *timed(peers_torch.make_eager(X, Y, idx_R[0], th0), repeats))]
    log(f"  torch eager        B={B:<3d} R=1   {rows[-1]['steps_per_s']:12.0f} steps/s")
    rows.append(_row("torch", "torch batched", B, R, T, 1,
                     *timed(peers_torch.make_batched(X, Y, idx_R, th0), repeats)))
    log(f"  torch batched      B={B:<3d} R={R} {rows[-1]['rate']:12.0f} replica-steps/s")
    return rows


def _jax_rows(X, Y, idx_R, th0, B, T, R, repeats, log):
    run, comp = peers_jax.make_scan(X, Y, idx_R[0], th0)
    rows = [_row("jax", "JAX scan", B, 1, T, "xla", *timed(run, repeats), compile_s=comp)]
    log(f"  JAX scan           B={B:<3d} R=1   {rows[-1]['steps_per_s']:12.0f} steps/s (compile {comp:.2f}s)")
    run, comp = peers_jax.make_vmap(X, Y, idx_R, th0)
    rows.append(_row("jax", "JAX vmap", B, R, T, "xla", *timed(run, repeats), compile_s=comp))
    log(f"  JAX vmap           B={B:<3d} R={R} {rows[-1]['rate']:12.0f} replica-steps/s (compile {comp:.2f}s)")
    return rows


def compare(T1=20000, T32=2000, repeats=5, only=("dynclip", "torch", "jax"), R=R_REP, log=print,
            check_idle=True, wait_s=0.0):
    """Run every selected implementation at B=1 (T1 steps) and B=32 (T32 steps) and verify
    the final parameters. Replica r of the R-replica rows uses index stream r (replica 0 is
    the single-stream run). ``wait_s`` > 0: before each peer, wait up to that long for idle
    CPUs (shared machines). Returns a JSON-ready dict."""
    X, Y = task.make_data()
    th0 = task.make_theta0()
    have = {}
    for name in only:
        have[name] = PEERS[name].available()
        if not have[name]:
            log(f"SKIP {name}: {PEERS[name].MISSING}")
    rows, checks, idle, errors = [], [], [], []
    for B, T in ((1, T1), (32, T32)):
        idx_R = task.make_indices_replicas(R, T, B)
        extra, rows_B = {}, []
        jobs = [("dynclip", lambda: _dynclip_rows(X, Y, idx_R, th0, B, T, R, repeats, log, extra,
                                                  have.get("torch", False))),
                ("torch", lambda: _torch_rows(X, Y, idx_R, th0, B, T, R, repeats, log)),
                ("jax", lambda: _jax_rows(X, Y, idx_R, th0, B, T, R, repeats, log))]
        for name, job in jobs:
            if have.get(name):
                if wait_s > 0:
                    machine.wait_idle(wait_s, log=log)
                if check_idle:
                    idle.append(machine.idle_check(f"before {name} B={B}", log=log))
                try:
                    new_rows = job()
                    before = idle[-1]["warning"] if check_idle else None
                    if check_idle:
                        idle.append(machine.idle_check(f"after {name} B={B}", log=log))
                    for r in new_rows:   # so a reader can tell which rows ran on a busy machine
                        r["machine_busy_before"] = before
                        r["machine_busy_after"] = idle[-1]["warning"] if check_idle else None
                    rows_B += new_rows
                except Exception as e:     # a broken peer is reported, never fatal
                    log(f"ERROR {name} at B={B}: {type(e).__name__}: {e}")
                    errors.append({"peer": name, "B": B, "error": f"{type(e).__name__}: {e}"})
        checks += _verify(rows_B, B, extra)
        rows += rows_B
    fixed = None
    if have.get("dynclip"):   # per-call cost independent of T (checks, step-0 and final records)
        fixed = {}
        for R_, thr in ((1, 1), (R, 2)):
            run = peers_dynclip.make(X, Y, task.make_indices_replicas(R_, 1, 1), th0, threads=thr)
            fixed[f"R={R_}, {run.threads} thr"] = timed(run, 3)[1]
        log("  dynclip fixed cost of one call (n_steps=1, B=1): "
            + ", ".join(f"{k}: {1e3 * v:.1f} ms" for k, v in fixed.items()))
    if check_idle:
        idle.append(machine.idle_check("after runs", log=log))
    return {"config": {"T_B1": T1, "T_B32": T32, "replicas": R, "repeats": repeats, "only": list(only),
                       "skipped": [n for n in only if not have[n]], "task": TASK_TEXT, "notes": NOTES},
            "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            "verification": checks, "ratios": _ratios(rows), "idle_checks": idle, "errors": errors,
            "dynclip_fixed_cost_per_call_s": fixed}


def _verify(rows, B, extra):
    """Each row's final params vs the reference (dynclip R=1; else the first exact peer)."""
    ref = next((r for r in rows if r["impl"] == "dynclip" and r["R"] == 1), None)
    for label in ("JAX scan", "JAX vmap", "torch batched"):   # no dynclip: first exact peer
        if ref is None:
            ref = next((r for r in rows if r["label"] == label), None)
    if ref is None:
        return []
    ref_all = next((r for r in rows if r["impl"] == "dynclip" and r["R"] > 1), None)
    out = []
    for r in rows:
        if r is ref:
            continue
        tol = TOL_TORCH if r["label"] == "torch eager" else TOL_EXACT
        d = float(np.max(np.abs(r["_final"][0] - ref["_final"][0])))
        c = {"B": B, "peer": f"{r['label']} (R={r['R']})", "reference": f"{ref['label']} (R={ref['R']})",
             "max_abs_diff": d, "tol": tol, "pass": bool(d <= tol)}
        if r["label"] == "torch eager":
            c["note"] = TORCH_NOTE
        if r["R"] > 1:
            c["compared"] = "replica 0"
            if ref_all is not None and r is not ref_all and ref_all["R"] == r["R"]:
                c["max_abs_diff_all_replicas_vs_dynclip_R"] = float(np.max(np.abs(r["_final"] - ref_all["_final"])))
        out.append(c)
    eager = next((r for r in rows if r["label"] == "torch eager"), None)
    if eager is not None and "torch_conv" in extra:
        d = float(np.max(np.abs(eager["_final"][0] - extra["torch_conv"])))
        out.append({"B": B, "peer": "torch eager (R=1)",
                    "reference": "dynclip classic(1.0, convention='torch') (R=1, untimed)",
                    "max_abs_diff": d, "tol": TOL_EXACT, "pass": bool(d <= TOL_EXACT)})
    return out


def _ratios(rows):
    def rate(label, B, R):
        r = next((x for x in rows if x["label"] == label and x["B"] == B and x["R"] == R), None)
        return None if r is None else r["rate"]

    def ratio(a, b):
        return None if a is None or b is None else a / b

    out = {}
    for B in (1, 32):
        out[f"dynclip / JAX scan, B={B}"] = ratio(rate("dynclip", B, 1), rate("JAX scan", B, 1))
        out[f"dynclip / torch eager, B={B}"] = ratio(rate("dynclip", B, 1), rate("torch eager", B, 1))
    for B in (1, 32):
        d2 = rate("dynclip 2 thr", B, R_REP)
        out[f"dynclip R={R_REP} 2 thr / JAX vmap R={R_REP}, B={B}"] = ratio(d2, rate("JAX vmap", B, R_REP))
        out[f"dynclip R={R_REP} 2 thr / torch batched R={R_REP}, B={B}"] = ratio(d2, rate("torch batched", B, R_REP))
        out[f"dynclip R={R_REP} 2 thr / 1 thr, B={B}"] = ratio(d2, rate("dynclip 1 thr", B, R_REP))
    return {k: v for k, v in out.items() if v is not None}


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_report(res, log=print):
    log("")
    log(f"{'implementation':<16}{'setting':<13}{'T':>7}{'thr':>5}{'steps/s':>12}{'repl-steps/s':>14}"
        f"{'compile s':>11}{'cores':>7}")
    for r in res["rows"]:
        rs = _fmt(r["replica_steps_per_s"] if r["R"] > 1 else None, ".0f")
        log(f"{r['label']:<16}{r['group']:<13}{r['T']:>7}{str(r['threads']):>5}{r['steps_per_s']:>12.0f}"
            f"{rs:>14}{_fmt(r['compile_s'], '.2f'):>11}{r['cpu_cores_used']:>7.2f}")
    log("(cores = process CPU time / wall time while timed; JAX threads are XLA's default)")
    busy = [f"{r['label']} {r['group']}" for r in res["rows"]
            if r.get("machine_busy_before") or r.get("machine_busy_after")]
    if busy:
        log("WARNING: machine busy just before or after: " + "; ".join(busy))
    log("\nRatios (throughput, > 1 means dynclip is faster):")
    for k, v in res["ratios"].items():
        log(f"  {k:<48} {v:8.2f}")
    log("\nVerification of final parameters (max |theta - theta_ref|):")
    for c in res["verification"]:
        extra = ""
        if "max_abs_diff_all_replicas_vs_dynclip_R" in c:
            extra = f"  [all {R_REP} replicas vs dynclip R={R_REP}: {c['max_abs_diff_all_replicas_vs_dynclip_R']:.1e}]"
        log(f"  B={c['B']:<3d} {c['peer']:<24} vs {c['reference']:<22} {c['max_abs_diff']:9.2e}  "
            f"tol {c['tol']:.0e}  {'PASS' if c['pass'] else 'FAIL'}{extra}")
        if c.get("note"):
            log(f"        ({c['note']})")
    if res.get("dynclip_fixed_cost_per_call_s"):
        log("dynclip fixed cost per call (n_steps=1): " + ", ".join(
            f"{k}: {1e3 * v:.1f} ms" for k, v in res["dynclip_fixed_cost_per_call_s"].items())
            + " (included in its steps/s above)")
    if min(res["config"]["T_B1"], res["config"]["T_B32"]) < 2000:
        log("NOTE: short runs: fixed per-call costs weigh on steps/s; use the default T for ratios.")
    if any(c.get("warning") for c in res.get("idle_checks", [])):
        log("WARNING: another process was using a CPU during this run: timings are unreliable.")
    for e in res.get("errors", []):
        log(f"ERROR: {e['peer']} at B={e['B']} failed: {e['error']}")
    if res["config"]["skipped"]:
        log("Skipped: " + ", ".join(res["config"]["skipped"]))


def machine_info(log=print):
    info = {"cpu": machine.cpu_model(), "simd": machine.cpu_flags(), "n_cpus": machine.n_cpus(),
            "versions": machine.versions()}
    thr = {"torch": "1 (torch.set_num_threads(1))", "jax": "XLA default (may use every core)"}
    try:
        import numba
        thr["numba_max"] = int(numba.config.NUMBA_NUM_THREADS)
    except Exception:
        pass
    thr["dynclip"] = "1 for R=1 rows; 1 and 2 for replica rows (numba.set_num_threads)"
    info["threads"] = thr
    v = info["versions"]
    log(f"CPU: {info['cpu']} ({info['n_cpus']} CPUs, {'/'.join(info['simd'])})")
    log("versions: " + ", ".join(f"{k} {v[k] or 'not installed'}" for k in v))
    log("threads: " + "; ".join(f"{k}: {t}" for k, t in thr.items()))
    return info


def _save(stem, key, payload, info):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, stem + ".json")
    data = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
    data["date"] = stem[:10]
    data["machine"] = info
    data[key] = payload
    data[key]["written"] = datetime.datetime.now().isoformat(timespec="seconds")
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=float)
    return path


def smoke(T=50, quiet=True):
    """dynclip only, T steps at B=1 and B=32 (R=1 and R=64 at 1/2 threads), plus a plain NumPy
    reference at R=1. Returns the result dict; nothing is written. For the test suite."""
    log = (lambda *a, **k: None) if quiet else print
    res = compare(T, T, repeats=1, only=("dynclip",), log=log, check_idle=False)
    X, Y = task.make_data()
    th0 = task.make_theta0()
    for B in (1, 32):
        idx = task.make_indices(T, B)
        ref = task.numpy_reference(X, Y, idx, th0)
        got = peers_dynclip.make(X, Y, idx[None], th0)()[0]
        d = float(np.max(np.abs(got - ref)))
        res["verification"].append({"B": B, "peer": "dynclip (R=1)", "reference": "numpy loop",
                                    "max_abs_diff": d, "tol": 1e-12, "pass": bool(d <= 1e-12)})
    return res


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=None,
                   help="steps T for both B=1 and B=32 (default 20000 and 2000; 200 with --quick)")
    p.add_argument("--quick", action="store_true", help="T=200, 1 repeat (results saved with _quick)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats, median reported (default 5)")
    p.add_argument("--only", default="dynclip,torch,jax", help="comma list of dynclip,torch,jax")
    p.add_argument("--scaling", action="store_true", help="dynclip vs width, batch size, replicas")
    p.add_argument("--startup", action="store_true",
                   help="cold and warm start (empty / filled Numba cache) of the README's first command")
    p.add_argument("--no-save", action="store_true", help="print only, write no JSON/PNG")
    p.add_argument("--wait-idle", type=float, default=0, metavar="S",
                   help="wait up to S seconds for idle CPUs before each peer / scaling point "
                        "(shared machines)")
    a = p.parse_args(argv)
    only = tuple(x.strip() for x in a.only.split(",") if x.strip())
    bad = [x for x in only if x not in PEERS]
    if bad:
        p.error(f"--only: unknown {bad}; choose from {list(PEERS)}")
    repeats = a.repeats if a.repeats is not None else (1 if a.quick else 5)
    T1, T32 = (200, 200) if a.quick else (20000, 2000)
    if a.steps:
        T1 = T32 = a.steps
    stem = datetime.date.today().isoformat() + ("_quick" if a.quick else "")
    from benchmarks import plots
    info = machine_info()
    if a.wait_idle > 0:
        machine.wait_idle(a.wait_idle)
    if a.startup:
        from benchmarks import startup
        print("cold (empty Numba cache) and warm start, each in a new process:")
        rows = startup.measure()
        if not a.no_save:
            print(f"wrote {_save(stem, 'startup', {'rows': rows}, info)}")
        return 0
    if a.scaling:
        from benchmarks import scaling
        if not peers_dynclip.available():
            print(f"SKIP scaling: {peers_dynclip.MISSING}")
            return 1
        machine.idle_check("before scaling")
        sc = scaling.run_scaling(quick=a.quick, repeats=1 if a.quick else 3,
                                 wait_s=0.0 if a.quick else max(a.wait_idle, 120.0))
        sc["idle_after"] = machine.idle_check("after scaling")
        if sc["any_busy"]:
            print("WARNING: points marked BUSY ran while another process used a CPU: unreliable")
        print(f"\ntime per FLOP, width 30 relative to width 32 (aligned): {sc['time_per_flop_w30_over_w32']:.2f}")
        for x in sc["width"]:
            print(f"  width {x['width']:4d}: time/FLOP rel. w=32 {x['time_per_flop_rel_w32']:.2f}")
        if not a.no_save:
            path = _save(stem, "scaling", sc, info)
            png = os.path.join(RESULTS, stem + "_scaling.png")
            plots.scaling_chart(sc, png, "dynclip throughput scaling (clipped SGD, tanh MLP, float64)",
                                f"{info['cpu']}, {info['n_cpus']} CPUs; dynclip {info['versions'].get('dynclip')}")
            print(f"wrote {path} and {png}")
        return 0
    print(f"task: {TASK_TEXT}\nT(B=1)={T1}, T(B=32)={T32}, R={R_REP}, median of {repeats}")
    res = compare(T1, T32, repeats, only, wait_s=a.wait_idle)
    print_report(res)
    if not a.no_save:
        path = _save(stem, "compare", res, info)
        png = os.path.join(RESULTS, stem + ".png")
        plots.bar_chart(res["rows"], png,
                        "Clipped SGD, MLP 4-32-32-1 tanh, float64: dynclip vs torch vs JAX",
                        f"{info['cpu']}, {info['n_cpus']} CPUs; T={T1} (B=1), {T32} (B=32); "
                        f"median of {repeats}; torch 1 thread, JAX XLA default threads")
        print(f"wrote {path} and {png}")
    ok = all(c["pass"] for c in res["verification"]) and not res["errors"]
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
