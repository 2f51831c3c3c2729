"""Naive NumPy twins of every dynclip kernel: slow, obvious, independent code.

Written from the formulas, not from the kernels: per-sample loops, explicit matrices.
"""
import math

import numpy as np
from scipy.special import erf


def act(z, name):
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "gelu":
        return 0.5 * z * (1 + erf(z / np.sqrt(2)))
    if name == "softplus":
        return np.logaddexp(0, z)
    if name == "relu":
        return np.maximum(z, 0)
    raise KeyError(name)


def dact(z, name):
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    if name == "gelu":
        return 0.5 * (1 + erf(z / np.sqrt(2))) + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    if name == "softplus":
        return 1 / (1 + np.exp(-z))
    if name == "relu":
        return (z > 0).astype(float)
    raise KeyError(name)


def unpack(widths, theta):
    out, o = [], 0
    for l in range(len(widths) - 1):
        ni, no = widths[l], widths[l + 1]
        W = theta[o:o + no * ni].reshape(no, ni)
        o += no * ni
        b = theta[o:o + no]
        o += no
        out.append((W, b))
    return out


def sample_loss_grad(widths, activation, theta, x, y, loss):
    """Loss and gradient of one sample (x: (d_in,), y: (d_out,) or label)."""
    layers = unpack(widths, theta)
    a = [np.asarray(x, float)]
    z = [None]
    for l, (W, b) in enumerate(layers):
        zz = W @ a[-1] + b
        z.append(zz)
        a.append(act(zz, activation) if l < len(layers) - 1 else zz)
    f = a[-1]
    if loss == "cross_entropy":
        lab = int(np.asarray(y).reshape(-1)[0])
        m = f.max()
        lse = m + np.log(np.exp(f - m).sum())
        val = lse - f[lab]
        d = np.exp(f - lse)
        d[lab] -= 1
    else:
        e = f - np.asarray(y, float).reshape(-1)
        if loss == "mse":
            val, d = np.sum(e ** 2), 2 * e
        elif loss == "half_mse":
            val, d = 0.5 * np.sum(e ** 2), e
        elif loss == "quartic":
            val, d = np.sum(e ** 4), 4 * e ** 3
        else:
            raise KeyError(loss)
    grads = []
    for l in range(len(layers) - 1, -1, -1):
        W, b = layers[l]
        grads.append((np.outer(d, a[l]).ravel(), d.copy()))
        if l > 0:
            d = (W.T @ d) * dact(z[l], activation)
    flat = []
    for gW, gb in reversed(grads):
        flat += [gW, gb]
    return float(val), np.concatenate(flat)


def loss_grad(widths, activation, theta, X, Y, loss, rows=None):
    rows = range(len(X)) if rows is None else rows
    vals, grads = zip(*[sample_loss_grad(widths, activation, theta, X[i], Y[i], loss) for i in rows])
    return float(np.mean(vals)), np.mean(grads, axis=0)


def layer_bounds(widths):
    out, o = [], 0
    for l in range(len(widths) - 1):
        n = widths[l + 1] * (widths[l] + 1)
        out.append((o, o + n))
        o += n
    return out


def clip(rule, g, theta, widths):
    """Naive clipped update u for the rule given as a dict (kind name + parameters)."""
    k = rule["kind"]
    g = np.asarray(g, float)
    n = np.linalg.norm(g)
    if k == "none" or k == "alrc":
        return g.copy()
    if k == "classic" or k == "adaptive":
        lam = rule["lam"] if k == "classic" else rule["lam"] * max(np.linalg.norm(theta), rule["eps"])
        conv = rule.get("convention", "paper")
        if conv == "torch":
            return g * min(lam / (n + 1e-6), 1.0)
        if conv == "optax":
            return g if n < lam else g * (lam / n)
        return g / max(n / lam, 1.0)
    if k == "layerwise":
        u = g.copy()
        for lo, hi in layer_bounds(widths):
            num = n if rule["numerator"] == "global" else np.linalg.norm(g[lo:hi])
            u[lo:hi] = g[lo:hi] / max(num / (rule["lam"] * max(np.linalg.norm(theta[lo:hi]), rule["eps"])), 1.0)
        return u
    if k == "unitwise":
        u = g.copy()
        gl = unpack(widths, g)
        tl = unpack(widths, theta)
        parts = []
        for (gW, gb), (tW, tb) in zip(gl, tl):
            gW, gb = gW.copy(), gb.copy()
            for o in range(gW.shape[0]):
                gn = math.sqrt(np.sum(gW[o] ** 2) + gb[o] ** 2)
                tn = math.sqrt(np.sum(tW[o] ** 2) + tb[o] ** 2)
                c = max(gn / (rule["lam"] * max(tn, rule["eps"])), 1.0)
                gW[o] /= c
                gb[o] /= c
            parts += [gW.ravel(), gb]
        return np.concatenate(parts)
    if k == "value":
        return np.clip(g, -rule["v"], rule["v"])
    if k == "normalized":
        return g / (n + rule["beta"])
    raise KeyError(k)


