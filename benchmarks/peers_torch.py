"""torch peers: eager nn.Sequential (one stream) and hand-batched replicas (baddbmm).

Import this module only after checking torch is importable (see ``available``).
"""
import numpy as np

from benchmarks import task

MISSING = "torch not installed: pip install 'dynclip[bench]'"


def available():
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def version():
    import torch
    return torch.__version__


def _setup():
    import torch
    torch.set_num_threads(1)
    return torch


def make_eager(X, Y, idx, theta0, sizes=task.SIZES, lam=task.LAM):
    """Return run() -> final flat params (P,). torch.nn.utils.clip_grad_norm_ divides by
    (norm + 1e-6), so results differ from exact clipping at ~1e-7 relative."""
    torch = _setup()
    nn = torch.nn
    mods = []
    for l, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(fi, fo, dtype=torch.float64))
        if l < len(sizes) - 2:
            mods.append(nn.Tanh())
    model = nn.Sequential(*mods)
    linears = [m for m in mods if isinstance(m, nn.Linear)]
    params = [p for m in linears for p in (m.weight, m.bias)]
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    Yt = torch.from_numpy(np.ascontiguousarray(Y))
    idx_t = torch.from_numpy(np.ascontiguousarray(idx))
    a = task.step_sizes(idx.shape[0]).tolist()
    init = [torch.from_numpy(np.ascontiguousarray(x)) for Wb in task.unflatten(theta0, sizes) for x in Wb]
    clip = torch.nn.utils.clip_grad_norm_

    def run():
        with torch.no_grad():
            for p, x in zip(params, init):
                p.copy_(x)
        for t in range(len(a)):
            i = idx_t[t]
            xb, yb = Xt[i], Yt[i]
            for p in params:
                p.grad = None
            f = model(xb).squeeze(-1)
            loss = ((f - yb) ** 2).mean()
            loss.backward()
            clip(params, lam)
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-a[t])
        with torch.no_grad():
            return np.concatenate([p.detach().numpy().ravel() for p in params])

    return run


def make_batched(X, Y, idx_R, theta0, sizes=task.SIZES, lam=task.LAM):
    """R replicas in lockstep: W (R, out, in), b (R, 1, out), baddbmm forward, autograd.grad
    of the sum of per-replica losses, exact per-replica clipping min(1, lam/||g||).
    idx_R (R, T, B); theta0 (P,) or (R, P). Returns run() -> (R, P)."""
    torch = _setup()
    R, T, B = idx_R.shape
    theta0 = np.broadcast_to(np.asarray(theta0, dtype=np.float64), (R, task.n_params(sizes)))
    init = []
    for W, b in task.unflatten(theta0, sizes):
        init.append(torch.from_numpy(np.ascontiguousarray(W)))            # (R, out, in)
        init.append(torch.from_numpy(np.ascontiguousarray(b))[:, None, :])  # (R, 1, out)
    params = [x.clone().requires_grad_(True) for x in init]
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    Yt = torch.from_numpy(np.ascontiguousarray(Y))
    idx_t = torch.from_numpy(np.ascontiguousarray(idx_R.transpose(1, 0, 2)))  # (T, R, B)
    a = task.step_sizes(T).tolist()
    L = len(sizes) - 1

    def run():
        with torch.no_grad():
            for p, x in zip(params, init):
                p.copy_(x)
        for t in range(T):
            i = idx_t[t]                      # (R, B)
            h, yb = Xt[i], Yt[i]              # (R, B, in), (R, B)
            for l in range(L):
                W, b = params[2 * l], params[2 * l + 1]
                h = torch.baddbmm(b, h, W.transpose(1, 2))
                if l < L - 1:
                    h = torch.tanh(h)
            losses = ((h[..., 0] - yb) ** 2).mean(dim=1)   # (R,)
            grads = torch.autograd.grad(losses.sum(), params)
            with torch.no_grad():
                sq = sum(g.square().sum(dim=(1, 2)) for g in grads)   # (R,)
                c = torch.clamp(lam / torch.sqrt(sq), max=1.0)       # exact min(1, lam/||g||)
                for p, g in zip(params, grads):
                    p.sub_(a[t] * (c[:, None, None] * g))
        with torch.no_grad():
            layers = [(params[2 * l].numpy(), params[2 * l + 1].numpy()[:, 0, :]) for l in range(L)]
            return task.flatten(layers)

    return run
