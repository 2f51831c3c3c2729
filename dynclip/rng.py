"""Per-replica random streams.

Every replica owns a 64-bit splitmix64 state seeded from
``numpy.random.SeedSequence(seed).spawn(n_replicas)[i]``. Replica ``i``'s stream depends
only on ``(seed, i)``, never on the thread count or on how replicas are split into blocks,
which is what makes runs bit-identical on 1 or 2 threads and across sweep partitions.
"""
import numpy as np

from ._jit import hot

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


def replica_seeds(seed, n_replicas, start=0):
    """Return ``(rng_state, init_seed)`` arrays for replicas ``start .. start+n_replicas-1``.

    Both come from ``SeedSequence(seed, spawn_key=(i,))``, the i-th child of
    ``SeedSequence(seed).spawn(...)``.
    """
    states = np.empty(n_replicas, dtype=np.uint64)
    inits = np.empty(n_replicas, dtype=np.int64)
    for k in range(n_replicas):
        child = np.random.SeedSequence(seed, spawn_key=(start + k,))
        s = child.generate_state(2, np.uint64)
        states[k] = s[0]
        inits[k] = int(s[1] >> np.uint64(1))
    return states, inits


@hot
def next_u64(state, r):
    """Advance ``state[r]`` (splitmix64) and return the next 64-bit output."""
    s = state[r] + _GAMMA
    state[r] = s
    z = s
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@hot
def randint(state, r, n):
    """Uniform integer in ``[0, n)`` from the top 53 bits (bias below n / 2**53)."""
    u = next_u64(state, r) >> _S11
    return np.int64(np.float64(u) * _INV53 * n)
