"""JAX peers: jit + lax.scan over the T steps (one stream), and vmap of that scan over R.

Clipping is written by hand as g * min(1, lam/||g||) (exact). optax.clip_by_global_norm
would compute where(norm < max_norm, g, g / norm * max_norm), equal to ~1e-15.
Compile time is measured separately (lower().compile()) and excluded from steps/s.
"""
import time

import numpy as np

from benchmarks import task

MISSING = "jax not installed: pip install 'dynclip[bench]'"


def available():
    try:
        import jax  # noqa: F401
        import jaxlib  # noqa: F401
    except Exception:
        return False
    return True


def version():
    import jax
    return jax.__version__


def _jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax


def _build(sizes, lam):
    jax = _jax()
    jnp = jax.numpy
    L = len(sizes) - 1

    def loss_fn(params, xb, yb):
        h = xb
        for l, (W, b) in enumerate(params):
            h = h @ W.T + b
            if l < L - 1:
                h = jnp.tanh(h)
        return jnp.mean((h[:, 0] - yb) ** 2)

    grad_fn = jax.grad(loss_fn)

    def run(params, X, Y, idx, a):
        def step(p, inp):
            i, at = inp
            g = grad_fn(p, X[i], Y[i])
            leaves = jax.tree_util.tree_leaves(g)
            norm = jnp.sqrt(sum(jnp.sum(x * x) for x in leaves))
            c = jnp.minimum(1.0, lam / norm)
            p = jax.tree_util.tree_map(lambda w, gw: w - at * (c * gw), p, g)
            return p, None

        p, _ = jax.lax.scan(step, params, (idx, a))
        return p

    return jax, run


def _params(theta0, sizes):
    jnp = _jax().numpy
    return [(jnp.asarray(np.ascontiguousarray(W)), jnp.asarray(np.ascontiguousarray(b)))
            for W, b in task.unflatten(theta0, sizes)]


def make_scan(X, Y, idx, theta0, sizes=task.SIZES, lam=task.LAM):
    """Return (run() -> (P,), compile_seconds). idx (T, B)."""
    jax, run = _build(sizes, lam)
    jnp = jax.numpy
    args = (_params(theta0, sizes), jnp.asarray(X), jnp.asarray(Y), jnp.asarray(idx),
            jnp.asarray(task.step_sizes(idx.shape[0])))
    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(*args).compile()
    compile_s = time.perf_counter() - t0

    def go():
        p = jax.block_until_ready(compiled(*args))
        return task.flatten([(np.asarray(W), np.asarray(b)) for W, b in p])

    return go, compile_s


def make_vmap(X, Y, idx_R, theta0, sizes=task.SIZES, lam=task.LAM):
    """vmap of the scan over replicas. idx_R (R, T, B); theta0 (P,) shared or (R, P).
    Return (run() -> (R, P), compile_seconds)."""
    jax, run = _build(sizes, lam)
    jnp = jax.numpy
    theta0 = np.asarray(theta0)
    p_axis = 0 if theta0.ndim == 2 else None
    vrun = jax.vmap(run, in_axes=(p_axis, None, None, 0, None))
    args = (_params(theta0, sizes), jnp.asarray(X), jnp.asarray(Y), jnp.asarray(idx_R),
            jnp.asarray(task.step_sizes(idx_R.shape[1])))
    t0 = time.perf_counter()
    compiled = jax.jit(vrun).lower(*args).compile()
    compile_s = time.perf_counter() - t0

    def go():
        p = jax.block_until_ready(compiled(*args))
        return task.flatten([(np.asarray(W), np.asarray(b)) for W, b in p])

    return go, compile_s