class Optimizer:
    """Momentum and Adam as torch.optim.SGD(momentum=beta, nesterov=...) and torch.optim.Adam
    write them, on whole vectors: ``step(theta, u, a)`` returns the next theta for the clipped update
    u and learning rate a. kind: "sgd", "momentum" (beta, nesterov) or "adam" (beta1, beta2, eps);
    weight_decay: torch's (u + weight_decay * theta feeds the step)."""

    def __init__(self, kind, beta=0.0, nesterov=False, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.kind, self.beta, self.nesterov = kind, beta, nesterov
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay = weight_decay
        self.buf = self.m = self.v = None
        self.t = 0

    def step(self, th, u, a):
        self.t += 1
        if self.weight_decay:
            u = u + self.weight_decay * th
        if self.kind == "sgd":
            return th - a * u
        if self.kind == "momentum":
            self.buf = u.copy() if self.buf is None else self.beta * self.buf + u
            d = u + self.beta * self.buf if self.nesterov else self.buf
            return th - a * d
        if self.m is None:
            self.m, self.v = np.zeros_like(u), np.zeros_like(u)
        self.m = self.beta1 * self.m + (1 - self.beta1) * u
        self.v = self.beta2 * self.v + (1 - self.beta2) * u * u
        step_size = a / (1 - self.beta1 ** self.t)
        denom = np.sqrt(self.v) / math.sqrt(1 - self.beta2 ** self.t) + self.eps
        return th - step_size * (self.m / denom)


def sgd(widths, activation, theta0, X, Y, loss, rule, a, indices, clip_per="batch", project_radius=np.inf,
        alrc=None, optimizer=None):
    """Plain clipped-SGD loop over given indices (n_steps, B); returns the path (n_steps+1, P).

    alrc: dict(n_sigma, beta1, beta2, mu1, mu2, variant) for loss clipping.
    optimizer: an :class:`Optimizer` (fresh state) that turns the clipped update into the step.
    """
    th = np.array(theta0, float)
    path = [th.copy()]
    mu1 = mu2 = None
    if alrc is not None:
        mu1, mu2 = alrc["mu1"], alrc["mu2"]
    for k in range(indices.shape[0]):
        rows = indices[k]
        B = len(rows)
        if alrc is not None:
            var = max(mu2 - mu1 ** 2, 0.0) + (1e-8 if alrc["variant"] == "code" else 0.0)
            lmax = mu1 + alrc["n_sigma"] * math.sqrt(var)
            u = np.zeros_like(th)
            Ls, Lc = [], []
            for i in rows:
                L, gi = sample_loss_grad(widths, activation, th, X[i], Y[i], loss)
                w = min(1.0, lmax / L) if L > 0 else 1.0
                u += w * gi / B
                Ls.append(L)
                Lc.append(min(L, lmax))
            if alrc["variant"] == "code":   # the authors' alrc.py: means of the capped losses and of their squares
                m1, m2 = np.mean(Lc), np.mean(np.square(Lc))
            else:                           # Algorithm 1 fed the minibatch-mean loss
                m1 = np.mean(Ls)
                m2 = m1 * m1
            mu1 = alrc["beta1"] * mu1 + (1 - alrc["beta1"]) * m1
            mu2 = alrc["beta2"] * mu2 + (1 - alrc["beta2"]) * m2
        elif clip_per == "sample":
            u = np.mean([clip(rule, sample_loss_grad(widths, activation, th, X[i], Y[i], loss)[1], th, widths)
                         for i in rows], axis=0)
        else:
            g = loss_grad(widths, activation, th, X, Y, loss, rows)[1]
            u = clip(rule, g, th, widths)
        th = th - a[k] * u if optimizer is None else optimizer.step(th, u, a[k])
        nt = np.linalg.norm(th)
        if nt > project_radius:
            th = th * (project_radius / nt)
        path.append(th.copy())
    return np.array(path)


def mean_field(widths, activation, theta, X, Y, loss, rule):
    """H(theta): mean over the data set of the clipped per-sample gradient."""
    return np.mean([clip(rule, sample_loss_grad(widths, activation, theta, X[i], Y[i], loss)[1], theta, widths)
                    for i in range(len(X))], axis=0)


def per_sample_updates(widths, activation, theta, X, Y, loss, rule):
    """(N, P): the clipped per-sample updates u(theta; z_j), one naive clip per sample."""
    return np.array([clip(rule, sample_loss_grad(widths, activation, theta, X[i], Y[i], loss)[1], theta, widths)
                     for i in range(len(X))])


def noise_covariance(widths, activation, theta, X, Y, loss, rule, batch_size=1):
    """Cov of the mean of batch_size iid clipped per-sample updates: sum of outer products, explicit loops."""
    U = per_sample_updates(widths, activation, theta, X, Y, loss, rule)
    H = U.sum(axis=0) / len(U)
    Q = np.zeros((U.shape[1], U.shape[1]))
    for u in U:
        Q += np.outer(u - H, u - H)
    return Q / (len(U) * batch_size)


def affine_sgd_stationary_cov(widths, theta_star, X, Y, loss, rule, a, weight_decay=0.0):
    """Exact stationary covariance of constant-step SGD (batch 1) around theta_star when every clipped
    per-sample update is affine near theta_star, u_j(theta) = A_j (theta - theta*) + e_j with
    mean_j e_j = -mu theta* (a linear net with a quadratic loss, unclipped; or a sample clipped to a
    constant, as in the two-point problem; weight decay mu adds mu I to every A_j).

    delta = theta - theta* follows delta' = (I - a (A_j + mu I)) delta - a (e_j + mu theta*), whose
    stationary covariance solves
    C = (I - a J) C (I - a J)^T + a^2 (Q + E[(A_j - E A_j) C (A_j - E A_j)^T]), J = E A_j + mu I, Q = Cov e_j.
    Solved by fixed-point iteration on the discrete Lyapunov equation (the multiplicative term is a
    contraction of size O(a)) and checked against the vectorised linear system. A_j by central
    differences of the naive clipped update (exact for an affine map, up to roundoff ~1e-12).
    """
    from scipy.linalg import solve_discrete_lyapunov
    P = theta_star.size
    N = len(X)
    def upd(th):
        return per_sample_updates(widths, "tanh", th, X, Y, loss, rule)
    e = upd(theta_star)
    h = 1e-4
    A = np.zeros((N, P, P))
    for i in range(P):
        d = np.zeros(P)
        d[i] = h
        A[:, :, i] = (upd(theta_star + d) - upd(theta_star - d)) / (2 * h)
    Abar = A.mean(axis=0)
    J = Abar + weight_decay * np.eye(P)
    Q = (e - e.mean(axis=0)).T @ (e - e.mean(axis=0)) / N
    M = np.eye(P) - a * J
    C = solve_discrete_lyapunov(M, a * a * Q)
    for _ in range(500):
        extra = np.mean([(Aj - Abar) @ C @ (Aj - Abar).T for Aj in A], axis=0)
        C_new = solve_discrete_lyapunov(M, a * a * (Q + extra))
        done = np.max(np.abs(C_new - C)) <= 1e-15 * np.max(np.abs(C_new))
        C = C_new
        if done:
            break
    L = np.mean([np.kron(np.eye(P) - a * (Aj + weight_decay * np.eye(P)), np.eye(P) - a * (Aj + weight_decay * np.eye(P)))
                 for Aj in A], axis=0)
    C_vec = np.linalg.solve(np.eye(P * P) - L, a * a * Q.reshape(-1)).reshape(P, P)
    assert np.allclose(C, C_vec, rtol=1e-9, atol=1e-300), "fixed point and linear system disagree"
    return C


def full_batch_gd(widths, activation, theta0, X, Y, loss, rule, a, n_steps, weight_decay=0.0, target=None,
                  blowup_factor=1e3):
    """Naive full-batch clipped GD of one replica: theta <- theta - a (clip(grad F) + mu theta), F the mean loss
    over all of (X, Y) (F_mu = F + (mu/2)||theta||^2 is recorded). Stops at the first k with F_mu <= target or
    with F_mu (or grad F) non-finite or F_mu > blowup_factor F_mu(theta_0).

    Returns (F_mu at every step reached, theta where it stopped, target step or -1, diverged step or -1)."""
    th = np.array(theta0, float)
    losses, F0 = [], None
    for k in range(n_steps + 1):
        val, g = loss_grad(widths, activation, th, X, Y, loss)
        val += 0.5 * weight_decay * float(th @ th)
        F0 = val if F0 is None else F0
        losses.append(val)
        if not np.isfinite(val) or val > blowup_factor * F0 or not np.all(np.isfinite(g)):
            return np.array(losses), th, -1, k
        if target is not None and val <= target:
            return np.array(losses), th, k, -1
        if k == n_steps:
            break
        th = th - a * (clip(rule, g, th, widths) + weight_decay * th)
    return np.array(losses), th, -1, -1
