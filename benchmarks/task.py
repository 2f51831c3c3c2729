"""The shared benchmark task: data, index streams, initial weights, step sizes, reference.

Every implementation consumes exactly these arrays, so their final parameters can be
compared to float64 round-off.

Task: MLP 4 -> 32 tanh -> 32 tanh -> 1 linear (P = 1249), float64, loss (f - y)^2 averaged
over the minibatch (no 1/2), classic norm clipping g <- g * min(1, lam/||g||) with lam = 1
on the minibatch-mean gradient, step a(t) = 0.1 / (t + 1)^0.6 for t = 0..T-1, minibatch
indices drawn uniformly with replacement.

Flat parameter layout (the one dynclip uses): for each layer in order, W_l with shape
(out, in) in C order, then b_l with shape (out,).
"""
import numpy as np

SIZES = (4, 32, 32, 1)
N = 1024
LAM = 1.0
A0, T0, KAPPA = 0.1, 1.0, 0.6


def n_params(sizes=SIZES):
    return sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))


def make_data(n=N, d=SIZES[0]):
    """x ~ N(0, I_d), y = sin(sum x) + 0.1 eps, from default_rng(0). Y has shape (n,)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    eps = rng.standard_normal(n)
    Y = np.sin(X.sum(axis=1)) + 0.1 * eps
    return X, Y


def make_indices(T, B, n=N, stream=0):
    """int64 (T, B) minibatch indices, uniform with replacement, from default_rng(1 + stream)."""
    return np.random.default_rng(1 + stream).integers(0, n, size=(T, B), dtype=np.int64)


def make_indices_replicas(R, T, B, n=N):
    """int64 (R, T, B): replica r uses stream r, so replica 0 equals make_indices(T, B)."""
    return np.stack([make_indices(T, B, n, stream=r) for r in range(R)])


def make_theta0(sizes=SIZES):
    """torch nn.Linear default init (W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))), flat, from
    default_rng(2), drawn layer by layer: W_l (out, in) then b_l (out,)."""
    rng = np.random.default_rng(2)
    parts = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fi)
        parts.append(rng.uniform(-bound, bound, size=(fo, fi)).ravel())
        parts.append(rng.uniform(-bound, bound, size=fo))
    return np.concatenate(parts)


def step_sizes(T):
    """a(t) = A0 / (t + T0)^KAPPA for t = 0..T-1 (float64)."""
    return A0 / (np.arange(T, dtype=np.float64) + T0) ** KAPPA


def unflatten(theta, sizes=SIZES):
    """Flat (..., P) -> list of (W (..., out, in), b (..., out)) views."""
    theta = np.asarray(theta)
    lead = theta.shape[:-1]
    out, k = [], 0
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        W = theta[..., k:k + fo * fi].reshape(lead + (fo, fi))
        k += fo * fi
        b = theta[..., k:k + fo]
        k += fo
        out.append((W, b))
    return out


def flatten(layers):
    """List of (W (..., out, in), b (..., out)) -> flat (..., P)."""
    parts = []
    for W, b in layers:
        W = np.asarray(W)
        parts.append(W.reshape(W.shape[:-2] + (-1,)))
        parts.append(np.asarray(b))
    return np.concatenate(parts, axis=-1)


def flops_per_sample_step(sizes=SIZES):
    """Rough FLOPs per sample per SGD step: forward 2*weights, backward 4*weights."""
    return 6 * sum(o * i for i, o in zip(sizes[:-1], sizes[1:]))


def numpy_reference(X, Y, idx, theta0, T=None, sizes=SIZES, lam=LAM):
    """Plain NumPy loop, the ground truth for small T. idx (T, B); returns flat theta."""
    T = idx.shape[0] if T is None else T
    a = step_sizes(T)
    theta = np.array(theta0, dtype=np.float64, copy=True)
    L = len(sizes) - 1
    for t in range(T):
        layers = unflatten(theta, sizes)
        xb, yb = X[idx[t]], Y[idx[t]]
        B = xb.shape[0]
        hs = [xb]
        h = xb
        for l, (W, b) in enumerate(layers):
            z = h @ W.T + b
            h = np.tanh(z) if l < L - 1 else z
            hs.append(h)
        f = h[:, 0]
        delta = (2.0 / B) * (f - yb)[:, None]          # dloss/dz for the output layer
        grads = [None] * L
        for l in range(L - 1, -1, -1):
            W, _ = layers[l]
            grads[l] = (delta.T @ hs[l], delta.sum(axis=0))
            if l > 0:
                delta = (delta @ W) * (1.0 - hs[l] ** 2)
        g = flatten(grads)
        c = min(1.0, lam / np.sqrt(g @ g))
        theta -= a[t] * (c * g)
    return theta
