"""Seeded synthetic data sets used by the studies, the tests and the tutorial.

Each function returns ``(X, Y)`` as float64 arrays and is deterministic given its seed.
"""
import numpy as np


def d64(noise="light", seed=0):
    """N = 64, x ~ N(0, I_2), y = sin(2 x1) + 0.5 x2 + eta.

    noise: ``"light"`` (0.3 N(0,1)), ``"heavy"`` (0.3 t with 1.5 degrees of freedom) or
    ``"skew"`` (Exp(1) - 1, plus 3 of the 64 points shifted by +5: heavy, skewed noise).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, 2))
    f = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1]
    if noise == "light":
        eta = 0.3 * rng.normal(size=64)
    elif noise == "heavy":
        eta = 0.3 * rng.standard_t(1.5, size=64)
    elif noise == "skew":
        eta = rng.exponential(1.0, size=64) - 1.0
        eta[rng.choice(64, 3, replace=False)] += 5.0
    else:
        raise ValueError(f"noise must be 'light', 'heavy' or 'skew'; got {noise!r}")
    return X, (f + eta).reshape(-1, 1)


def d256(seed=0):
    """N = 256, x ~ N(0, I_4), y = sin(2 x1) cos(x2) + 0.3 x3 x4."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(256, 4))
    return X, (np.sin(2 * X[:, 0]) * np.cos(X[:, 1]) + 0.3 * X[:, 2] * X[:, 3]).reshape(-1, 1)


def bench_task(seed=0, N=1024):
    """The benchmark task: x ~ N(0, I_4), y = sin(sum x) + 0.1 eps."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 4))
    return X, (np.sin(X.sum(1)) + 0.1 * rng.normal(size=N)).reshape(-1, 1)


def two_point(values=(0.0, 10.0), counts=(1, 1)):
    """1-D location data for ``mlp([1, 1])`` with ``loss="half_mse"``: X = 0, so f = b.

    ``two_point()`` is the equal-weight example y in {0, 10}; ``two_point(counts=(9, 1))``
    the 0.9 / 0.1 example of the clipping-bias counterexample.
    Use theta = (w, b) with w irrelevant (its gradient is 0 since x = 0).
    """
    Y = np.repeat(np.asarray(values, dtype=np.float64), counts).reshape(-1, 1)
    return np.zeros((Y.shape[0], 1)), Y
