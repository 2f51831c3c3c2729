"""Where the time of one engine step goes: each part of a step timed alone, in one process.

    python -m benchmarks.profile [--batch 1 32] [--steps N]

On the benchmark task (benchmarks/task.py), for each batch size: the forward pass layer by
layer (affine map, activation), the loss, the backward pass layer by layer (weight gradients,
deltas carried back, activation derivative), the gradient norm, and the step fused with the
displacement, each run alone in a compiled loop of the engine's own kernels; then a whole
step of ``dc.simulate`` (classic clipping, plain SGD). "engine glue" is the whole step minus
the parts: drawing the minibatch, the calls and argument passing between the kernels, the
clip factor and the per-step diagnostics (running sums, maxima, the blow-up check).
Times are the minimum over rounds of thread CPU time (robust to a busy second core), in
nanoseconds per step.
"""
import argparse
import os
import sys
import time

if __package__ in (None, ""):          # python benchmarks/profile.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import task  # noqa: E402

PARTS = ("affine", "activation", "loss", "weight grads", "deltas back", "activation derivative", "norm",
         "step + displacement")


def _kernels():
    from dynclip._jit import hot, njit
    from dynclip._kernels import _aligned
    from dynclip._layers import affine, backprop, block, flat, layer, weight_grads
    from dynclip._norms import norm, step_dist
    from dynclip.model import activate, forward, losses_and_dout, make_workspace, times_deriv

    @hot
    def loop(part, l, th, th0, g, widths, offs, X, Y, rows, nb, ws, n):
        N = X.shape[0]
        P = th.shape[0]
        ni = widths[l]
        no = widths[l + 1]
        W, b = layer(th, widths, offs, l)
        G, gb = layer(g, widths, offs, l)
        A = block(ws.acts, ws.aoff[l], nb, ni)
        Z = block(ws.zs, ws.aoff[l + 1], nb, no)
        A1 = block(ws.acts, ws.aoff[l + 1], nb, no)
        D = block(ws.d1, 0, nb, no)
        Dp = block(ws.d2, 0, nb, ni)
        s = 0.0
        for k in range(n):
            rows[0] = (k * 7919) % N
            if part == 0:
                affine(W, A, b, Z, ws.gt)
            elif part == 1:
                activate(flat(Z), flat(A1), 0)
            elif part == 2:
                losses_and_dout(widths, 0, Y, rows, nb, ws)
            elif part == 3:
                weight_grads(G, gb, D, A, True, ws.gt)
            elif part == 4:
                backprop(D, W, Dp)
            elif part == 5:
                times_deriv(Dp, block(ws.zs, ws.aoff[l], nb, ni), A, 0)
            elif part == 6:
                s += norm(g, 0, P)
            else:
                s += step_dist(th, g, 1e-9, 1.0, th0)      # (a tiny step: theta stays put)
        return s

    @njit
    def run(part, l, theta0, widths, offs, X, Y, nb, n):
        P = theta0.shape[0]
        th = _aligned(P)
        th[:] = theta0
        th0 = _aligned(P)
        th0[:] = theta0
        g = _aligned(P)
        g[:] = 1e-3
        ws = make_workspace(widths, nb)
        rows = np.zeros(nb, dtype=np.int64)
        for b in range(nb):
            rows[b] = (b * 31) % X.shape[0]
        forward(th, widths, offs, 0, X, rows, nb, ws)       # realistic activations
        for i in range(ws.d1.shape[0]):
            ws.d1[i] = 1e-2
        return loop(part, l, th, th0, g, widths, offs, X, Y, rows, nb, ws, n)

    return run


def _best(fn, rounds):
    fn()
    best = np.inf
    for _ in range(rounds):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return best


def profile(B, steps, rounds=7):
    """[(part, layer or None, ns per step)] and the whole step of dc.simulate (ns)."""
    import dynclip as dc
    run = _kernels()
    X, Y = task.make_data()
    Y2 = Y[:, None]
    net = dc.mlp(list(task.SIZES))
    widths = np.asarray(net.widths, dtype=np.int64)
    offs = np.asarray(net.offsets(), dtype=np.int64)
    theta0 = task.make_theta0()
    L = len(task.SIZES) - 1
    rows = []
    for p, name in enumerate(PARTS):
        if name in ("loss", "norm", "step + displacement"):
            layers = [None]
        elif name == "activation":
            layers = list(range(L - 1))                     # hidden layers only
        elif name in ("deltas back", "activation derivative"):
            layers = list(range(1, L))                      # not needed at the input layer
        else:
            layers = list(range(L))
        for l in layers:
            t = _best(lambda: run(p, 0 if l is None else l, theta0, widths, offs, X, Y2, B, steps), rounds)
            rows.append((name, l, t / steps * 1e9))
    kw = dict(n_steps=steps, seed=1, batch_size=B, record_every=steps, progress=False, theta0=theta0)
    whole = _best(lambda: dc.simulate(net, X, Y, dc.clipping.classic(task.LAM),
                                      dc.schedules.power(task.A0, task.T0, task.KAPPA), **kw), rounds)
    return rows, whole / steps * 1e9


def table(B, rows, whole):
    lines = [f"B = {B}: one step of dc.simulate {whole:.0f} ns", "",
             "| part | layer | ns/step | share |", "|---|---|---:|---:|"]
    for name, l, t in rows:
        lines.append(f"| {name} | {'' if l is None else f'{l} ({task.SIZES[l]}->{task.SIZES[l + 1]})'} | "
                     f"{t:.0f} | {t / whole:.0%} |")
    glue = whole - sum(t for _, _, t in rows)
    lines.append(f"| engine glue (rest of the step) | | {glue:.0f} | {glue / whole:.0%} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    p.add_argument("--steps", type=int, default=0, help="steps per timed loop (default 200000 / B)")
    a = p.parse_args(argv)
    for B in a.batch:
        if B < 1:
            p.error(f"--batch must be >= 1, got {B}")
        steps = a.steps or max(1000, 200_000 // B)
        rows, whole = profile(B, steps)
        print(table(B, rows, whole))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
