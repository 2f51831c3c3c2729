"""Machine facts for the benchmark report: CPU model, versions, thread counts, idleness."""
import os
import platform
import subprocess
import time


def cpu_model():
    """'model name' from /proc/cpuinfo (with family/model numbers), else lscpu."""
    try:
        fields = {}
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
        if "model name" in fields:
            extra = ""
            if "cpu family" in fields and "model" in fields:
                extra = f" (family {fields['cpu family']}, model {fields['model']})"
            return fields["model name"] + extra
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except Exception:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    """The SIMD flags that matter for float64 kernels."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f") if x in flags]
    except OSError:
        pass
    return []


def versions():
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "torch", "jax", "jaxlib", "optax", "dynclip"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:
            out[mod] = None
    return out


def _cpu_times():
    """{cpuN: (idle, total)} from /proc/stat (idle includes iowait)."""
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = [int(x) for x in parts[1:]]
                idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
                res[parts[0]] = (idle, sum(vals[:8]))
    return res


def busy_fraction(interval=0.5):
    """Per-CPU busy fraction over ``interval`` seconds while this process sleeps, or None."""
    try:
        a = _cpu_times()
        time.sleep(interval)
        b = _cpu_times()
    except OSError:
        return None
    out = {}
    for k in a:
        di, dt = b[k][0] - a[k][0], b[k][1] - a[k][1]
        out[k] = 0.0 if dt <= 0 else max(0.0, 1.0 - di / dt)
    return out


def idle_check(label, threshold=0.2, interval=0.5, log=print):
    """Log and return the busy check; warn when any CPU is more than ``threshold`` busy."""
    busy = busy_fraction(interval)
    if busy is None:
        log(f"[{label}] cannot read /proc/stat: idleness not checked")
        return {"label": label, "busy": None, "warning": False}
    txt = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(busy.items()))
    warn = max(busy.values(), default=0.0) > threshold
    log(f"[{label}] CPU busy over {interval:.1f}s while idle here: {txt}"
          + ("  WARNING: machine is busy, timings are unreliable" if warn else "  (idle)"))
    return {"label": label, "busy": busy, "warning": warn}


def n_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def wait_idle(max_s, threshold=0.2, need=3, poll_s=10.0, log=print):
    """Wait (up to ``max_s`` seconds) until every CPU is below ``threshold`` busy in ``need``
    consecutive 1-second samples. Returns True when idle, False on time-out."""
    t0 = time.time()
    ok, said = 0, False
    while True:
        busy = busy_fraction(1.0)
        if busy is None:
            return False
        ok = ok + 1 if max(busy.values(), default=0.0) <= threshold else 0
        if ok >= need:
            if said:
                log(f"machine idle after {time.time() - t0:.0f}s of waiting")
            return True
        if time.time() - t0 > max_s:
            log(f"WARNING: machine still busy after waiting {max_s:.0f}s; running anyway")
            return False
        if not said and ok == 0:
            log(f"waiting up to {max_s:.0f}s for the CPUs to be idle ...")
            said = True
        time.sleep(poll_s if ok == 0 else 0.0)
