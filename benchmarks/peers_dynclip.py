"""dynclip as a benchmark peer: one call of dc.simulate per run."""
import numpy as np

from benchmarks import task

MISSING = "dynclip not importable (is the package installed? pip install -e .)"


def available():
    try:
        import dynclip
        return callable(getattr(dynclip, "simulate", None))
    except Exception:
        return False


def version():
    import dynclip
    return getattr(dynclip, "__version__", "?")


def max_threads():
    import numba
    return int(numba.config.NUMBA_NUM_THREADS)


def make(X, Y, idx_R, theta0, sizes=task.SIZES, lam=task.LAM, threads=1, convention=None,
         shape=None):
    """Return run() -> theta_final (R, P). idx_R (R, T, B) int64; theta0 (P,) or (R, P).

    ``threads`` is passed to numba.set_num_threads before every call (clamped to the
    available Numba threads). With ``idx_R=None`` and ``shape=(R, T, B)`` the engine draws
    the minibatches itself (seed=0)."""
    import numba
    import dynclip as dc

    use_indices = idx_R is not None
    R, T, B = idx_R.shape if use_indices else shape
    net = dc.mlp(list(sizes), activation="tanh")
    clip = dc.clipping.classic(lam) if convention is None else dc.clipping.classic(lam, convention=convention)
    sched = dc.schedules.power(task.A0, task.T0, task.KAPPA)
    threads = max(1, min(int(threads), max_threads()))
    kw = dict(n_steps=T, seed=0, batch_size=B, n_replicas=R, theta0=theta0, loss="mse",
              record_every=T)
    if use_indices:
        kw["indices"] = np.ascontiguousarray(idx_R, dtype=np.int64)

    def run():
        numba.set_num_threads(threads)
        res = dc.simulate(net, X, Y, clip, sched, **kw)
        return np.asarray(res.theta_final).reshape(R, -1)

    run.threads = threads
    return run
